"""The `mhsafety` command line: thin — parses, calls a package, prints."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from mhsafety import __version__
from mhsafety.conversation import RecordError

app = typer.Typer(
    name="mhsafety",
    help="Safety assurance for mental-health AI: bench, ecological audit, guard.",
    no_args_is_help=True,
    add_completion=False,
)
audit_app = typer.Typer(help="Ecological audit of a deployment's conversation logs.")
logs_app = typer.Typer(help="Validate and convert conversation logs.")
app.add_typer(audit_app, name="audit")
app.add_typer(logs_app, name="logs")

console = Console(stderr=True)
out = Console()

EXIT_BAD_RECORDS = 3
"""Exit status when some input records could not be read (they are reported, not dropped)."""


def _report_error(error: RecordError) -> None:
    console.print(f"[yellow]skipped[/] {error}", highlight=False, markup=True)


@contextmanager
def _progress(description: str, total: int | None) -> Iterator[Any]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _count_lines(path: Path) -> int | None:
    """Cheap total for the progress bar (None for Parquet)."""
    from mhsafety.logio import open_text

    if path.suffix.lower() in (".parquet", ".pq"):
        return None
    with open_text(path) as handle:
        return sum(1 for line in handle if line.strip())


def _require_file(path: Path) -> None:
    if not path.is_file():
        console.print(f"[red]error:[/] {path} does not exist")
        raise typer.Exit(2)


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


@app.command()
def synth(
    n: Annotated[int, typer.Option("-n", help="Number of conversations.")] = 20_000,
    output: Annotated[Path, typer.Option("-o", "--output", help="Log file to write.")] = Path(
        "logs.jsonl"
    ),
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same file).")] = 7,
) -> None:
    """Write synthetic deployment logs with known ground truth (<name>.truth.jsonl beside)."""
    from mhsafety.synth import write_synthetic

    started = time.perf_counter()
    truth = write_synthetic(output, n, seed=seed)
    elapsed = time.perf_counter() - started
    console.print(f"wrote {n} conversations to {output} and ground truth to {truth} "
                  f"in {elapsed:.1f}s")


def _load_judge(name: str) -> Any:
    from mhsafety.judges.registry import load_judge

    try:
        return load_judge(name)
    except (KeyError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


@app.command()
def screen(
    input: Annotated[Path, typer.Argument(help="Conversation log (.jsonl, .jsonl.gz, .parquet).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Screen output (JSONL).")],
    judge: Annotated[str, typer.Option(help="Judge name.")] = "embedded",
    window: Annotated[
        int, typer.Option(help="Assistant turns after the first risk message that count.")
    ] = 2,
    quarantine: Annotated[
        Path | None, typer.Option(help="Where unreadable records go (default: OUTPUT.quarantine.jsonl).")
    ] = None,
    detail: Annotated[bool, typer.Option(help="Keep per-message layer scores.")] = False,
) -> None:
    """Screen conversations for risk and check crisis interventions (the log contract)."""
    from mhsafety.audit.screening import ScreenSettings, screen_conversations
    from mhsafety.interventions import ResourceCatalog
    from mhsafety.logio import JsonlWriter, Quarantine, ReadStats, read_conversations

    _require_file(input)
    quarantine = quarantine or output.with_name(output.name + ".quarantine.jsonl")
    judge_impl = _load_judge(judge)
    catalog = ResourceCatalog.load()
    settings = ScreenSettings(window=window, message_detail=detail)
    stats = ReadStats(str(input))
    with (
        Quarantine(quarantine) as bad,
        JsonlWriter(output) as writer,
        _progress("screening", _count_lines(input)) as advance,
    ):
        conversations = read_conversations(input, stats, bad, on_error=_report_error)
        for _, record in screen_conversations(conversations, judge_impl, catalog, settings):
            writer.write(record)
            advance(1)
    console.print(stats.summary())
    if stats.quarantined:
        console.print(f"unreadable records kept in {quarantine}")
        raise typer.Exit(EXIT_BAD_RECORDS)


@logs_app.command("validate")
def logs_validate(
    input: Annotated[Path, typer.Argument(help="Conversation log to check.")],
    quarantine: Annotated[Path | None, typer.Option(help="Write unreadable records here.")] = None,
) -> None:
    """Check a log against the format; one line per bad record, counts that reconcile."""
    from mhsafety.logio import Quarantine, ReadStats, read_conversations

    _require_file(input)
    stats = ReadStats(str(input))
    with Quarantine(quarantine) as bad:
        for _ in read_conversations(input, stats, bad, on_error=_report_error):
            pass
    console.print(stats.summary())
    if stats.quarantined:
        raise typer.Exit(EXIT_BAD_RECORDS)


@logs_app.command("convert")
def logs_convert(
    input: Annotated[Path, typer.Argument(help="Conversation log.")],
    output: Annotated[Path, typer.Argument(help=".jsonl, .jsonl.gz, .parquet or .csv (people).")],
) -> None:
    """Convert a log between JSONL, gzip JSONL, Parquet and a per-message CSV for people."""
    from mhsafety.logio import ReadStats, export_csv, read_conversations, write_conversations

    _require_file(input)
    stats = ReadStats(str(input))
    conversations = read_conversations(input, stats, on_error=_report_error)
    if output.suffix.lower() == ".csv":
        export_csv(output, conversations)
    else:
        write_conversations(output, conversations)
    console.print(stats.summary())
    if stats.quarantined:
        raise typer.Exit(EXIT_BAD_RECORDS)


@audit_app.command("run")
def audit_run(
    input: Annotated[Path, typer.Argument(help="The deployment's conversation log.")],
    workspace: Annotated[Path, typer.Option(help="Audit workspace folder.")] = Path("audit"),
    judge: Annotated[str, typer.Option(help="Screening judge.")] = "embedded",
    window: Annotated[int, typer.Option(help="Assistant turns after risk that count.")] = 2,
    strata: Annotated[
        str,
        typer.Option(
            help="Unflagged strata as name:min_score:rate,... (highest band first)."
        ),
    ] = "unflagged-elevated:0.15:0.10,unflagged-low:0:0.02",
    min_per_stratum: Annotated[int, typer.Option(help="Minimum sample per stratum.")] = 30,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 20260105,
    force: Annotated[bool, typer.Option(help="Start over in a workspace with another config.")] = False,
) -> None:
    """Screen, check interventions and draw the review sample into a workspace (resumable)."""
    from mhsafety.audit.sampling import SamplingPlan
    from mhsafety.audit.screening import ScreenSettings
    from mhsafety.audit.workspace import Workspace, WorkspaceError, run_screen, write_review_queue
    from mhsafety.interventions import ResourceCatalog

    _require_file(input)
    ws = Workspace(workspace)
    if force and ws.config.is_file():
        ws.config.unlink()
    plan = SamplingPlan.from_rates(strata, seed=seed, min_per_stratum=min_per_stratum)
    judge_impl = _load_judge(judge)
    settings = ScreenSettings(window=window)
    try:
        with _progress("screening", _count_lines(input)) as advance:
            stats = run_screen(
                input, ws, judge_impl, ResourceCatalog.load(), settings, plan, progress=advance
            )
        queue, strata_table = write_review_queue(input, ws, plan)
    except WorkspaceError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(stats.summary())
    table = Table(title="Review sample")
    for column in ("stratum", "population", "sampled", "census"):
        table.add_column(column)
    for row in strata_table.itertuples(index=False):
        table.add_row(str(row.stratum), str(row.population), str(row.sampled), str(row.census))
    console.print(table)
    console.print(
        f"{len(queue)} conversations to review: {ws.queue_csv} (fill in) / {ws.queue_jsonl}"
    )
    if stats.quarantined:
        console.print(f"[yellow]{stats.quarantined} unreadable records kept in {ws.quarantine}")
        raise typer.Exit(EXIT_BAD_RECORDS)


def main() -> None:
    """Entry point."""
    try:
        app()
    except BrokenPipeError:  # pragma: no cover - e.g. piping into head
        sys.exit(1)


__all__ = ["app", "json", "main"]
