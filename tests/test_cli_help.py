"""Help and version as a user sees them, piped (not a terminal) as in scripts and CI logs."""

from __future__ import annotations

import os
import subprocess
import sys

from mhsafety import __version__


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    return subprocess.run(
        [sys.executable, "-m", "mhsafety", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_version_flag() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"mhsafety {__version__}"


def test_flags_show_no_value_type_and_help_is_not_cut_at_80_columns() -> None:
    result = run("screen", "--help")
    assert result.returncode == 0
    assert "<bool>" not in result.stdout
    assert "<path>" in result.stdout  # options that take a value still say what
    # the longest help line fits on one line when piped
    assert any(
        "Where unreadable records go (default: OUTPUT.quarantine.jsonl)." in line
        for line in result.stdout.splitlines()
    )


def test_messages_are_not_hard_wrapped_when_piped() -> None:
    result = run("judge", "eval", "--set", "/nonexistent/labelled-conversations-file.jsonl")
    assert result.returncode == 2
    [line] = [x for x in result.stderr.splitlines() if "does not exist" in x]
    assert "labelled-conversations-file.jsonl does not exist" in line
