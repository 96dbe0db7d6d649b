"""`audit run` on real-length text: one process, worker processes, Ray; against the raw encoder.

Usage::

    python benchmarks/audit_engines.py [-n 1200] [--workers 2] [--address ADDR]

Writes a log of held-out Reddit posts of 100-400 words (from the installed construct-tracker
package; posts are reused under new ids to reach ``-n``), then runs ``mhsafety audit run`` on
it with each engine in a fresh workspace: ``local`` (one worker) with the encoder on one thread
and on every core, ``processes`` with ``--workers`` and ``ray`` with ``--workers`` (Ray Data
reading, ``map_batches`` actors screening; ``--address`` joins a running cluster, else a local
one is started). For each it prints the screening time from ``run.json`` (without process
start-up), conversations/s, and the ratio to the raw encoder embedding the same windows on every
core in this process (no cache). It also checks that every engine wrote the same
``screen.jsonl``, and prints the load average before and after (other jobs skew the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mhsafety.judges.embedded import EmbeddedJudge
from mhsafety.realtext import reddit_posts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=1200, help="conversations")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--address", default=None, help="Ray cluster (default: a local Ray)")
    args = parser.parse_args(argv)
    print(f"load average before: {_load()}")

    posts = [
        p for p in reddit_posts("test", include_other=True) if 100 <= len(p.text.split()) <= 400
    ]
    rng = random.Random(args.seed)
    chosen = [rng.choice(posts) for _ in range(args.n)]
    judge = EmbeddedJudge()
    assert judge.encoder is not None
    windows = [w for p in chosen for w in judge.encoder.windows(p.text)]
    started = time.perf_counter()
    judge.encoder.encode_uncached(windows)
    raw_rate = len(chosen) / (time.perf_counter() - started)

    ray = ["--engine", "ray", "--workers", str(args.workers)]
    ray += ["--address", args.address] if args.address else []
    runs = {
        "local, 1 thread": (["--engine", "local"], {"MHSAFETY_ENCODER_THREADS": "1"}),
        "local, all cores": (["--engine", "local"], {}),
        f"processes x{args.workers}": (["--workers", str(args.workers)], {}),
        f"ray data x{args.workers}": (ray, {}),
    }
    print(
        f"{len(chosen)} conversations (Reddit posts, mean "
        f"{sum(len(p.text.split()) for p in chosen) / len(chosen):.0f} words, "
        f"{len(windows) / len(chosen):.2f} windows each); {os.cpu_count()} cores"
    )
    print(f"raw encoder, same windows, all cores: {raw_rate:.1f} conversations/s")
    screens = set()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "logs.jsonl"
        with open(log, "w", encoding="utf-8") as handle:
            for i, post in enumerate(chosen):
                record = post.conversation().model_dump(mode="json", exclude_none=True)
                record["id"] = f"b-{i:06d}"
                record.pop("metadata", None)
                handle.write(json.dumps(record) + "\n")
        for name, (engine, env) in runs.items():
            ws = Path(tmp) / name.replace(" ", "_").replace(",", "")
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mhsafety",
                    "audit",
                    "run",
                    str(log),
                    "--workspace",
                    str(ws),
                    *engine,
                ],
                check=True,
                capture_output=True,
                env=os.environ | env,
            )
            wall = time.perf_counter() - started
            seconds = json.loads((ws / "run.json").read_text())["screen_seconds"]
            rate = len(chosen) / seconds
            screens.add((ws / "screen.jsonl").read_bytes())
            print(
                f"{name:20s} screen {seconds:6.1f} s  {rate:6.1f} conv/s  "
                f"ratio to raw {rate / raw_rate:4.2f}  (wall with start-up {wall:5.1f} s)"
            )
    print("screen.jsonl identical across engines:", len(screens) == 1)
    print(f"load average after: {_load()}")
    return 0


def _load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
