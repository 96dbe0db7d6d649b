"""Our bench runner vs a bare ``inspect_ai.eval`` of the same tasks; prints the overhead.

Both arms run the same Inspect tasks (the packaged sets' solver and scorer) against the
scripted model API, so model time is nil and what is measured is the runner itself: the
run configuration and its hash check, ``eval_set`` (resumable logs per system) and reading
the results back from the logs. Goal: <= 10 % overhead.

    python benchmarks/bench_overhead.py [--repeats 3] [--epochs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model

import mhsafety.bench.models  # noqa: F401 - registers mhsafety/... models
from mhsafety.bench.bundles import load_set
from mhsafety.bench.runner import parse_system, rows_from_logs, run_bench
from mhsafety.bench.tasks import bench_task

SETS = ("graded-queries", "refusal-robustness", "multistep-jailbreaks")


def bare(epochs: int, folder: Path) -> float:
    """``inspect_ai.eval`` on the tasks, nothing else."""
    system = parse_system("mhsafety/scripted?behaviour=cave")
    tasks = [bench_task(load_set(name), epochs=epochs) for name in SETS]
    started = time.perf_counter()
    inspect_eval(
        tasks,
        model=get_model(system.model, memoize=False, **system.args),
        log_dir=str(folder),
        display="none",
    )
    return time.perf_counter() - started


def ours(epochs: int, folder: Path) -> float:
    """The bench runner, including reading every result back from the logs."""
    started = time.perf_counter()
    run_bench(
        [load_set(name) for name in SETS],
        [parse_system("mhsafety/scripted?behaviour=cave")],
        folder,
        epochs=epochs,
        display="none",
    )
    frame, _ = rows_from_logs(folder)
    assert len(frame) > 0
    return time.perf_counter() - started


def main() -> int:
    """Alternate the arms, print medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--goal", type=float, default=0.10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        base = Path(root)
        bare(1, base / "warm-bare")  # imports, model registry, first grader load
        ours(1, base / "warm-ours")
        times: dict[str, list[float]] = {"bare inspect_ai.eval": [], "mhsafety bench runner": []}
        for k in range(args.repeats):
            times["bare inspect_ai.eval"].append(bare(args.epochs, base / f"bare-{k}"))
            times["mhsafety bench runner"].append(ours(args.epochs, base / f"ours-{k}"))
    samples = sum(len(load_set(n).items) for n in SETS) * args.epochs
    print(f"{samples} samples per run ({', '.join(SETS)}; {args.epochs} epochs), scripted model")
    for name, values in times.items():
        print(f"{name:24s} median {statistics.median(values):6.2f}s  runs {values}")
    ratio = statistics.median(times["mhsafety bench runner"]) / statistics.median(
        times["bare inspect_ai.eval"]
    )
    overhead = ratio - 1
    print(
        f"ratio {ratio:.3f} -> overhead {overhead:+.1%}; goal <= {args.goal:.0%}: "
        f"{'met' if overhead <= args.goal else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
