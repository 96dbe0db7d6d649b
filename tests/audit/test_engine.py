"""Sharded audits (worker processes, a real local Ray) give byte-identical results to one run.

The Ray tests use the cluster at ``MHSAFETY_TEST_RAY_ADDRESS`` (CI starts one with
``ray start --head``); without it the engine starts a local Ray itself.
"""

from __future__ import annotations

import csv
import gzip
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
from mhsafety.logio import (
    LogInputError,
    ReadStats,
    read_conversations,
    read_log,
    resolve_log,
    write_parquet,
)
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


def ray_engine() -> list[str]:
    """``--engine ray``, on the CI's cluster when ``MHSAFETY_TEST_RAY_ADDRESS`` names one."""
    address = os.environ.get("MHSAFETY_TEST_RAY_ADDRESS")
    return ["--engine", "ray", "--workers", "2", *(["--address", address] if address else [])]


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
    # The same records as a directory of three files: JSONL, gzip and Parquet (in a subfolder);
    # the duplicate's first copy is in a.jsonl, the second in the Parquet file.
    logdir = folder / "logdir"
    (logdir / "sub").mkdir(parents=True)
    (logdir / "a.jsonl").write_text("\n".join(lines[:1000]) + "\n")
    with gzip.open(logdir / "b.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines[1000:1400]) + "\n")
    write_parquet(logdir / "sub" / "c.parquet", [json.loads(line) for line in lines[1400:]])
    audit(folder, "local")
    audit(folder, "local-dir", log="logdir")
    return folder


def audit(folder: Path, workspace: str, *engine: str, log: str = "logs.jsonl") -> None:
    mhsafety("audit", "run", log, "--workspace", workspace, *engine, cwd=folder)
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


def assert_same_audit(folder: Path, workspace: str, reference: str = "local") -> None:
    for name in SAME_FILES:
        local = (folder / reference / name).read_bytes()
        assert (folder / workspace / name).read_bytes() == local, name

    def report(ws: str) -> list[str]:  # the generation time is the one line that differs
        text = (folder / ws / "report.html").read_text()
        return [line for line in text.splitlines() if " UTC · mhsafety " not in line]

    assert report(workspace) == report(reference)


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
    audit(messy, "ray", *ray_engine())
    assert_same_audit(messy, "ray")
    assert json.loads((messy / "ray" / "run.json").read_text())["engine"]["engine"] == "ray"


def test_a_directory_of_jsonl_gzip_and_parquet_files_reads_as_one_log(messy: Path) -> None:
    local = json.loads((messy / "local-dir" / "run.json").read_text())
    assert local["counts"]["read"] == 2002 and local["counts"]["quarantined"] == 2
    entries = [json.loads(t) for t in (messy / "local-dir" / "quarantine.jsonl").open()]
    assert [(e["file"], e["line"]) for e in entries] == [
        (str(Path("logdir") / "a.jsonl"), 401),
        (str(Path("logdir") / "sub" / "c.parquet"), 103),
    ]
    assert "(first on logdir/a.jsonl line 11)" in entries[1]["reason"]
    # The same conversations, in the same order, screened the same as the single file.
    screen = (messy / "local" / "screen.jsonl").read_bytes()
    assert (messy / "local-dir" / "screen.jsonl").read_bytes() == screen


def test_ray_data_on_a_directory_is_byte_identical_and_resumes_per_shard(messy: Path) -> None:
    audit(messy, "ray-dir", *ray_engine(), "--shard-mb", "0.2", log="logdir")
    assert_same_audit(messy, "ray-dir", reference="local-dir")
    run = json.loads((messy / "ray-dir" / "run.json").read_text())
    assert run["engine"]["engine"] == "ray" and run["engine"]["shards"] >= 4
    assert run["counts"] == json.loads((messy / "local-dir" / "run.json").read_text())["counts"]
    # A lost shard (as after a killed worker): only that shard is screened again.
    shards = messy / "ray-dir" / "shards"
    for path in shards.glob("00001.*"):
        path.unlink()
    (messy / "ray-dir" / "screen.jsonl").unlink()
    mhsafety(
        "audit",
        "run",
        "logdir",
        "--workspace",
        "ray-dir",
        *ray_engine(),
        "--shard-mb",
        "0.2",
        cwd=messy,
    )
    rerun = json.loads((messy / "ray-dir" / "run.json").read_text())
    assert rerun["engine"]["shards_screened"] == 1
    assert rerun["resumed_from"] == run["engine"]["shards"] - 1
    assert_same_audit(messy, "ray-dir", reference="local-dir")


def test_screen_gives_the_same_bytes_on_every_engine(messy: Path) -> None:
    mhsafety("screen", "logdir", "-o", "screen-local.jsonl", cwd=messy)
    uri = (messy / "logdir").as_uri()
    runs = {
        "procs": ["logdir", "--workers", "2", "--shard-mb", "0.2"],
        "ray": ["logdir", *ray_engine(), "--shard-mb", "0.2"],
        # The same shard plan for every engine: the encoder is batch-invariant only to ~1e-9,
        # which can flip the evidence between two messages that score the same to 9 digits.
        "ray-uri": [uri, *ray_engine(), "--shard-mb", "0.2"],
    }
    for name, args in runs.items():
        mhsafety("screen", *args, "-o", f"screen-{name}.jsonl", cwd=messy)
        local = (messy / "screen-local.jsonl").read_bytes()
        assert (messy / f"screen-{name}.jsonl").read_bytes() == local, name
        assert not (messy / f"screen-{name}.jsonl.shards").exists()
    quarantine = (messy / "screen-local.jsonl.quarantine.jsonl").read_bytes()
    for name in ("procs", "ray"):
        assert (messy / f"screen-{name}.jsonl.quarantine.jsonl").read_bytes() == quarantine
    uri_entries = (messy / "screen-ray-uri.jsonl.quarantine.jsonl").read_text()
    assert f'"file": "{uri}/a.jsonl", "line": 401' in uri_entries


def test_the_cascade_judge_gives_the_same_bytes_on_ray_and_records_what_it_settled(
    messy: Path,
) -> None:
    cascade = ["--judge", "embedded-cascade", "--shard-mb", "0.2"]
    mhsafety("screen", "logs.jsonl", *cascade, "-o", "cascade-local.jsonl", cwd=messy)
    mhsafety("screen", "logs.jsonl", *cascade, *ray_engine(), "-o", "cascade-ray.jsonl", cwd=messy)
    local = (messy / "cascade-local.jsonl").read_bytes()
    assert (messy / "cascade-ray.jsonl").read_bytes() == local
    records = [json.loads(line) for line in local.decode().splitlines()]
    settled = [r for r in records if r.get("judge_details", {}).get("settled_by") == "prefilter"]
    assert settled and len(settled) < len(records)
    assert not any(any(r["flags"].values()) for r in settled)
    assert {r["judge"]["name"] for r in records} == {"mhsafety-embedded-cascade"}


def test_an_audit_with_the_cascade_samples_settled_conversations_for_review(
    messy: Path,
) -> None:
    """Settled conversations stay in the unflagged strata: a miss they hide can be found."""
    audit(messy, "cascade", "--judge", "embedded-cascade")
    records = [json.loads(line) for line in (messy / "cascade" / "screen.jsonl").open()]
    settled = {r["id"] for r in records if r.get("judge_details", {}).get("settled_by")}
    design = list(csv.DictReader((messy / "cascade" / "design.csv").open()))
    reviewed_settled = [row for row in design if row["id"] in settled]
    assert reviewed_settled
    assert {row["stratum"] for row in reviewed_settled} == {"unflagged-low"}
    assert (messy / "cascade" / "estimate.json").exists()


def test_logs_resolve_from_directories_globs_uris_and_pyarrow_filesystems(
    tmp_path: Path,
) -> None:
    from pyarrow.fs import LocalFileSystem, SubTreeFileSystem

    good = {"messages": [{"role": "user", "content": "hello there"}]}
    (tmp_path / "logs" / "2026").mkdir(parents=True)
    (tmp_path / "logs" / "b.jsonl").write_text(json.dumps(good | {"id": "b"}) + "\n")
    with gzip.open(tmp_path / "logs" / "2026" / "a.jsonl.gz", "wt") as handle:
        handle.write(json.dumps(good | {"id": "a"}) + "\n" + json.dumps(good | {"id": "b"}) + "\n")
    (tmp_path / "logs" / "notes.txt").write_text("not a log")
    by_dir = resolve_log(tmp_path / "logs")
    assert [f.source for f in by_dir] == [
        str(tmp_path / "logs" / "2026" / "a.jsonl.gz"),
        str(tmp_path / "logs" / "b.jsonl"),
    ]
    assert [f.source for f in resolve_log(str(tmp_path / "logs" / "*.jsonl"))] == [
        str(tmp_path / "logs" / "b.jsonl")
    ]
    uri = (tmp_path / "logs").as_uri()
    assert [f.source for f in resolve_log(uri)] == [f"{uri}/2026/a.jsonl.gz", f"{uri}/b.jsonl"]
    subtree = SubTreeFileSystem(str(tmp_path), LocalFileSystem())
    files = resolve_log("logs", filesystem=subtree)
    assert [f.source for f in files] == ["logs/2026/a.jsonl.gz", "logs/b.jsonl"]
    stats = ReadStats("logs")
    assert [c.id for c in read_log(files, stats)] == ["a", "b"]
    assert stats.quarantined == 1
    assert stats.errors[0].reason == "duplicate id 'b' (first on logs/2026/a.jsonl.gz line 2)"
    assert [s.path for s in plan_shards(files)] == ["logs/2026/a.jsonl.gz", "logs/b.jsonl"]
    with pytest.raises(LogInputError):
        resolve_log(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LogInputError, match="holds no log files"):
        resolve_log(tmp_path / "empty")


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
