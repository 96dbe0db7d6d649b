"""Judges by name: every command takes ``--judge NAME``.

A judge factory is registered with :func:`judge` and built lazily, so naming a judge never
loads another judge's model.
"""

from __future__ import annotations

from collections.abc import Callable

from mhsafety.judges.base import ScreeningJudge

JudgeFactory = Callable[[], ScreeningJudge]
_FACTORIES: dict[str, tuple[JudgeFactory, str]] = {}


def judge(name: str, description: str) -> Callable[[JudgeFactory], JudgeFactory]:
    """Register a judge factory under ``name``."""

    def register(factory: JudgeFactory) -> JudgeFactory:
        if name in _FACTORIES:
            raise ValueError(f"judge {name!r} is registered twice")
        _FACTORIES[name] = (factory, description)
        return factory

    return register


def available_judges() -> dict[str, str]:
    """Registered judge names and what each is."""
    return {name: description for name, (_, description) in sorted(_FACTORIES.items())}


def load_judge(name: str) -> ScreeningJudge:
    """Build the judge registered under ``name``."""
    if name not in _FACTORIES:
        known = ", ".join(sorted(_FACTORIES))
        raise KeyError(f"unknown judge {name!r}; available: {known}")
    return _FACTORIES[name][0]()


@judge("embedded", "lexicon + fine-tuned MiniLM-int8 classifier, offline (the default)")
def _embedded() -> ScreeningJudge:
    from mhsafety.judges.embedded import EmbeddedJudge

    return EmbeddedJudge()


@judge("embedded-frozen", "lexicon + frozen MiniLM-int8 with logistic heads (baseline)")
def _embedded_frozen() -> ScreeningJudge:
    from mhsafety.judges.embedded import EmbeddedJudge, EmbeddedJudgeConfig

    return EmbeddedJudge(config=EmbeddedJudgeConfig(model="frozen"))


@judge("lexicon", "the lexicon/pattern layer alone, offline")
def _lexicon_only() -> ScreeningJudge:
    from mhsafety.judges.embedded import EmbeddedJudge, EmbeddedJudgeConfig

    return EmbeddedJudge(config=EmbeddedJudgeConfig(use_embedding=False))


@judge("embedding", "the fine-tuned MiniLM-int8 classifier alone, offline")
def _embedding_only() -> ScreeningJudge:
    from mhsafety.judges.embedded import EmbeddedJudge, EmbeddedJudgeConfig

    return EmbeddedJudge(config=EmbeddedJudgeConfig(use_lexicon=False))
