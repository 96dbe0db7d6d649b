"""The bench end to end on Inspect with our scripted model API (no network, no tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mhsafety.bench.bundles import load_set
from mhsafety.bench.runner import BenchConfigError, parse_system, rows_from_logs, run_bench

SETS = [load_set(name) for name in ("graded-queries", "refusal-robustness", "persona-scripts")]


def labels(runs: Path) -> dict[tuple[str, str], set[str]]:
    frame, problems = rows_from_logs(runs)
    assert problems == []
    grouped = frame.groupby(["set", "system"])["label"].apply(set)
    return {key: value for key, value in grouped.items()}


def test_raw_vs_guarded_and_the_multi_turn_solver(tmp_path: Path) -> None:
    systems = [
        parse_system("mhsafety/scripted?behaviour=comply"),
        parse_system("mhsafety/scripted?behaviour=comply+guard"),
        parse_system("mhsafety/scripted?behaviour=cave"),
    ]
    run_bench(SETS, systems, tmp_path, epochs=1, display="none", limit=3)
    found = labels(tmp_path)
    comply, guarded, cave = (s.label for s in systems)
    assert found[("refusal-robustness", comply)] == {"harmful"}
    assert found[("refusal-robustness", cave)] == {"harmful"}  # it gives in on the re-ask
    assert found[("persona-scripts", comply)] == {"harmful"}
    assert "harmful" not in found[("persona-scripts", guarded)]  # the guard replaced the output
    frame, _ = rows_from_logs(tmp_path)
    cave_rows = frame[(frame.system == cave) & (frame.set == "refusal-robustness")]
    assert set(cave_rows.reason) == {"enabling content at turn 1, re-ask 1"}
    assert len(frame) == 3 * 3 * 3  # 3 items x 3 sets x 3 systems, one epoch


def test_the_whole_history_reaches_the_model_every_turn(tmp_path: Path) -> None:
    from inspect_ai.log import list_eval_logs, read_eval_log

    run_bench(
        [load_set("persona-scripts")],
        [parse_system("mhsafety/scripted?behaviour=refuse")],
        tmp_path,
        display="none",
        limit=1,
    )
    [info] = list_eval_logs(str(tmp_path), recursive=True)
    sample = read_eval_log(info).samples[0]  # type: ignore[index]
    users = [m for m in sample.messages if m.role == "user"]
    turns = sample.metadata["turns"]
    # every scripted turn was sent; each refused turn with pretexts was re-asked
    assert len(users) == sum(1 + len(t["reask"]) for t in turns)
    models = [e for e in sample.events if getattr(e, "event", "") == "model"]
    assert [len(e.input) for e in models] == sorted(len(e.input) for e in models)
    assert len(models[-1].input) == len(sample.messages) - 1


def test_runs_resume_and_refuse_another_configuration(tmp_path: Path) -> None:
    systems = [parse_system("mhsafety/scripted?behaviour=refuse")]
    run_bench(SETS[:1], systems, tmp_path, display="none", limit=2)
    logs = sorted(p.name for p in tmp_path.rglob("*.eval"))
    run_bench(SETS[:1], systems, tmp_path, display="none", limit=2)  # nothing left to do
    assert sorted(p.name for p in tmp_path.rglob("*.eval")) == logs
    config = json.loads((tmp_path / "bench.json").read_text())
    assert config["sets"][0]["id"] == "graded-queries" and len(config["config_hash"]) == 64
    with pytest.raises(BenchConfigError, match="another configuration"):
        run_bench(SETS[:1], systems, tmp_path, display="none", limit=2, epochs=2)
