"""Peak memory of streaming a log, as the log grows: it should stay flat.

Usage::

    python benchmarks/read_memory.py [--sizes 5000 20000 80000]

For each size it writes a synthetic log (JSONL, gzip JSONL and Parquet), then reads and
validates every record in a fresh child process and prints the child's peak resident memory
(the reader keeps one record — for Parquet one batch — at a time).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mhsafety.logio import read_conversations, write_conversations
from mhsafety.synth import write_synthetic

CHILD = """
import resource, sys
from pathlib import Path
from mhsafety.logio import ReadStats, read_conversations
stats = ReadStats(sys.argv[1])
for _ in read_conversations(Path(sys.argv[1]), stats):
    pass
assert stats.reconciled
print(stats.processed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def measure(path: Path) -> tuple[int, int, float]:
    """(records, peak MiB, seconds) of reading ``path`` in a fresh process."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), int(out[1]), time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 80_000])
    args = parser.parse_args(argv)
    print(f"{'conversations':>13} {'format':>9} {'file MiB':>9} {'peak MiB':>9} {'seconds':>8}")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            jsonl = Path(folder) / f"logs-{size}.jsonl"
            write_synthetic(jsonl, size, seed=size)
            gz = Path(folder) / f"logs-{size}.jsonl.gz"
            parquet = Path(folder) / f"logs-{size}.parquet"
            write_conversations(gz, read_conversations(jsonl))
            write_conversations(parquet, read_conversations(jsonl))
            for path, name in ((jsonl, "jsonl"), (gz, "jsonl.gz"), (parquet, "parquet")):
                records, peak, seconds = measure(path)
                assert records == size
                mib = path.stat().st_size / 2**20
                print(f"{size:>13} {name:>9} {mib:>9.1f} {peak:>9} {seconds:>8.1f}")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"(the parent that wrote the files peaked at {own} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
