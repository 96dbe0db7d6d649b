"""Screen throughput on real-length text (Reddit posts of Low et al. 2020), against the raw encoder.

Usage::

    python benchmarks/screen_real_text.py [-n 600] [--min-words 100] [--max-words 400]

Takes held-out Reddit posts of 100-400 words (read from the installed construct-tracker
package; see ``src/mhsafety/data/real/README.md``), screens them as one-message conversations
with the default embedded judge (lexicon, windowed encoder, heads, intervention check), then
embeds the same windows through the same encoder with no cache, and prints conversations/s,
windows per post, the raw rate and their ratio. Issue 11 asks for this figure on real-length
text; issue 13 for making it fast.
"""

from __future__ import annotations

import argparse
import random
import time

from mhsafety.audit.screening import ScreenSettings, screen_conversations
from mhsafety.interventions import ResourceCatalog
from mhsafety.judges.embedded import EmbeddedJudge
from mhsafety.realtext import reddit_posts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=600, help="posts")
    parser.add_argument("--min-words", type=int, default=100)
    parser.add_argument("--max-words", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    posts = [
        p
        for p in reddit_posts("test", include_other=True)
        if args.min_words <= len(p.text.split()) <= args.max_words
    ]
    posts = random.Random(args.seed).sample(posts, min(args.n, len(posts)))
    conversations = [p.conversation() for p in posts]
    words = sum(len(p.text.split()) for p in posts) / len(posts)

    judge = EmbeddedJudge()
    assert judge.encoder is not None
    catalog = ResourceCatalog.load()
    started = time.perf_counter()
    for _ in screen_conversations(conversations, judge, catalog, ScreenSettings()):
        pass
    screen_seconds = time.perf_counter() - started

    windows = [w for p in posts for w in judge.encoder.windows(p.text)]
    started = time.perf_counter()
    judge.encoder.encode_uncached(windows)
    raw_seconds = time.perf_counter() - started

    screen_rate = len(posts) / screen_seconds
    raw_rate = len(posts) / raw_seconds
    print(f"posts: {len(posts)} held-out Reddit posts, mean {words:.0f} words")
    print(f"windows: {len(windows)} ({len(windows) / len(posts):.2f} per post, 120 word pieces)")
    print(f"screen: {screen_rate:.1f} conversations/s ({screen_seconds:.1f} s)")
    print(
        f"raw encoder, same windows, no cache: {raw_rate:.1f} posts/s "
        f"({len(windows) / raw_seconds:.1f} windows/s)"
    )
    print(f"ratio screen / raw: {screen_rate / raw_rate:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
