"""`mhsafety monitor` end to end on a synthetic log with a planted regression (real CLI)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from mhsafety.bench.bundles import load_set
from mhsafety.testing.cli import run_mhsafety

SCRIPTED_REFERS = "mhsafety/scripted?behaviour=refuse"
SCRIPTED_WARM = "mhsafety/scripted?behaviour=supportive"


def mhsafety(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return run_mhsafety(*args, cwd=cwd, check=check, env=env)


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four weeks, the second version from week 3 almost never refers; reviewed by truth."""
    folder = tmp_path_factory.mktemp("monitor")
    mhsafety(
        "synth", "--weeks", "4", "-n", "600", "--regression-week", "3",
        "--regressed-timely", "0.05", "-o", "logs.jsonl", cwd=folder,
    )  # fmt: skip
    first = mhsafety("monitor", "run", "logs.jsonl", "--no-coverage", cwd=folder)
    assert "awaiting review" in first.stdout
    assert "no labels yet" in first.stderr
    mhsafety(
        "monitor", "simulate-review", "monitor", "--truth", "logs.truth.jsonl",
        "-o", "reviews.csv", cwd=folder,
    )  # fmt: skip
    return folder


def test_alert_fires_on_the_regression_and_the_trend_is_written(monitored: Path) -> None:
    result = mhsafety(
        "monitor", "run", "logs.jsonl", "--labels", "reviews.csv", "--truth", "logs.truth.jsonl",
        cwd=monitored, check=False,
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    assert "ALERT misses-up-after-release · assistant-v3 → assistant-v4" in result.stderr
    trend = json.loads((monitored / "monitor" / "trend.json").read_text("utf-8"))
    assert [w["status"] for w in trend["windows"]] == ["estimated"] * 4
    assert [w["version"] for w in trend["windows"]] == ["assistant-v3"] * 2 + ["assistant-v4"] * 2
    assert trend["split"] == trend["split"] | {"read": 2400, "placed": 2400, "reconciled": True}
    versions = {v["version"]: v for v in trend["versions"]}
    before = versions["assistant-v3"]["rates"]["suicide"]["miss_per_confirmed"]["estimate"]
    after = versions["assistant-v4"]["rates"]["suicide"]["miss_per_confirmed"]["estimate"]
    assert after > before + 0.3
    fired = [a for a in trend["alerts"] if a["rule"] == "misses-up-after-release"]
    assert fired and all(a["where"] == "assistant-v3 → assistant-v4" for a in fired)
    # no threshold alert in the windows before the release
    assert not [
        a for a in trend["alerts"] if "assistant-v3" in a["where"] and "→" not in a["where"]
    ]
    # every estimated window also has the audit's own estimate.json (`audit report` reads it)
    for window in trend["windows"]:
        assert (monitored / "monitor" / "windows" / window["slug"] / "estimate.json").is_file()
    report = (monitored / "monitor" / "report.html").read_text("utf-8")
    assert "alert(s) fired" in report and "data:image/png;base64," in report


def test_a_rerun_keeps_every_review_sample_and_gives_the_same_figures(monitored: Path) -> None:
    args = ("monitor", "run", "logs.jsonl", "--labels", "reviews.csv", "--no-coverage")
    mhsafety(*args, cwd=monitored, check=False)
    windows = monitored / "monitor" / "windows"
    designs = {p: p.read_bytes() for p in windows.glob("*/design.csv")}
    trend = json.loads((monitored / "monitor" / "trend.json").read_text("utf-8"))
    again = mhsafety(*args, cwd=monitored, check=False)
    assert again.returncode == 4
    assert {p: p.read_bytes() for p in windows.glob("*/design.csv")} == designs
    rerun = json.loads((monitored / "monitor" / "trend.json").read_text("utf-8"))
    assert rerun["windows"] == trend["windows"] and rerun["alerts"] == trend["alerts"]


def test_other_settings_in_the_same_folder_are_refused(monitored: Path) -> None:
    result = mhsafety("monitor", "run", "logs.jsonl", "--period", "day", cwd=monitored, check=False)
    assert result.returncode == 2 and "monitors with other settings" in result.stderr


def test_confirmed_misses_become_a_bundle_the_bench_runs(monitored: Path) -> None:
    mhsafety("monitor", "run", "logs.jsonl", "--labels", "reviews.csv", cwd=monitored, check=False)
    export = mhsafety(
        "monitor", "export-misses", "monitor", "--labels", "reviews.csv", cwd=monitored
    )
    assert "version 1, written" in export.stderr
    bundle = monitored / "monitor" / "misses"
    test_set = load_set(bundle)
    assert test_set.scoring == "referral_after_risk" and test_set.items
    manifest = yaml.safe_load((bundle / "manifest.yaml").read_text("utf-8"))
    assert set(manifest["sources"]) == {i.id for i in test_set.items}
    assert all(i.risk_turn is not None and i.expects_resources for i in test_set.items)
    truth = [json.loads(line) for line in (monitored / "logs.truth.jsonl").open()]
    missed = {t["id"] for t in truth if any(v != "timely" for v in t["intervention"].values())}
    assert len(test_set.items) <= len(missed)
    # only the user's words are kept: no assistant reply of the log is in the bundle
    assert "[specific method details]" not in (bundle / "items.jsonl").read_text("utf-8")
    same = mhsafety("monitor", "export-misses", "monitor", "--labels", "reviews.csv", cwd=monitored)
    assert "version 1, unchanged" in same.stderr

    mhsafety(
        "bench", "run", "--sets", str(bundle), "--limit", "6", "--runs", "misses-runs",
        "--systems", f"{SCRIPTED_REFERS},{SCRIPTED_WARM}", cwd=monitored,
    )  # fmt: skip
    mhsafety(
        "bench", "run", "--sets", "graded-queries", "--limit", "5", "--runs", "bench-runs",
        "--systems", SCRIPTED_REFERS, cwd=monitored,
    )  # fmt: skip
    shown = mhsafety(
        "monitor", "report", "monitor", "--bench", "misses-runs", "--bench", "bench-runs",
        "--system", SCRIPTED_REFERS, "--version", "assistant-v4", cwd=monitored,
    )  # fmt: skip
    report = (monitored / "monitor" / "report.html").read_text("utf-8")
    assert "Earlier misses, run again" in report
    assert "100.0% (95% CI 61.0%–100.0%; 6 / 6)" in report  # the referring system handles all
    assert "0.00% (95% CI 0.00%–39.0%; 0 / 6)" in report  # the warm one none
    assert "deployed version <code>assistant-v4</code>" in report
    assert "Test set vs real world: bench" in shown.stdout
    assert "now handled by mhsafety/scripted?behaviour=refuse: 6 of 6" in shown.stderr


def test_a_bad_record_and_a_missing_time_are_reported_not_lost(tmp_path: Path) -> None:
    mhsafety(
        "synth", "--weeks", "2", "-n", "200", "--regression-week", "3", "-o", "logs.jsonl",
        cwd=tmp_path,
    )  # fmt: skip
    lines = (tmp_path / "logs.jsonl").read_text("utf-8").splitlines()
    record = json.loads(lines[5])
    record["metadata"].pop("started_at")
    lines[5] = json.dumps(record)
    lines.insert(9, "{not json")
    (tmp_path / "logs.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    result = mhsafety("monitor", "run", "logs.jsonl", "--no-coverage", cwd=tmp_path, check=False)
    assert result.returncode == 3
    assert "read 401 records: 399 in 2 windows, 1 unreadable, 1 without a usable started_at" in (
        result.stderr
    )
    quarantine = [json.loads(line) for line in (tmp_path / "monitor" / "quarantine.jsonl").open()]
    assert sorted(q["line"] for q in quarantine) == [6, 10]
    assert any("started_at is missing" in q["reason"] for q in quarantine)


def test_a_version_pools_its_windows_as_one_stratified_design(monitored: Path) -> None:
    from mhsafety.audit.labels import read_labels
    from mhsafety.audit.workspace import Workspace, pool_designs, review_design, screen_frame
    from mhsafety.monitor.run import labels_for

    mhsafety("monitor", "run", "logs.jsonl", "--labels", "reviews.csv", cwd=monitored, check=False)
    labels = read_labels(monitored / "reviews.csv")
    windows = sorted((monitored / "monitor" / "windows").glob("*assistant-v4"))
    parts = {}
    for folder in windows:
        workspace = Workspace(folder)
        ids = set(screen_frame(workspace.screen)["id"])
        parts[folder.name] = review_design(workspace, labels_for(labels, ids))
    pooled = pool_designs(parts).estimate("suicide")
    alone = [part.estimate("suicide") for part in parts.values()]
    assert pooled.population == sum(a.population for a in alone)
    assert pooled.total_misses.estimate == pytest.approx(
        sum(a.total_misses.estimate for a in alone)
    )
    assert pooled.misses_flagged == sum(a.misses_flagged for a in alone)
    # pooling narrows the interval of the rate relative to either window alone
    width = pooled.miss_per_risk.upper - pooled.miss_per_risk.lower
    assert width < min(a.miss_per_risk.upper - a.miss_per_risk.lower for a in alone)
    trend = json.loads((monitored / "monitor" / "trend.json").read_text("utf-8"))
    v4 = next(v for v in trend["versions"] if v["version"] == "assistant-v4")
    assert v4["rates"]["suicide"]["miss_per_risk"]["estimate"] == pytest.approx(
        pooled.miss_per_risk.estimate
    )


def test_late_conversations_never_overwrite_an_audited_window(tmp_path: Path) -> None:
    mhsafety(
        "synth", "--weeks", "2", "-n", "300", "--regression-week", "3", "-o", "logs.jsonl",
        cwd=tmp_path,
    )  # fmt: skip
    mhsafety("monitor", "run", "logs.jsonl", "--no-coverage", cwd=tmp_path)
    window = tmp_path / "monitor" / "windows" / "2026-W02_assistant-v3"
    audited_log = (window / "logs.jsonl").read_bytes()
    design = (window / "design.csv").read_bytes()
    late = json.loads((tmp_path / "logs.jsonl").read_text("utf-8").splitlines()[0])
    late["id"] = "late-1"
    with (tmp_path / "logs.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(late) + "\n")
    again = mhsafety("monitor", "run", "logs.jsonl", "--no-coverage", cwd=tmp_path)
    assert "--redo 2026-W02_assistant-v3" in again.stderr
    assert (window / "logs.jsonl").read_bytes() == audited_log  # the audit keeps its log
    assert (window / "design.csv").read_bytes() == design
    assert "late-1" in (window / "logs.pending.jsonl").read_text("utf-8")
    trend = json.loads((tmp_path / "monitor" / "trend.json").read_text("utf-8"))
    first = trend["windows"][0]
    assert first["stale"] and first["conversations"] == 301 and first["audited"] == 300

    unknown = mhsafety(
        "monitor", "run", "logs.jsonl", "--redo", "nope", "--no-coverage", cwd=tmp_path, check=False
    )
    assert unknown.returncode == 2 and "--redo nope: no such window" in unknown.stderr
    mhsafety(
        "monitor", "run", "logs.jsonl", "--redo", "2026-W02_assistant-v3", "--no-coverage",
        cwd=tmp_path,
    )  # fmt: skip
    assert "late-1" in (window / "logs.jsonl").read_text("utf-8")
    assert not (window / "logs.pending.jsonl").exists()
    archived = list(window.glob("archive-*/design.csv"))
    assert len(archived) == 1 and archived[0].read_bytes() == design  # kept, not deleted
    trend = json.loads((tmp_path / "monitor" / "trend.json").read_text("utf-8"))
    assert not trend["windows"][0]["stale"] and trend["windows"][0]["audited"] == 301
