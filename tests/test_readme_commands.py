"""The README's commands are true: one block runs as written, every other command parses.

* The block marked ``<!-- run by tests/test_readme_commands.py as written -->`` is executed
  line by line in an empty folder, as a new user would paste it.
* Every other ``mhsafety ...`` line in the README and in ``docs/*.md`` is parsed by the real
  command line (subcommands and options exist, values have the right type) without running.
* Every ``python path.py`` names a script that exists, every ``make target`` a Makefile target.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from mhsafety.cli import app

ROOT = Path(__file__).resolve().parents[1]
RUN_MARK = "<!-- run by tests/test_readme_commands.py as written -->"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OUTPUT_LANGUAGES = {"json", "yaml", "text", "console-output"}


def blocks(path: Path) -> list[tuple[int, str, list[str], bool]]:
    """Fenced blocks: (first line number, language, lines, marked to run)."""
    found: list[tuple[int, str, list[str], bool]] = []
    lines = path.read_text("utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            language = lines[i][3:].strip()
            marked = i > 0 and lines[i - 1].strip() == RUN_MARK
            start = i + 1
            i += 1
            body: list[str] = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            found.append((start + 1, language, body, marked))
        i += 1
    return found


def commands(line: str) -> str | None:
    """The command on a line, without its trailing comment, or None."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    return re.split(r"\s+#\s", text, maxsplit=1)[0].strip()


def cli_lines() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for start, language, body, _ in blocks(path):
            if language in OUTPUT_LANGUAGES:
                continue
            for offset, line in enumerate(body):
                command = commands(line)
                if command and command.startswith("mhsafety "):
                    found.append((f"{path.name}:{start + offset}", command))
    return found


def parse(command: str) -> list[str]:
    """Check a command line against the real CLI without running it; returns the problems.

    Subcommands must exist, every ``--option`` (and ``-o``) must be one the command takes, and
    the number of positional arguments must fit.
    """
    words = shlex.split(command)[1:]
    node: Any = typer.main.get_command(app)
    path = ["mhsafety"]
    while hasattr(node, "commands"):
        if not words or words[0].startswith("-"):
            break
        name = words.pop(0)
        if name not in node.commands:
            return [f"{' '.join(path)} has no command {name!r}"]
        node = node.commands[name]
        path.append(name)
    options = {
        opt
        for param in node.params
        for opt in [*param.opts, *param.secondary_opts]
        if opt.startswith("-")
    } | {"--help"}
    positional = [p for p in node.params if not any(o.startswith("-") for o in p.opts)]
    problems = []
    given = 0
    takes_value = {
        opt
        for param in node.params
        if not getattr(param, "is_flag", False) and any(o.startswith("-") for o in param.opts)
        for opt in param.opts
    }
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-"):
            flag = word.split("=", 1)[0]
            if flag not in options:
                problems.append(f"{' '.join(path)} has no option {flag!r}")
            if flag in takes_value and "=" not in word:
                i += 1
        else:
            given += 1
        i += 1
    if given > len(positional):
        problems.append(f"{' '.join(path)} takes {len(positional)} arguments, {given} given")
    return problems


def test_the_marked_block_runs_as_written(tmp_path: Path) -> None:
    [block] = [b for b in blocks(ROOT / "README.md") if b[3]]
    ran = 0
    for line in block[2]:
        command = commands(line)
        if command is None:
            continue
        words = shlex.split(command)
        assert words[0] == "mhsafety", command
        result = subprocess.run(
            [sys.executable, "-m", "mhsafety", *words[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
        ran += 1
    assert ran >= 6
    assert (tmp_path / "audit" / "report.html").is_file()


@pytest.mark.parametrize(("where", "command"), cli_lines(), ids=[w for w, _ in cli_lines()])
def test_every_documented_command_parses(where: str, command: str) -> None:
    problems = parse(command)
    assert not problems, f"{where}: {command}: " + "; ".join(problems)


def test_the_checker_catches_what_it_should() -> None:
    assert parse("mhsafety screen logs.jsonl -o out.jsonl --window 3") == []
    assert parse("mhsafety screen logs.jsonl --bogus 1")
    assert parse("mhsafety audit runn logs.jsonl")
    assert parse("mhsafety audit report a b")


def test_documented_scripts_and_make_targets_exist() -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))
    problems = []
    for path in DOCS:
        for start, language, body, _ in blocks(path):
            if language in OUTPUT_LANGUAGES:
                continue
            for offset, line in enumerate(body):
                command = commands(line) or ""
                try:
                    words = shlex.split(command)
                except ValueError:  # prose in a block (an apostrophe): plain words will do
                    words = command.split()
                where = f"{path.name}:{start + offset}"
                if words[:1] == ["make"] and len(words) > 1 and words[1] not in targets:
                    problems.append(f"{where}: no make target {words[1]!r}")
                for word in words:
                    if word.endswith(".py") and "/" in word and not (ROOT / word).is_file():
                        problems.append(f"{where}: {word} does not exist")
    assert not problems, "\n".join(problems)
