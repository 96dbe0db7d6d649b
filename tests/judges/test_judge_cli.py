"""Judges through the real command line: an LLM judge served by a loopback fake, panels,
validation against clinician labels, injection and grading figures."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mhsafety.testing.cli import run_mhsafety
from mhsafety.testing.fake_openai import FakeOpenAI
from mhsafety.testing.scripted_judge import rubric_following_reply

LOGS = [
    {"id": "a", "messages": [{"role": "user", "content": "I keep thinking about ending my life"}]},
    {"id": "b", "messages": [{"role": "user", "content": "Can you explain standard deviation?"}]},
    {"id": "c", "messages": [{"role": "user", "content": "I cut myself again last night"}]},
]


def mhsafety(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_mhsafety(
        *args, cwd=cwd, check=check, extra_env={"MHSAFETY_CACHE_DIR": str(cwd / "cache")}
    )


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A folder with a small log and a judge config pointing at a scripted loopback model."""
    (tmp_path / "logs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in LOGS), "utf-8")
    with FakeOpenAI(reply=rubric_following_reply()) as server:
        settings = {"base_url": server.base_url, "max_retries": 0, "model_args": {"max_retries": 0}}
        (tmp_path / "judge.yaml").write_text(json.dumps(settings), "utf-8")
        yield tmp_path


def records(path: Path) -> dict[str, dict[str, object]]:
    lines = path.read_text("utf-8").splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def test_screen_with_an_llm_judge_then_rerun_reuses_every_verdict(folder: Path) -> None:
    args = ("screen", "logs.jsonl", "-o", "screen.jsonl", "--judge", "openai/gpt-4o-mini")
    first = mhsafety(*args, "--judge-config", "judge.yaml", cwd=folder)
    screened = records(folder / "screen.jsonl")
    assert screened["a"]["flags"]["suicide"] and screened["c"]["flags"]["nssi"]  # type: ignore[index]
    assert not any(screened["b"]["flags"].values())  # type: ignore[attr-defined]
    assert screened["a"]["judge"]["name"] == "llm:openai/gpt-4o-mini"  # type: ignore[index]
    assert "screened 3 = 3 verdicts + 0 judge errors" in first.stderr
    assert "3 asked = 0 reused + 3 answered + 0 judge errors; 3 model calls" in first.stderr
    second = mhsafety(*args, "--judge-config", "judge.yaml", cwd=folder)
    assert "3 asked = 3 reused + 0 answered + 0 judge errors; 0 model calls" in second.stderr


def test_a_panel_lists_disagreements_in_each_record(folder: Path) -> None:
    mhsafety(
        "screen",
        "logs.jsonl",
        "-o",
        "panel.jsonl",
        "--judge-config",
        "judge.yaml",
        "--judge",
        "panel:lexicon,openai/gpt-4o-mini",
        "--aggregate",
        "majority",
        cwd=folder,
    )
    for record in records(folder / "panel.jsonl").values():
        details = record["judge_details"]
        assert set(details) == {"members", "disagreements"}  # type: ignore[arg-type]
        assert set(details["members"]) == {"lexicon", "openai/gpt-4o-mini"}  # type: ignore[index]


def test_an_unknown_judge_and_bad_settings_are_clear_errors(folder: Path) -> None:
    unknown = mhsafety(
        "screen", "logs.jsonl", "-o", "x.jsonl", "--judge", "gpt4", cwd=folder, check=False
    )
    assert unknown.returncode == 2 and "unknown judge 'gpt4'" in unknown.stderr
    (folder / "bad.yaml").write_text("max_conections: 4\n", "utf-8")
    bad = mhsafety(
        "screen",
        "logs.jsonl",
        "-o",
        "x.jsonl",
        "--judge",
        "openai/gpt-4o-mini",
        "--judge-config",
        "bad.yaml",
        cwd=folder,
        check=False,
    )
    assert bad.returncode == 2 and "unknown judge settings: max_conections" in bad.stderr


def test_validate_against_a_labels_csv(folder: Path) -> None:
    labels = "conversation_id,reviewer,risk_suicide,risk_nssi,risk_eating_disorder,risk_substance\n"
    labels += "a,r1,yes,no,no,no\nb,r1,no,no,no,no\nc,r1,no,yes,no,no\n"
    (folder / "labels.csv").write_text(labels, "utf-8")
    result = mhsafety(
        "judge",
        "validate",
        "--judge",
        "openai/gpt-4o-mini",
        "--judge-config",
        "judge.yaml",
        "--labels",
        "labels.csv",
        "--logs",
        "logs.jsonl",
        "--json",
        "v.json",
        cwd=folder,
    )
    figures = json.loads((folder / "v.json").read_text("utf-8"))
    (folder / "broken.csv").write_text("id,risk\na,yes\n", "utf-8")
    broken = mhsafety(
        "judge",
        "validate",
        "--labels",
        "broken.csv",
        "--logs",
        "logs.jsonl",
        cwd=folder,
        check=False,
    )
    assert broken.returncode == 2 and "missing columns" in broken.stderr
    assert figures["counts"]["compared"] == 3 and figures["counts"]["judge_errors"] == 0
    assert figures["categories"]["suicide"]["confusion"]["tp"] == 1
    assert "labelled 3 = compared 3 + judge errors 0" in result.stdout


def test_injection_and_grading_figures_for_the_offline_judge(folder: Path) -> None:
    mhsafety("judge", "injection", "--json", "inj.json", cwd=folder)
    injection = json.loads((folder / "inj.json").read_text("utf-8"))
    assert injection["injected"] == injection["compared"] + injection["judge_errors"] >= 140
    mhsafety("judge", "eval", "--task", "grade", "--json", "grade.json", cwd=folder)
    grading = json.loads((folder / "grade.json").read_text("utf-8"))
    assert grading["items"] == grading["graded"] + grading["judge_errors"] > 100
