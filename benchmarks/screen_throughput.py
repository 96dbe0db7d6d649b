"""Screen throughput on synthetic deployment logs, against raw embedding throughput.

Usage::

    python benchmarks/screen_throughput.py [-n 20000] [--raw-sample 4000]

Prints conversations/s and user messages/s of the full embedded screen (lexicon, embeddings,
heads, intervention check), the raw MiniLM-int8 throughput of the same messages measured in
the same run (a random sample of them, embedded without the cache), their ratio, and the
process's peak memory. Goal (issue 2): 20,000 conversations in <= 60 s on 2 cores and
>= 80 % of raw embedding throughput.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from mhsafety.audit.screening import ScreenSettings, screen_conversations
from mhsafety.interventions import ResourceCatalog
from mhsafety.judges.embedded import EmbeddedJudge
from mhsafety.logio import read_conversations
from mhsafety.synth import write_synthetic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="conversations")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--raw-sample", type=int, default=4000, help="messages for the raw rate")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "logs.jsonl"
        write_synthetic(log, args.n, seed=args.seed)
        conversations = list(read_conversations(log))
    user_texts = [m.content for c in conversations for _, m in c.user_messages()]
    distinct = len(set(user_texts))

    judge = EmbeddedJudge()
    catalog = ResourceCatalog.load()
    started = time.perf_counter()
    flagged = 0
    for _, record in screen_conversations(conversations, judge, catalog, ScreenSettings()):
        flagged += any(record["flags"].values())
    screen_seconds = time.perf_counter() - started
    assert judge.encoder is not None
    encoded = judge.encoder.encoded_count

    # The same encoder the screen used, every message through the network, no cache.
    sample = random.Random(args.seed).sample(user_texts, min(args.raw_sample, len(user_texts)))
    started = time.perf_counter()
    judge.encoder.encode_uncached(sample)
    raw_rate = len(sample) / (time.perf_counter() - started)

    message_rate = len(user_texts) / screen_seconds
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"conversations          {len(conversations)}")
    print(
        f"user messages          {len(user_texts)} ({distinct} distinct; "
        f"{encoded} went through the encoder)"
    )
    print(f"flagged conversations  {flagged}")
    print(f"screen time            {screen_seconds:.1f} s")
    print(f"conversations/s        {len(conversations) / screen_seconds:.0f}")
    print(f"user messages/s        {message_rate:.0f}")
    print(
        f"raw embedding msg/s    {raw_rate:.0f} ({judge.encoder.info.name}, same messages, "
        f"{len(sample)} sampled, no cache)"
    )
    print(f"screen / raw ratio     {message_rate / raw_rate:.2f}")
    print(f"peak memory            {peak_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
