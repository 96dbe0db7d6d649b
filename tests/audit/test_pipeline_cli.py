"""The audit end to end through the real command line, as a user runs it."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from mhsafety.taxonomy import CATEGORIES
from mhsafety.testing.cli import run_mhsafety

N = 1500


def mhsafety(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_mhsafety(*args, cwd=cwd, check=check)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def review_and_estimate(folder: Path, labels: str, *estimate_args: str) -> None:
    """Fill the queue of ``folder/ws`` from the ground truth, then estimate."""
    truth = "logs.truth.jsonl"
    mhsafety("audit", "simulate-review", "ws", "--truth", truth, "-o", labels, cwd=folder)
    mhsafety("audit", "estimate", "ws", "--labels", labels, *estimate_args, cwd=folder)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("audit")
    mhsafety("synth", "-n", str(N), "-o", "logs.jsonl", "--seed", "11", cwd=folder)
    mhsafety("audit", "run", "logs.jsonl", "--workspace", "ws", cwd=folder)
    review_and_estimate(folder, "reviews.csv", "--truth", "logs.truth.jsonl")
    mhsafety("audit", "report", "ws", cwd=folder)
    return folder


def test_workspace_holds_every_stage(audited: Path) -> None:
    ws = audited / "ws"
    for name in (
        "config.json",
        "screen.jsonl",
        "run.json",
        "strata.csv",
        "design.csv",
        "review_queue.csv",
        "review_queue.jsonl",
        "estimate.json",
        "report.html",
    ):
        assert (ws / name).is_file(), name
    run = json.loads((ws / "run.json").read_text())
    assert run["counts"] == {
        "source": "logs.jsonl",
        "read": N,
        "processed": N,
        "quarantined": 0,
        "reconciled": True,
        "problem": None,
    }
    screen = [json.loads(x) for x in (ws / "screen.jsonl").read_text().splitlines()]
    assert len(screen) == N
    assert list(screen[0])[:4] == ["id", "flags", "intervened", "evidence"]
    assert screen[0]["judge"]["name"] == "mhsafety-embedded"


def test_review_queue_is_blind_and_complete(audited: Path) -> None:
    ws = audited / "ws"
    with open(ws / "review_queue.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0])
    assert not {"stratum", "inclusion_prob", "flags", "score"} & columns
    assert {f"risk_{c}" for c in CATEGORIES} <= columns
    design = read_csv(ws / "design.csv")
    assert {r["conversation_id"] for r in rows} == {r["id"] for r in design}
    strata = read_csv(ws / "strata.csv")
    assert sum(int(s["population"]) for s in strata) == N
    flagged = [json.loads(x) for x in (ws / "screen.jsonl").read_text().splitlines()]
    flagged_ids = {r["id"] for r in flagged if any(r["flags"].values())}
    assert flagged_ids <= {r["id"] for r in design}


def test_estimate_brackets_the_known_truth_and_keeps_the_lower_bound_below(
    audited: Path,
) -> None:
    estimate = json.loads((audited / "ws" / "estimate.json").read_text())
    for c in CATEGORIES:
        item = estimate["categories"][c]
        lower_bound = item["flagged_only"]["per_conversation"]["estimate"]
        design = item["design_based"]["miss_rate"]
        assert lower_bound <= design["estimate"] + 1e-12
        assert design["lower"] <= design["estimate"] <= design["upper"]
        assert item["flagged_only"]["per_conversation"]["denominator"] == N
        assert estimate["truth"][c]["miss_rate"] >= lower_bound - 1e-12


def test_report_is_self_contained_html(audited: Path) -> None:
    html = (audited / "ws" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2
    assert "lower bound" in html and "design-based" in html
    assert "http://" not in html and "https://" not in html  # nothing to fetch


def test_rerun_resumes_without_rescreening(audited: Path) -> None:
    mhsafety("audit", "run", "logs.jsonl", "--workspace", "ws", cwd=audited)
    run = json.loads((audited / "ws" / "run.json").read_text())
    assert run["resumed_from"] == N
    lines = (audited / "ws" / "screen.jsonl").read_text().splitlines()
    assert len(lines) == N


def test_other_configuration_in_same_workspace_is_refused(audited: Path) -> None:
    result = mhsafety(
        "audit", "run", "logs.jsonl", "--workspace", "ws", "--window", "5", cwd=audited, check=False
    )
    assert result.returncode == 2
    assert "another configuration" in result.stderr


def test_interrupted_screen_resumes_and_drops_a_torn_line(tmp_path: Path) -> None:
    mhsafety("synth", "-n", "300", "-o", "logs.jsonl", "--seed", "2", cwd=tmp_path)
    mhsafety("audit", "run", "logs.jsonl", "--workspace", "ws", cwd=tmp_path)
    screen = tmp_path / "ws" / "screen.jsonl"
    lines = screen.read_text().splitlines(keepends=True)
    screen.write_text("".join(lines[:120]) + lines[120][:25])  # killed mid-write
    mhsafety("audit", "run", "logs.jsonl", "--workspace", "ws", cwd=tmp_path)
    run = json.loads((tmp_path / "ws" / "run.json").read_text())
    assert run["resumed_from"] == 120
    again = screen.read_text().splitlines()
    assert len(again) == 300
    assert [json.loads(x)["id"] for x in again] == [json.loads(x)["id"] for x in lines]


def test_bad_records_are_reported_quarantined_and_reconciled(tmp_path: Path) -> None:
    good = {"id": "a", "messages": [{"role": "user", "content": "i want to die"}]}
    log = tmp_path / "logs.jsonl"
    log.write_text(
        json.dumps(good)
        + "\n"
        + "{broken\n"
        + json.dumps({"id": "b", "messages": [{"role": "robot", "content": "x"}]})
        + "\n"
        + json.dumps(good)
        + "\n"
    )
    result = mhsafety("screen", "logs.jsonl", "-o", "screen.jsonl", cwd=tmp_path, check=False)
    assert result.returncode == 3
    assert "logs.jsonl:2: record: invalid JSON" in result.stderr
    assert "logs.jsonl:3: messages[0].role" in result.stderr
    assert "logs.jsonl:4: id: duplicate id 'a'" in result.stderr
    assert "read 4 = processed 1 + quarantined 3 (3 of 4 records could not" in result.stderr
    [record] = [json.loads(x) for x in (tmp_path / "screen.jsonl").read_text().splitlines()]
    assert record["flags"]["suicide"] and not record["intervened"]["suicide"]
    quarantined = (tmp_path / "screen.jsonl.quarantine.jsonl").read_text().splitlines()
    assert [json.loads(x)["line"] for x in quarantined] == [2, 3, 4]


def test_estimate_refuses_a_stratum_with_nothing_reviewed(audited: Path, tmp_path: Path) -> None:
    design = {r["id"]: r["stratum"] for r in read_csv(audited / "ws" / "design.csv")}
    with open(audited / "reviews.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    partial = tmp_path / "partial.csv"
    with open(partial, "w", newline="") as handle:
        flagged_only = [r for r in rows[1:] if design[r[0]] == "flagged"][:5]
        csv.writer(handle).writerows([rows[0], *flagged_only])
    result = mhsafety(
        "audit", "estimate", str(audited / "ws"), "--labels", str(partial), cwd=audited, check=False
    )
    assert result.returncode == 2
    assert "no reviewed conversations yet" in result.stderr


def test_an_interim_estimate_while_review_is_under_way(audited: Path, tmp_path: Path) -> None:
    with open(audited / "reviews.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    partial = tmp_path / "partial.csv"
    with open(partial, "w", newline="") as handle:  # the first 60 % in the queue's order
        csv.writer(handle).writerows(rows[: 1 + (len(rows) - 1) * 6 // 10])
    folder = tmp_path / "copy"
    import shutil

    shutil.copytree(audited / "ws", folder / "ws")
    result = mhsafety("audit", "estimate", "ws", "--labels", str(partial), cwd=folder)
    assert "INTERIM" in result.stderr and "INTERIM" in result.stdout
    estimate = json.loads((folder / "ws" / "estimate.json").read_text())
    final = json.loads((audited / "ws" / "estimate.json").read_text())
    assert 0 < estimate["interim"]["reviewed"] < estimate["interim"]["flagged"]
    assert final["interim"] is None
    for c in CATEGORIES:
        now = estimate["categories"][str(c)]["design_based"]["miss_rate"]
        done = final["categories"][str(c)]["design_based"]["miss_rate"]
        assert now["lower"] <= done["estimate"] <= now["upper"], (c, now, done)
    mhsafety("audit", "report", "ws", cwd=folder)
    html = (folder / "ws" / "report.html").read_text()
    assert "Interim estimate" in html


def test_label_typos_are_named_by_file_and_line(audited: Path, tmp_path: Path) -> None:
    with open(audited / "reviews.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    for row in rows[2:5]:
        row[1] = "yse"
    typos = tmp_path / "typos.csv"
    with open(typos, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    folder = tmp_path / "copy"
    import shutil

    shutil.copytree(audited / "ws", folder / "ws")
    result = mhsafety("audit", "estimate", "ws", "--labels", str(typos), cwd=folder)
    for line in (3, 4, 5):
        assert f"typos.csv:{line}: 'yse' is not yes/no" in result.stderr


def test_simulated_labels_are_called_simulated_in_the_report(audited: Path) -> None:
    html = (audited / "ws" / "report.html").read_text()
    assert "review labels here are simulated" in html
    assert "Clinicians then reviewed" not in html


def test_the_filled_in_review_queue_is_a_labels_file(audited: Path) -> None:
    answers = {r["conversation_id"]: r for r in read_csv(audited / "reviews.csv")}
    with open(audited / "ws" / "review_queue.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    for row in rows:  # a clinician fills in the queue in place
        answer = answers[row["conversation_id"]]
        for key, value in answer.items():
            if key in row and key != "conversation_id":
                row[key] = value
    filled = audited / "filled_queue.csv"
    with open(filled, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    before = json.loads((audited / "ws" / "estimate.json").read_text())
    mhsafety("audit", "estimate", "ws", "--labels", str(filled), cwd=audited)
    after = json.loads((audited / "ws" / "estimate.json").read_text())
    assert after["categories"] == before["categories"]
    assert after["labels"]["rows_used"] == len(rows)


def test_logs_convert_and_validate(tmp_path: Path) -> None:
    mhsafety("synth", "-n", "200", "-o", "logs.jsonl.gz", "--seed", "4", cwd=tmp_path)
    mhsafety("logs", "convert", "logs.jsonl.gz", "logs.parquet", cwd=tmp_path)
    mhsafety("logs", "convert", "logs.parquet", "people.csv", cwd=tmp_path)
    result = mhsafety("logs", "validate", "logs.parquet", cwd=tmp_path)
    assert "read 200 = processed 200 + quarantined 0 (ok)" in result.stderr
    rows = read_csv(tmp_path / "people.csv")
    assert {r["conversation_id"] for r in rows} == {f"c-{i:06d}" for i in range(1, 201)}


@pytest.fixture
def small_audit(tmp_path: Path) -> Path:
    mhsafety("synth", "-n", "300", "-o", "logs.jsonl", "--seed", "5", cwd=tmp_path)
    mhsafety("audit", "run", "logs.jsonl", "--workspace", "ws", cwd=tmp_path)
    return tmp_path


def test_rerun_keeps_reviewers_work_and_force_archives_it(small_audit: Path) -> None:
    queue = small_audit / "ws" / "review_queue.csv"
    filled = queue.read_text().replace(",,,,", ",no,no,no,no,", 1)
    queue.write_text(filled)
    result = mhsafety(
        "audit", "run", str(small_audit / "logs.jsonl"), "--workspace", "ws", cwd=small_audit
    )  # same log by another path: same audit
    assert "already drawn" in result.stderr
    assert queue.read_text() == filled
    mhsafety(
        "audit",
        "run",
        "logs.jsonl",
        "--workspace",
        "ws",
        "--window",
        "3",
        "--force",
        cwd=small_audit,
    )
    [archive] = (small_audit / "ws").glob("archive-*")
    assert (archive / "review_queue.csv").read_text() == filled
    assert json.loads((small_audit / "ws" / "config.json").read_text())["screen"]["window"] == 3


def test_report_refuses_an_estimate_from_another_run(small_audit: Path) -> None:
    ws = small_audit / "ws"
    review_and_estimate(small_audit, "r.csv", "--confidence", "0.8")
    mhsafety("audit", "report", "ws", cwd=small_audit)
    html = (ws / "report.html").read_text()
    assert "80% CI" in html and "95% CI" not in html
    estimate = json.loads((ws / "estimate.json").read_text())
    estimate["config_hash"] = "0" * 16
    (ws / "estimate.json").write_text(json.dumps(estimate))
    result = mhsafety("audit", "report", "ws", cwd=small_audit, check=False)
    assert result.returncode == 2 and "another run" in result.stderr


def test_non_utf8_and_bom_lines_are_handled_not_fatal(tmp_path: Path) -> None:
    good = json.dumps({"id": "a", "messages": [{"role": "user", "content": "hello"}]})
    log = tmp_path / "logs.jsonl"
    log.write_bytes(
        b"\xef\xbb\xbf"
        + good.encode()
        + b"\n"
        + b'{"id": "z", "messages": [{"role": "user", "content": "caf\xe9"}]}\n'
    )
    result = mhsafety("audit", "run", "logs.jsonl", "--workspace", "ws", cwd=tmp_path, check=False)
    assert result.returncode == 3, result.stderr
    assert "read 2 = processed 1 + quarantined 1 (1 of 2 records could not" in result.stderr
    [kept] = (tmp_path / "ws" / "quarantine.jsonl").read_text().splitlines()
    assert json.loads(kept)["line"] == 2 and "UTF-8" in json.loads(kept)["reason"]
