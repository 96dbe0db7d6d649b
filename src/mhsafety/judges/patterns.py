"""Regex patterns kept in data files: ``{{macro}}`` expansion and checked compilation.

Shared by the lexicon (screening) and the response patterns (grading), so both data files
follow one rule set: macros must exist, patterns must compile, must not match the empty
string, and may not use named groups or back-references.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any, Final

SRE_PARSER: Any = importlib.import_module("re._parser")  # the stdlib regex parser
MACRO_RE: Final = re.compile(r"\{\{(\w+)\}\}")
BACKREF_RE: Final = re.compile(r"(?<!\\)\\[1-9]|\(\?P=")


def expand_macros(raw: str, macros: Mapping[str, str], where: str) -> str:
    """``raw`` with every ``{{name}}`` replaced; ``where`` prefixes the error message."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in macros:
            raise ValueError(f"{where}: unknown macro {{{{{name}}}}}")
        return macros[name]

    return MACRO_RE.sub(sub, raw)


def compile_pattern(raw: object, macros: Mapping[str, str], where: str) -> re.Pattern[str]:
    """Expand and compile a case-insensitive pattern, refusing unsafe or empty ones."""
    if not isinstance(raw, str) or not raw:
        raise ValueError(f"{where}: pattern must be a non-empty string")
    source = expand_macros(raw, macros, where)
    try:
        regex = re.compile(source, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"{where}: invalid regex: {exc}") from exc
    if regex.groupindex or BACKREF_RE.search(source):
        raise ValueError(f"{where}: named groups and back-references are not allowed")
    if regex.match("") is not None or SRE_PARSER.parse(source, regex.flags).getwidth()[0] == 0:
        raise ValueError(f"{where}: pattern can match the empty string")
    return regex
