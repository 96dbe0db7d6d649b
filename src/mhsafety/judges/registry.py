"""Judges by name: every command takes ``--judge NAME``.

A name is one of

* a registered offline judge (``embedded``, ``lexicon``, ...), built lazily so naming a
  judge never loads another judge's model;
* an Inspect model name (``openai/gpt-4o-mini``, ``anthropic/claude-...``,
  ``openai-api/<service>/<model>``): an :class:`~mhsafety.judges.llm.LLMJudge` with the
  settings of :class:`JudgeOptions`;
* ``panel:A,B,...``: a :class:`~mhsafety.judges.panel.PanelJudge` of those judges.

The same names serve both uses: :func:`load_judge` gives a screening judge (audit) and
:func:`load_grader` a response grader (bench).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mhsafety.judges.base import ScreeningJudge
from mhsafety.judges.grading import ResponseGrader

JudgeFactory = Callable[[], ScreeningJudge]
GraderFactory = Callable[[], ResponseGrader]
_FACTORIES: dict[str, tuple[JudgeFactory, str]] = {}
_GRADERS: dict[str, tuple[GraderFactory, str]] = {}
PANEL_PREFIX = "panel:"


@dataclass(frozen=True)
class JudgeOptions:
    """How to build judges named on the command line."""

    llm: dict[str, Any] = field(default_factory=dict)
    """LLM judge settings (the keys of ``LLMJudgeSettings``, e.g. from ``--judge-config``)."""
    aggregate: Literal["any", "majority"] = "any"
    cache_dir: Path | None = None


def judge(name: str, description: str) -> Callable[[JudgeFactory], JudgeFactory]:
    """Register a screening judge factory under ``name``."""

    def register(factory: JudgeFactory) -> JudgeFactory:
        if name in _FACTORIES:
            raise ValueError(f"judge {name!r} is registered twice")
        _FACTORIES[name] = (factory, description)
        return factory

    return register


def grader(name: str, description: str) -> Callable[[GraderFactory], GraderFactory]:
    """Register a response grader factory under ``name``."""

    def register(factory: GraderFactory) -> GraderFactory:
        if name in _GRADERS:
            raise ValueError(f"grader {name!r} is registered twice")
        _GRADERS[name] = (factory, description)
        return factory

    return register


def offline_judges() -> tuple[str, ...]:
    """The registered judges, in registration order: all offline (they need no model call),
    so a worker process can build any of them by name."""
    return tuple(_FACTORIES)


def available_judges() -> dict[str, str]:
    """Registered judge names and what each is (plus the LLM and panel forms)."""
    names = {name: description for name, (_, description) in sorted(_FACTORIES.items())}
    for name, (_, description) in sorted(_GRADERS.items()):
        names[name] = names.get(name, "(grading only)") + f"; grades responses with {description}"
    names["<provider>/<model>"] = (
        "an LLM judge through Inspect (openai/gpt-4o-mini, openai-api/<service>/<model>, ...); "
        "needs the llm extra"
    )
    names["panel:A,B,..."] = "several judges with --aggregate any|majority"
    return names


def _llm(name: str, options: JudgeOptions) -> Any:
    from mhsafety.extras import require

    require("inspect_ai", "llm", f"the LLM judge {name!r}")
    from mhsafety.judges.llm import LLMJudge, LLMJudgeSettings

    settings = LLMJudgeSettings.from_mapping(options.llm, model=name)
    if options.cache_dir is not None and settings.cache_dir is None:
        settings = settings.with_changes(cache_dir=str(options.cache_dir))
    return LLMJudge(settings)


def _build(name: str, options: JudgeOptions, registry: dict[str, Any], kind: str) -> Any:
    if name.startswith(PANEL_PREFIX):
        from mhsafety.judges.panel import PanelJudge

        names = [n.strip() for n in name[len(PANEL_PREFIX) :].split(",") if n.strip()]
        if any(n.startswith(PANEL_PREFIX) for n in names):
            raise ValueError("panels cannot be nested")
        members = [(n, _build(n, options, registry, kind)) for n in names]
        return PanelJudge(members, options.aggregate)
    if name in registry:
        return registry[name][0]()
    if "/" in name:
        return _llm(name, options)
    known = ", ".join(sorted(registry))
    raise KeyError(
        f"unknown {kind} {name!r}; available: {known}, a provider/model name, or panel:A,B"
    )


def load_judge(name: str, options: JudgeOptions | None = None) -> ScreeningJudge:
    """Build the screening judge ``name`` names (see the module docstring)."""
    built: ScreeningJudge = _build(name, options or JudgeOptions(), _FACTORIES, "judge")
    return built


def load_grader(name: str, options: JudgeOptions | None = None) -> ResponseGrader:
    """Build the response grader ``name`` names (see the module docstring)."""
    built: ResponseGrader = _build(name, options or JudgeOptions(), _GRADERS, "grader")
    return built


@judge("embedded", "lexicon + fine-tuned MiniLM-int8 classifier, offline (the default)")
def _embedded() -> ScreeningJudge:
    from mhsafety.judges.embedded import EmbeddedJudge

    return EmbeddedJudge()


@judge(
    "embedded-cascade",
    "the embedded judge behind a distilled n-gram prefilter that settles clearly ordinary "
    "conversations without embedding them (faster audits; measured loss in the docs)",
)
def _embedded_cascade() -> ScreeningJudge:
    from mhsafety.judges.embedded import EmbeddedJudge, EmbeddedJudgeConfig

    return EmbeddedJudge(config=EmbeddedJudgeConfig(cascade=True))


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


@grader("embedded", "response rules (crisis resources, refusal, harmful-content patterns), offline")
def _rule_grader() -> ResponseGrader:
    from mhsafety.judges.response_rules import RuleResponseGrader

    return RuleResponseGrader()
