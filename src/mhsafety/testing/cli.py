"""Run the real ``mhsafety`` command line in a child process, as a user would (for tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Collection, Mapping
from pathlib import Path


def run_mhsafety(
    *args: str,
    cwd: Path,
    stdin: str = "",
    check: bool = True,
    ok: Collection[int] = (0,),
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mhsafety ARGS`` in ``cwd`` and return the finished process.

    Args:
        args: The command line after ``mhsafety``.
        cwd: Working directory.
        stdin: Text fed to standard input.
        check: Raise ``AssertionError`` (with the output) when the exit status is not in ``ok``.
        ok: Exit statuses that count as success.
        env: The whole environment; by default the caller's, with ``COLUMNS=200`` so tables
            and help are not wrapped.
        extra_env: Variables added to that environment.
        timeout: Seconds before the child is killed.
    """
    environment = dict(os.environ if env is None else env)
    if env is None:
        environment["COLUMNS"] = "200"
    environment.update(extra_env or {})
    result = subprocess.run(
        [sys.executable, "-m", "mhsafety", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
    )
    if check and result.returncode not in ok:
        raise AssertionError(
            f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result
