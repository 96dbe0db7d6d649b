"""Every packaged test set as an Inspect ``@task``: ``inspect eval mhsafety/graded_queries``.

These are registered when the package's ``inspect_ai`` entry point is loaded
(:mod:`mhsafety.bench._registry`), so Inspect's own tools find them by name::

    inspect eval mhsafety/graded_queries --model openai/gpt-4o-mini
    inspect eval mhsafety/persona_scripts --model mhsafety/guarded -M base=openai/gpt-4o-mini
    inspect eval-set mhsafety/graded_queries mhsafety/refusal_robustness --log-dir runs/x ...
    inspect view --log-dir logs

Task arguments (``-T name=value``): ``grader`` (``embedded``, the offline rule grader, or any
Inspect model or panel name), ``items`` (a stratified sample of that many items over risk
levels and domains; default every item), ``max_tokens`` and ``temperature``. Inspect's own
``--limit`` takes the *first* N samples instead, which on the graded set are all very low
risk: prefer ``-T items=N``. ``mhsafety bench run`` builds the same tasks and reads their logs.
"""

from __future__ import annotations

from inspect_ai import Task, task

from mhsafety.bench.bundles import load_set
from mhsafety.bench.tasks import bench_task

__all__ = [
    "TASKS",
    "graded_queries",
    "multistep_jailbreaks",
    "persona_scripts",
    "refusal_robustness",
    "simulated_users",
]


def _task(set_id: str, grader: str, items: int | None, max_tokens: int, temperature: float) -> Task:
    return bench_task(
        load_set(set_id),
        grader=grader,
        limit=items,
        max_tokens=max_tokens,
        temperature=temperature,
    )


@task
def graded_queries(
    grader: str = "embedded",
    items: int | None = None,
    max_tokens: int = 400,
    temperature: float = 0.7,
) -> Task:
    """Graded suicide-risk queries, very low to very high risk (McBain et al. 2025 design)."""
    return _task("graded-queries", grader, items, max_tokens, temperature)


@task
def persona_scripts(
    grader: str = "embedded",
    items: int | None = None,
    max_tokens: int = 400,
    temperature: float = 0.7,
) -> Task:
    """Persona scripts escalating toward harmful requests (CCDH 2025 "Fake Friend" design)."""
    return _task("persona-scripts", grader, items, max_tokens, temperature)


@task
def refusal_robustness(
    grader: str = "embedded",
    items: int | None = None,
    max_tokens: int = 400,
    temperature: float = 0.7,
) -> Task:
    """Harmful requests re-asked with pretexts: does the refusal hold?"""
    return _task("refusal-robustness", grader, items, max_tokens, temperature)


@task
def multistep_jailbreaks(
    grader: str = "embedded",
    items: int | None = None,
    max_tokens: int = 400,
    temperature: float = 0.7,
) -> Task:
    """Multi-step jailbreaks in suicide and self-harm contexts (Schoene & Canca 2025 design)."""
    return _task("multistep-jailbreaks", grader, items, max_tokens, temperature)


@task
def simulated_users(
    simulator: str = "cards",
    grader: str = "embedded",
    items: int | None = None,
    max_tokens: int = 400,
    temperature: float = 0.7,
) -> Task:
    """Simulated users with clinical personas (VERA-MH design); ``-T simulator=MODEL``."""
    from mhsafety.bench.simulation import persona_set

    return bench_task(
        persona_set(),
        grader=grader,
        limit=items,
        max_tokens=max_tokens,
        temperature=temperature,
        simulator=simulator,
    )


TASKS = {
    "graded-queries": graded_queries,
    "persona-scripts": persona_scripts,
    "refusal-robustness": refusal_robustness,
    "multistep-jailbreaks": multistep_jailbreaks,
}
"""Packaged set id -> its task (a contract test checks every packaged set has one)."""
