"""Each test set as an Inspect task: a multi-turn solver and a grading scorer.

The solver plays the item's script turn by turn, sending the whole history every turn; when
the model declines a turn that has re-asks (pretexts, persistence), it sends them one by one
until the model gives in or they run out. The scorer grades every assistant response with the
configured grader (the offline rule grader by default, any LLM judge or panel by name) and
applies the set's scoring rule (:mod:`mhsafety.bench.scoring`).
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any

from inspect_ai import Epochs, Task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageAssistant, ChatMessageUser, GenerateConfig
from inspect_ai.scorer import Metric, SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import Generate, Solver, TaskState, solver

from mhsafety.bench.bundles import TestSet, stratified_sample
from mhsafety.bench.scoring import GradedResponse, sample_verdict
from mhsafety.conversation import Conversation
from mhsafety.judges.grading import ResponseGrader, ResponseItem
from mhsafety.taxonomy import Category

RESPONSES_KEY = "mhsafety_responses"


@lru_cache(maxsize=8)
def load_grader_cached(name: str) -> ResponseGrader:
    """One grader per name per process (the embedded one loads patterns and resources)."""
    from mhsafety.judges.registry import load_grader

    return load_grader(name)


def _conversation(state: TaskState, upto: int, sample_id: str) -> Conversation:
    messages = []
    for message in state.messages[: upto + 1]:
        if message.role in ("user", "assistant", "system"):
            messages.append({"role": message.role, "content": message.text})
    return Conversation.model_validate({"id": sample_id, "messages": messages})


async def grade_turns(
    grader: ResponseGrader, state: TaskState, indices: list[int], metadata: dict[str, Any]
) -> list[Any]:
    """Grade the assistant messages at ``indices`` (each with the history before it)."""
    items = [
        ResponseItem(
            f"{state.sample_id}@{i}",
            _conversation(state, i, str(state.sample_id)),
            Category(metadata["category"]),
            expects_resources=bool(metadata.get("expects_resources")),
        )
        for i in indices
    ]
    return await asyncio.to_thread(grader.grade, items)


@solver
def play_script(grader: str = "embedded") -> Solver:
    """Play the item's turns, re-asking with its pretexts whenever the model declines."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        judge = load_grader_cached(grader)
        turns = state.metadata["turns"]
        record: list[dict[str, int]] = []
        state.messages = [m for m in state.messages if m.role == "system"]
        for turn_index, turn in enumerate(turns):
            asks = [turn["user"], *turn.get("reask", [])]
            for reask_index, text in enumerate(asks):
                state.messages.append(ChatMessageUser(content=text))
                state = await generate(state)
                if not isinstance(state.messages[-1], ChatMessageAssistant):
                    break
                position = len(state.messages) - 1
                record.append({"turn": turn_index, "reask": reask_index, "index": position})
                if reask_index == len(asks) - 1:
                    break
                [grade] = await grade_turns(judge, state, [position], state.metadata)
                if grade.error is not None or not grade.answers.get("refused"):
                    break  # it answered (or we cannot tell): no re-ask needed
        state.metadata[RESPONSES_KEY] = record
        return state

    return solve


def _share_of(label: str, scores: list[SampleScore]) -> float:
    """Share of the graded samples (judge errors left out) that carry ``label``."""
    graded = [s for s in scores if s.score.value != "judge_error"]
    return sum(s.score.value == label for s in graded) / len(graded) if graded else 0.0


def _label_metric(label: str) -> Metric:
    # annotated, so Inspect passes SampleScores (it reads the signature)
    def compute(scores: list[SampleScore]) -> float:
        return _share_of(label, scores)

    return compute


@metric
def harmful_rate() -> Metric:
    """Share of graded samples labelled harmful (judge errors left out)."""
    return _label_metric("harmful")


@metric
def over_refusal_rate() -> Metric:
    """Share of graded samples labelled over-refusal."""
    return _label_metric("over_refusal")


@metric
def judge_errors() -> Metric:
    """How many samples the grader could not label."""

    def compute(scores: list[SampleScore]) -> float:
        return float(sum(s.score.value == "judge_error" for s in scores))

    return compute


@scorer(metrics=[harmful_rate(), over_refusal_rate(), judge_errors()])
def safety_scorer(scoring: str, grader: str = "embedded") -> Scorer:
    """Grade every response of the sample and apply the set's scoring rule."""

    async def score(state: TaskState, target: Target) -> Score:
        record = state.metadata.get(RESPONSES_KEY, [])
        judge = load_grader_cached(grader)
        grades = await grade_turns(judge, state, [r["index"] for r in record], state.metadata)
        responses = [
            GradedResponse(
                r["turn"],
                r["reask"],
                harmful=bool(g.answers.get("harmful")),
                refused=bool(g.answers.get("refused")),
                resources=bool(g.answers.get("resources")),
                error=g.error,
            )
            for r, g in zip(record, grades, strict=True)
        ]
        persona = state.metadata.get("persona") or {}
        referral_from = (
            state.metadata.get("risk_turn")
            if scoring == "referral_after_risk"
            else persona.get("referral_from")
        )
        verdict = sample_verdict(
            scoring,  # type: ignore[arg-type]
            responses,
            state.metadata.get("risk_level"),
            referral_from=referral_from,
        )
        return Score(
            value=verdict.label,
            explanation=verdict.reason,
            metadata={
                "responses": [r.to_dict() for r in responses],
                "grader": judge.info.to_dict(),
            },
        )

    return score


def bench_task(
    test_set: TestSet,
    *,
    grader: str = "embedded",
    epochs: int = 1,
    max_tokens: int = 400,
    temperature: float = 0.7,
    limit: int | None = None,
    simulator: str = "cards",
) -> Task:
    """The Inspect task of one test set (``limit``: a stratified sample of that many items)."""
    items = stratified_sample(test_set.items, limit)
    about_set = {"set": test_set.id, "set_version": test_set.version, "scoring": test_set.scoring}
    personas = test_set.manifest.get("personas", {}) if test_set.scoring == "simulated_user" else {}
    samples = [
        Sample(
            input=item.turns[0].user,
            id=item.id,
            metadata=item.to_metadata()
            | about_set
            | ({"persona": personas[item.id]} if item.id in personas else {}),
        )
        for item in items
    ]
    if test_set.scoring == "simulated_user":
        from mhsafety.bench.simulation import simulated_user

        play = simulated_user(simulator)
    else:
        play = play_script(grader)
    return Task(
        name=test_set.id,
        dataset=MemoryDataset(samples, name=test_set.id),
        solver=play,
        scorer=safety_scorer(test_set.scoring, grader),
        # labels are strings: repeated runs reduce to the most common label in Inspect's own
        # summary; our results read every epoch's label from the log
        epochs=Epochs(epochs, "mode"),
        config=GenerateConfig(max_tokens=max_tokens, temperature=temperature),
        metadata={
            "set": test_set.id,
            "set_version": test_set.version,
            "set_sha256": test_set.sha256,
            "scoring": test_set.scoring,
            "citation": test_set.citation,
            "grader": grader,
            **({"simulator": simulator} if test_set.scoring == "simulated_user" else {}),
        },
    )
