"""LLM judge throughput against a loopback OpenAI-compatible endpoint with fixed latency.

Ideal throughput is concurrency / latency: with ``max_connections`` C and a server that takes
L seconds per request, no client can do better than C / L requests per second. This script
screens distinct conversations through the real judge path (Inspect, the OpenAI SDK, HTTP on
127.0.0.1, reply checking) and prints achieved vs ideal, and the judge's CPU time per
request. Goal: >= 90 % of ideal.

The fake server runs in its own process, as a real endpoint would, so its threads do not
compete with the judge for the GIL. The default latency (1 s) is at the fast end of real
judge calls; at shorter latencies the judge's own CPU per request (Inspect, the SDK, schema
and quote checks: several milliseconds on one core) becomes the limit.

    python benchmarks/judge_throughput.py [--latency 1.0] [--concurrency 8 32] [--rounds 10]
"""

from __future__ import annotations

import argparse
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


def run(concurrency: int, latency: float, rounds: int, cache: Path) -> dict[str, float]:
    """Screen ``rounds * concurrency`` conversations; return the figures."""
    n = rounds * concurrency
    with fake_server(latency) as base_url:
        judge = LLMJudge(
            LLMJudgeSettings(
                # a distinct model name per run: Inspect's connection limit is per model+key
                model=f"openai-api/bench-c{concurrency}/judge",
                base_url=base_url,
                max_connections=concurrency,
                max_retries=0,
                model_args={"max_retries": 0},
                cache_dir=str(cache),
                use_ledger=False,
            )
        )
        judge.screen(conversations(concurrency, f"warm{concurrency}"))  # connect, import
        batch = conversations(n, f"c{concurrency}")
        started, cpu = time.perf_counter(), time.process_time()
        verdicts = judge.screen(batch)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        judge.close()
    errors = sum(1 for v in verdicts if v.error)
    achieved = n / elapsed
    ideal = concurrency / latency
    return {
        "requests": n,
        "seconds": elapsed,
        "achieved": achieved,
        "ideal": ideal,
        "ratio": achieved / ideal,
        "cpu_ms_per_request": 1000 * cpu / n,
        "errors": errors,
    }


def main() -> int:
    """Run each configuration and print a table; exit 1 if any is below the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--rounds", type=int, default=10, help="requests = rounds x concurrency")
    parser.add_argument("--goal", type=float, default=0.90)
    args = parser.parse_args()
    print(f"latency {args.latency:.3f}s per request, {args.rounds} rounds per configuration")
    print(
        f"{'conc':>5} {'requests':>8} {'seconds':>8} {'achieved/s':>10} {'ideal/s':>8} "
        f"{'ratio':>6} {'cpu ms/req':>10} {'errors':>6}"
    )
    below = False
    with tempfile.TemporaryDirectory() as cache:
        for concurrency in args.concurrency:
            r = run(concurrency, args.latency, args.rounds, Path(cache))
            below |= r["ratio"] < args.goal or r["errors"] > 0
            print(
                f"{concurrency:>5} {r['requests']:>8.0f} {r['seconds']:>8.2f} "
                f"{r['achieved']:>10.1f} {r['ideal']:>8.1f} {r['ratio']:>6.1%} "
                f"{r['cpu_ms_per_request']:>10.1f} {r['errors']:>6.0f}"
            )
    print(f"goal: >= {args.goal:.0%} of ideal -> {'NOT MET' if below else 'met'}")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
