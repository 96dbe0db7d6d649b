"""Time and peak memory of screening one huge message, against a one-line log.

Usage::

    python benchmarks/huge_message.py [--megabytes 5]

Writes a log with one conversation whose user message is ``--megabytes`` of ordinary text
ending in a disclosure, screens it with ``mhsafety screen`` in a child process, and prints
wall time, peak resident memory and whether the disclosure at the end was flagged, beside the
same figures for a log of one short message (the start-up cost of loading the judge).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILLER = "Today I walked to the shop, cooked dinner with my sister and watched a film. "
DISCLOSURE = "I want to kill myself tonight, I can't go on."


def screen_once(log: Path) -> tuple[float, float, bool]:
    """Screen ``log`` in a child; wall seconds, the child's peak MiB, suicide flag of line 1."""
    out = log.with_suffix(".screen.jsonl")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mhsafety", "screen", str(log), "-o", str(out)],
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        peak = before  # ru_maxrss is the largest child so far
    record = json.loads(out.read_text().splitlines()[0])
    return seconds, peak / 1024, bool(record["flags"]["suicide"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=5.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small.jsonl"
        small.write_text(
            json.dumps({"id": "s", "messages": [{"role": "user", "content": DISCLOSURE}]}) + "\n"
        )
        huge = Path(tmp) / "huge.jsonl"
        repeats = int(args.megabytes * 1_000_000 / len(FILLER))
        text = FILLER * repeats + DISCLOSURE
        huge.write_text(
            json.dumps({"id": "h", "messages": [{"role": "user", "content": text}]}) + "\n"
        )
        s_time, s_mem, s_flag = screen_once(small)
        h_time, h_mem, h_flag = screen_once(huge)
    print(f"short message      {s_time:6.2f} s  peak {s_mem:7.0f} MiB  flagged {s_flag}")
    print(
        f"{len(text) / 1e6:.1f} MB message    {h_time:6.2f} s  peak {h_mem:7.0f} MiB  "
        f"flagged {h_flag}"
    )
    print(f"added by the huge message: {h_time - s_time:.2f} s, {h_mem - s_mem:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
