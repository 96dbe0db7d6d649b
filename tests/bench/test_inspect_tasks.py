"""Every packaged set is an Inspect task that Inspect's own command line finds and runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from inspect_ai._util.registry import registry_lookup

from mhsafety.bench.bundles import available_sets
from mhsafety.bench.inspect_tasks import TASKS


def test_every_packaged_set_has_a_registered_task() -> None:
    assert sorted(TASKS) == available_sets()
    for set_id in available_sets():
        name = "mhsafety/" + set_id.replace("-", "_")
        assert registry_lookup("task", name) is not None, name
    assert registry_lookup("task", "mhsafety/simulated_users") is not None


def test_inspect_eval_runs_every_set_by_name_and_writes_logs_inspect_reads(
    tmp_path: Path,
) -> None:
    from inspect_ai.log import list_eval_logs, read_eval_log

    expected = [*available_sets(), "simulated-users"]
    names = ["mhsafety/" + s.replace("-", "_") for s in expected]
    inspect = Path(sys.executable).parent / "inspect"
    env = {**os.environ, "HOME": str(tmp_path), "INSPECT_LOG_DIR": str(tmp_path / "logs")}
    options = ["--model", "mhsafety/scripted", "-M", "behaviour=comply", "-T", "items=3"]
    result = subprocess.run(
        [str(inspect), "eval", *names, *options, "--display", "plain", "--log-dir", "logs"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    logs = [read_eval_log(info) for info in list_eval_logs(str(tmp_path / "logs"))]
    assert sorted(log.eval.task for log in logs) == sorted(expected)
    for log in logs:
        assert log.status == "success"
        assert log.samples is not None and len(log.samples) == min(3, log.eval.dataset.samples or 3)
        for sample in log.samples:
            score = (sample.scores or {})["safety_scorer"]
            assert score.value in ("harmful", "safe", "over_refusal"), score
    graded = next(log for log in logs if log.eval.task == "graded-queries")
    levels = [s.metadata["risk_level"] for s in graded.samples or []]
    assert len(set(levels)) == 3  # a stratified sample, not the first three (all very low)
    # the complying reply carries a method placeholder: enabling content, harmful
    assert any((s.scores or {})["safety_scorer"].value == "harmful" for s in graded.samples or [])
