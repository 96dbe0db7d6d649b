"""LLM judge throughput against a loopback OpenAI-compatible endpoint with fixed latency.

Ideal throughput is concurrency / latency: with C concurrent calls and a server that takes
L seconds per request, no client can do better than C / L requests per second. This script
screens distinct conversations through the real judge path (the worker pool, Inspect, the
OpenAI SDK, HTTP on 127.0.0.1, reply checking, the verdict ledger) and prints calls/s, the
percentage of ideal and the judge's CPU time per call. Goal: >= 90 % of ideal at 32 and 128.

The fake server runs in its own process, as a real endpoint would, so its threads do not
compete with the judge for the GIL. The default latency (1 s) is at the fast end of real
judge calls; at shorter latencies the judge's own CPU per call (Inspect, the SDK, schema
and quote checks: about 3 ms on one core) becomes the limit. The load average is printed
before and after each configuration: the figures mean little on a busy machine.

    python benchmarks/judge_throughput.py [--latency 1.0] [--concurrency 32 128] [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mhsafety.conversation import Conversation
from mhsafety.judges.llm import LLMJudge, LLMJudgeSettings


@contextmanager
def fake_server(latency: float) -> Iterator[str]:
    """The scripted fake endpoint in a child process; yields its base URL."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mhsafety.testing.fake_openai",
            "--latency",
            str(latency),
            "--until-stdin-closes",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)


def conversations(n: int, tag: str) -> list[Conversation]:
    """Distinct short conversations (distinct prompts, so nothing is shared or reused)."""
    return [
        Conversation.model_validate(
            {
                "id": f"{tag}-{i}",
                "messages": [
                    {
                        "role": "user",
                        "content": f"Conversation {tag}-{i}: I keep thinking "
                        "about ending my life and I don't know who to talk to.",
                    },
                    {"role": "assistant", "content": "I'm really glad you told me."},
                ],
            }
        )
        for i in range(n)
    ]


def run(
    concurrency: int, latency: float, rounds: int, cache: Path, ledger: bool
) -> dict[str, float]:
    """Screen ``rounds * concurrency`` conversations; return the figures."""
    n = rounds * concurrency
    load_before = os.getloadavg()[0]
    with fake_server(latency) as base_url:
        judge = LLMJudge(
            LLMJudgeSettings(
                # a distinct model name per run: Inspect's connection limit is per model+key
                model=f"openai-api/bench-c{concurrency}/judge",
                base_url=base_url,
                connections={f"openai-api/bench-c{concurrency}": concurrency},
                max_retries=0,
                model_args={"max_retries": 0},
                cache_dir=str(cache / f"c{concurrency}"),
                use_ledger=ledger,
            )
        )
        judge.screen(conversations(concurrency, f"warm{concurrency}"))  # connect, import
        batch = conversations(n, f"c{concurrency}")
        started, cpu = time.perf_counter(), time.process_time()
        verdicts = judge.screen(batch)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        calls = judge.usage.calls - concurrency
        judge.close()
    errors = sum(1 for v in verdicts if v.error)
    achieved = n / elapsed
    ideal = concurrency / latency
    return {
        "requests": n,
        "calls": calls,
        "seconds": elapsed,
        "achieved": achieved,
        "ideal": ideal,
        "ratio": achieved / ideal,
        "cpu_ms_per_request": 1000 * cpu / n,
        "errors": errors,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def main() -> int:
    """Run each configuration and print a table; exit 1 if any is below the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--rounds", type=int, default=10, help="requests = rounds x concurrency")
    parser.add_argument("--goal", type=float, default=0.90)
    parser.add_argument(
        "--no-ledger", action="store_true", help="do not write verdicts to a ledger"
    )
    args = parser.parse_args()
    print(
        f"latency {args.latency:.3f}s per request, {args.rounds} rounds per configuration, "
        f"ledger {'off' if args.no_ledger else 'on'}, {os.cpu_count()} cores"
    )
    print(
        f"{'conc':>5} {'calls':>6} {'seconds':>8} {'calls/s':>8} {'ideal/s':>8} "
        f"{'% ideal':>8} {'cpu ms/call':>11} {'errors':>6} {'load 1m before/after':>21}"
    )
    below = False
    with tempfile.TemporaryDirectory() as cache:
        for concurrency in args.concurrency:
            r = run(concurrency, args.latency, args.rounds, Path(cache), not args.no_ledger)
            below |= r["ratio"] < args.goal or r["errors"] > 0 or r["calls"] != r["requests"]
            print(
                f"{concurrency:>5} {r['calls']:>6.0f} {r['seconds']:>8.2f} "
                f"{r['achieved']:>8.1f} {r['ideal']:>8.1f} {r['ratio']:>8.1%} "
                f"{r['cpu_ms_per_request']:>11.2f} {r['errors']:>6.0f} "
                f"{r['load_before']:>10.2f}/{r['load_after']:<10.2f}",
                flush=True,
            )
    print(f"goal: >= {args.goal:.0%} of ideal -> {'NOT MET' if below else 'met'}")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
