"""Bad input through the real command line: clear, capped errors and a non-zero status."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mhsafety.logio import ReadStats, sniff_format
from mhsafety.testing.cli import run_mhsafety

GOOD = {"id": "a", "messages": [{"role": "user", "content": "hello"}]}


def mhsafety(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_mhsafety(*args, cwd=cwd, check=False, timeout=300)


def test_an_empty_log_is_an_error_not_ok(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    result = mhsafety("logs", "validate", "empty.jsonl", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert "(ok)" not in result.stderr
    assert "no records" in result.stderr


def test_a_mostly_failing_log_does_not_say_ok(tmp_path: Path) -> None:
    lines = [json.dumps(GOOD), json.dumps(GOOD | {"id": "b"})] + ["{broken"] * 10
    (tmp_path / "log.jsonl").write_text("\n".join(lines) + "\n")
    result = mhsafety("logs", "validate", "log.jsonl", cwd=tmp_path)
    assert result.returncode == 3
    assert "(ok)" not in result.stderr
    assert "10 of 12 records could not be read" in result.stderr


def test_binary_garbage_prints_a_capped_list_and_one_explanation(tmp_path: Path) -> None:
    garbage = bytes(range(256)) * 40 + b"\n"
    (tmp_path / "blob.jsonl").write_bytes(
        b"".join(garbage[i : i + 50] + b"\n" for i in range(0, 10240, 50))
    )
    result = mhsafety("logs", "validate", "blob.jsonl", "--quarantine", "bad.jsonl", cwd=tmp_path)
    assert result.returncode == 3
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 20
    assert "binary file" in result.stderr
    assert "more unreadable records not shown" in result.stderr
    kept = (tmp_path / "bad.jsonl").read_text().splitlines()
    stats_line = next(
        line for line in result.stderr.splitlines() if "read " in line and "=" in line
    )
    read = int(stats_line.split("read ")[1].split(" ")[0])
    assert len(kept) == read  # every record reported, even those not printed


def test_convert_refuses_its_own_csv_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "log.jsonl").write_text(json.dumps(GOOD) + "\n")
    assert mhsafety("logs", "convert", "log.jsonl", "people.csv", cwd=tmp_path).returncode == 0
    result = mhsafety("logs", "convert", "people.csv", "back.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert "export for people" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3


def test_a_csv_given_to_validate_is_named_as_csv(tmp_path: Path) -> None:
    rows = ["conversation_id,turn,role,content"] + [f"c{i},0,user,hello" for i in range(50)]
    (tmp_path / "log.jsonl").write_text("\n".join(rows) + "\n")
    result = mhsafety("logs", "validate", "log.jsonl", cwd=tmp_path)
    assert result.returncode == 3
    assert "looks like a CSV file" in result.stderr
    assert result.stderr.count("skipped") == 20


@pytest.mark.parametrize(
    ("stats", "problem"),
    [
        (ReadStats("x", 0, 0, 0), "no records: the file is empty"),
        (ReadStats("x", 3, 0, 3), "none of the 3 records could be read"),
        (ReadStats("x", 3, 2, 1), "1 of 3 records could not be read"),
        (ReadStats("x", 3, 3, 0), None),
        (ReadStats("x", 3, 1, 1), "DOES NOT RECONCILE"),
    ],
)
def test_read_stats_name_the_problem(stats: ReadStats, problem: str | None) -> None:
    assert stats.problem == problem
    assert stats.summary().endswith(f"({problem or 'ok'})")


def test_sniff_format(tmp_path: Path) -> None:
    cases = {
        "log.jsonl": (json.dumps(GOOD) + "\n").encode(),
        "people.jsonl": b"conversation_id,turn,role,content\nc1,0,user,hi\n",
        "blob.jsonl": b"\x00\x01\x02garbage",
        "latin.jsonl": b"caf\xe9 au lait\n",
    }
    hints = {}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        hints[name] = sniff_format(tmp_path / name)
    assert hints["log.jsonl"] is None
    assert "CSV" in (hints["people.jsonl"] or "")
    assert "binary" in (hints["blob.jsonl"] or "")
    assert "UTF-8" in (hints["latin.jsonl"] or "")
