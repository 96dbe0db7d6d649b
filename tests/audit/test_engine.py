"""Sharded audits (worker processes, a real local Ray) give byte-identical results to one run."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mhsafety.audit.engine import EngineSettings, plan_shards
from mhsafety.logio import ReadStats, read_conversations
from mhsafety.testing.cli import run_mhsafety

SAME_FILES = (
    "screen.jsonl",
    "quarantine.jsonl",
    "design.csv",
    "strata.csv",
    "review_queue.csv",
    "review_queue.jsonl",
    "estimate.json",
)


def mhsafety(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    # 3: some records quarantined (expected with the fixture's bad lines)
    return run_mhsafety(*args, cwd=cwd, check=check, ok=(0, 3), timeout=900)


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 synthetic conversations, a broken line, a blank line and a duplicate id far apart."""
    folder = tmp_path_factory.mktemp("engine")
    mhsafety("synth", "-n", "2000", "-o", "clean.jsonl", "--seed", "8", cwd=folder)
    lines = (folder / "clean.jsonl").read_text().splitlines()
    lines.insert(1500, lines[10])  # the same conversation again, in a later shard
    lines.insert(400, "{broken")
    lines.insert(900, "")
    (folder / "logs.jsonl").write_text("\n".join(lines) + "\n")
    shutil.copy(folder / "clean.truth.jsonl", folder / "logs.truth.jsonl")
    audit(folder, "local")
    return folder


def audit(folder: Path, workspace: str, *engine: str) -> None:
    mhsafety("audit", "run", "logs.jsonl", "--workspace", workspace, *engine, cwd=folder)
    labels = f"{workspace}-labels.csv"
    mhsafety(
        "audit",
        "simulate-review",
        workspace,
        "--truth",
        "logs.truth.jsonl",
        "-o",
        labels,
        cwd=folder,
    )
    mhsafety("audit", "estimate", workspace, "--labels", labels, cwd=folder)
    mhsafety("audit", "report", workspace, cwd=folder)


def assert_same_audit(folder: Path, workspace: str) -> None:
    for name in SAME_FILES:
        local = (folder / "local" / name).read_bytes()
        assert (folder / workspace / name).read_bytes() == local, name

    def report(ws: str) -> list[str]:  # the generation time is the one line that differs
        text = (folder / ws / "report.html").read_text()
        return [line for line in text.splitlines() if " UTC · mhsafety " not in line]

    assert report(workspace) == report("local")


def test_shards_cover_the_file_exactly_with_true_line_numbers(tmp_path: Path) -> None:
    good = {"messages": [{"role": "user", "content": "hello there, how are you today?"}]}
    lines = [json.dumps(good | {"id": f"c{i}"}) if i % 7 else "" for i in range(1, 400)]
    lines[50] = "{broken"
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode())
    whole = ReadStats(str(log))
    expected = [c.id for c in read_conversations(log, whole)]
    shards = plan_shards([log], target_bytes=2000)
    assert len(shards) > 5
    assert [s.index for s in shards] == list(range(len(shards)))
    parts = [s.part for s in shards]
    assert parts[0] is not None and parts[0].start == 0
    for before, after in itertools.pairwise(parts):
        assert before is not None and after is not None and before.end == after.start
    assert parts[-1] is not None and parts[-1].end == log.stat().st_size
    got: list[str] = []
    errors = []
    for shard in shards:
        stats = ReadStats(str(log))
        got += [c.id for c in read_conversations(log, stats, part=shard.part)]
        errors += [e.line for e in stats.errors]
    assert got == expected
    assert errors == [e.line for e in whole.errors] == [51]


def test_automatic_shard_size_spreads_small_logs_over_workers() -> None:
    assert EngineSettings("processes", 2).bytes_per_shard(8_000_000) == 1_000_001
    assert EngineSettings("processes", 2).bytes_per_shard(1000) == 64 * 1024
    assert EngineSettings("processes", 2, shard_bytes=5000).bytes_per_shard(10**9) == 5000


def test_worker_processes_give_the_same_audit_byte_for_byte(messy: Path) -> None:
    audit(messy, "procs", "--workers", "2")
    assert_same_audit(messy, "procs")
    run = json.loads((messy / "procs" / "run.json").read_text())
    assert run["engine"]["engine"] == "processes" and run["engine"]["shards"] > 2
    assert run["counts"] == json.loads((messy / "local" / "run.json").read_text())["counts"]
    assert run["counts"]["quarantined"] == 2  # the broken line and the duplicate


def test_a_local_ray_cluster_gives_the_same_audit_byte_for_byte(messy: Path) -> None:
    audit(messy, "ray", "--engine", "ray", "--workers", "2")
    assert_same_audit(messy, "ray")
    assert json.loads((messy / "ray" / "run.json").read_text())["engine"]["engine"] == "ray"


def test_a_killed_driver_resumes_from_its_finished_shards(messy: Path) -> None:
    args = ["audit", "run", "logs.jsonl", "--workspace", "killed", "--workers", "2"]
    args += ["--shard-mb", "0.05"]
    child = subprocess.Popen(
        [sys.executable, "-m", "mhsafety", *args],
        cwd=messy,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    shards = messy / "killed" / "shards"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(shards.glob("*.json"))) < 3:
        time.sleep(0.1)
    os.killpg(child.pid, signal.SIGKILL)  # the driver and its workers, mid-run
    child.wait()
    finished = len(list(shards.glob("*.json")))
    assert finished >= 3
    assert not (messy / "killed" / "run.json").exists()  # it really did not finish
    mhsafety(*args, cwd=messy)
    run = json.loads((messy / "killed" / "run.json").read_text())
    assert run["resumed_from"] >= finished - 2  # shards written after the glob may be more
    assert run["engine"]["shards_screened"] == run["engine"]["shards"] - run["resumed_from"]
    for name in ("screen.jsonl", "quarantine.jsonl", "design.csv", "review_queue.csv"):
        assert (messy / "killed" / name).read_bytes() == (messy / "local" / name).read_bytes()


def test_llm_judges_are_refused_on_a_sharded_engine(tmp_path: Path) -> None:
    (tmp_path / "logs.jsonl").write_text(
        json.dumps({"id": "a", "messages": [{"role": "user", "content": "hi"}]}) + "\n"
    )
    result = mhsafety(
        "audit",
        "run",
        "logs.jsonl",
        "--workers",
        "2",
        "--judge",
        "openai/gpt-4o-mini",
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert "offline judges" in result.stderr
