"""The ``judgeforge curate``, ``inspect``, ``runs`` and ``audit`` commands (registered in :data:`judgeforge.cli.COMMANDS`).

They only parse options and print: the work is in :mod:`judgeforge.curation.pipeline` and
:mod:`judgeforge.curation.inspection`, which are imported when a command runs so that the CLI starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from judgeforge.console import make_console
from judgeforge.curation.filters import FILTERS
from judgeforge.errors import UserError
from judgeforge.runs import TEST_SPLIT, Curation, FunnelStep, RunInfo, argv


def _filters_help() -> str:
    lines = []
    for name, cls in FILTERS.items():
        params = ", ".join(f"{k}" if f.is_required() else f"{k}={f.default}" for k, f in cls.Params.model_fields.items())
        lines += [f"  {name:<20} {cls.summary}", f"  {'':<20} {params}"]
    body = "\n".join(lines)
    return f"\b\nFilters (the 'filter:' of a spec entry) and their parameters (with defaults):\n{body}"


_CURATE_HELP = f"""Curate a built run with a YAML spec of filters into a new run.

RUN_DIR is a run's kind directory (it holds data/shard-*.parquet and manifest.json). Without --spec the
kind's default spec shipped with judgeforge is used. The curated run goes to a new directory
(default: RUN_DIR-curated next to RUN_DIR), never over its input: same kind, same schema, a
manifest linking the input run and recording the funnel, and curation_log.parquet with every
dropped or flagged row and why.

\b
A spec lists filters in order, each with its parameters:
  kind: step_prefs
  filters:
    - filter: length
      columns: [chosen]
      min_chars: 2
    - filter: decontaminate          # name:, action: drop|flag and hint: work on any entry
      action: flag
      eval: {{source: eval.jsonl, question_col: problem}}

When the curation keeps no rows, or fewer than a tenth of them, it warns on stderr (the exit status
stays 0) naming the filters that removed the most, why (read off their parameters and counters, and, for
filters that check a judge, how the input's verdicts came about) and what to change: an entry's hint:
when the spec gives one. The manifest records the same lines (curation.diagnosis).

{_filters_help()}
"""


@click.command("curate", help=_CURATE_HELP)
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--spec",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="YAML spec of filters, or the name of a shipped one (e.g. step_prefs_weak_judge; default: the spec shipped for the run's kind).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory of the curated run (default: RUN_DIR-curated beside RUN_DIR); must not overlap RUN_DIR.",
)
@click.option(
    "--eval",
    "eval_source",
    default=None,
    help="Eval set for the spec's decontaminate filters: gym:<task>, a local .jsonl/.json/.parquet/.csv file or a datasets id (question column 'question').",
)
@click.option("--memory-limit", default="2GB", show_default=True, help="DuckDB memory limit; larger intermediate results spill to disk.")
@click.option(
    "--examples", type=click.IntRange(min=0), default=3, show_default=True, help="Example drops kept per filter in the manifest and shown in the funnel."
)
@click.option("--batch-rows", type=click.IntRange(min=1), default=20_000, show_default=True, help="Rows per Arrow batch for the filters that run in numpy.")
def curate_command(run_dir: Path, spec: Path | None, out: Path | None, eval_source: str | None, memory_limit: str, examples: int, batch_rows: int) -> None:
    from judgeforge.curation.pipeline import CurateOptions, curate

    opts = CurateOptions(spec=spec, out=out, eval_source=eval_source, memory_limit=memory_limit, examples=examples, batch_rows=batch_rows, command=argv())
    manifest, where = curate(run_dir, opts)
    assert manifest.curation is not None  # curate always records its funnel
    console = make_console()
    console.print(funnel_table(manifest.curation, str(where), console.width))
    for line in report_lines(manifest.curation.funnel):
        console.print(line)
    test = manifest.splits.get(TEST_SPLIT)
    if test is not None:
        console.print(f"held-out test split curated by the same spec: {test.rows:,} rows in {where / TEST_SPLIT} (its funnel is in its manifest.json)")
    if manifest.curation.diagnosis:
        kept, total = manifest.curation.rows_out, manifest.curation.rows_in
        errors = make_console(stderr=True)
        errors.print(f"[yellow]warning:[/] curation kept {kept} of {total} rows:")
        for line in manifest.curation.diagnosis:
            errors.print(f"  {line}", markup=False, highlight=False)


def _count(value: float | None, fmt: str = ",") -> str:
    return "-" if value is None else format(value, fmt)


def funnel_table(curation: Curation, where: str, width: int) -> Table:
    """The funnel: rows in and out per filter, time spent, and the first example drop of each."""
    rows = []
    for step in curation.funnel:
        removed = _count(step.dropped) if step.dropped is not None else f"{_count(step.flagged)} flagged"
        example = step.examples[0] if step.examples else None
        kept = f"{step.rows_out / step.rows_in:.1%}" if step.rows_in and step.rows_out is not None else "-"
        note = (step.report or {}).get("skipped") or (f"{example['id']}: {example['reason']}" if example else "")
        rows.append((step.name, _count(step.rows_in), removed, _count(step.rows_out), kept, _count(step.seconds, ".1f"), _count(step.cpu_seconds, ".1f"), note))
    table = Table(title=f"curation funnel · {_count(curation.rows_in)} → {_count(curation.rows_out)} rows · {where}")
    headers = ("filter", "rows in", "removed", "rows out", "kept", "s", "cpu s")
    used = 0
    for i, name in enumerate(headers):
        column = max([len(name), *(len(r[i]) for r in rows)])
        used += column + 3
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True, min_width=column)
    # The example takes what is left of the terminal; the numbers never wrap.
    table.add_column("example", no_wrap=True, overflow="ellipsis", max_width=max(12, width - used - 4))
    for r in rows:
        table.add_row(*r)
    return table


def report_lines(funnel: list[FunnelStep]) -> list[str]:
    """One line per filter report or counter set worth reading (length bias, verdict balance, clusters)."""
    lines = []
    for step in funnel:
        report = {k: v for k, v in (step.report or {}).items() if k != "skipped"}
        if report:
            lines.append(f"[bold]{step.name}[/] {_compact(report)}")
        if step.stats:
            lines.append(f"[dim]{step.name} counters {_compact(step.stats)}[/]")
    return lines


def _compact(data: dict[str, Any]) -> str:
    return " · ".join(f"{k}: {_compact(v) if isinstance(v, dict) else v}" for k, v in data.items())


def runs_table(infos: list[RunInfo], where: Path) -> Table:
    """One line per run: where, kind, rows, status, what made it, when, from what."""
    table = Table(title=f"{len(infos)} run{'s' if len(infos) != 1 else ''} under {where}")
    for name, justify in (
        ("run", "left"),
        ("kind", "left"),
        ("rows", "right"),
        ("status", "left"),
        ("made by", "left"),
        ("created", "left"),
        ("source", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name in ("run", "rows", "status", "created"))  # type: ignore[arg-type]
    styles = {"complete": "green", "running": "cyan", "interrupted": "yellow", "failed": "red", "stale": "red", "partial": "yellow"}
    for info in infos:
        status = f"[{styles[info.status]}]{info.status}[/]" if info.status in styles else info.status
        shown = info.path.relative_to(where) if info.path != where and info.path.is_relative_to(where) else info.path
        table.add_row(str(shown), info.kind or "-", f"{info.rows:,}", status, info.made_by, info.created or "-", info.source or "-")
    return table


_RUNS_HELP = """List every run under DIR (default: the current directory), built, curated or reviewed.

\b
One line per run dir: its path, kind, rows (counted from its shards), status, what made it (builder and
version, curate, review apply), when it was started and what it was made from. Status is what the run is
now: complete; running (its writer is alive; one on another machine is presumed alive); interrupted
(stopped by Ctrl-C or SIGTERM) or failed (stopped by an error), its shards kept; stale (the process
building it died without a word: killed, out of memory, its machine restarted); partial (--shard
processes: some shares built). Re-running the build command resumes every status but complete.

\b
Example:
  judgeforge runs runs/
"""


@click.command("runs", help=_RUNS_HELP)
@click.argument("folder", metavar="[DIR]", type=click.Path(path_type=Path, file_okay=False, exists=True), default=Path("."))
def runs_command(folder: Path) -> None:
    from judgeforge.runs import find_runs, run_info

    found = find_runs(folder)
    if not found:
        raise UserError(f"no runs under '{folder}' (a run dir holds manifest.json or data/shard-*.parquet)")
    make_console().print(runs_table([run_info(p) for p in found], folder))


@click.command("inspect")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--sql",
    "query",
    default=None,
    help='Run this DuckDB query instead; the run is the table named after its kind, e.g. "SELECT step_index, count(*) FROM step_prefs GROUP BY 1".',
)
@click.option("--samples", type=click.IntRange(min=0), default=3, show_default=True, help="Sample rows to show.")
@click.option("--max-rows", type=click.IntRange(min=1), default=50, show_default=True, help="Most result rows printed for --sql.")
def inspect_command(run_dir: Path, query: str | None, samples: int, max_rows: int) -> None:
    """Show a run: row counts, per-column statistics and sample rows, or the result of an ad-hoc --sql query.

    Works on built and curated runs alike; a curated run also shows its funnel, and a run that kept no
    rows (or under a tenth of its inputs) says why, as its build or curation did. Given a folder that
    holds runs (a build's --out), it lists them, as `judgeforge runs` does.
    """
    from judgeforge.builders import diagnose_run
    from judgeforge.curation import inspection
    from judgeforge.curation.filters import ident, one_row
    from judgeforge.curation.pipeline import connect
    from judgeforge.runs import find_runs, is_run_dir, open_run, run_info, run_status

    console = make_console()
    if run_dir.is_dir() and not is_run_dir(run_dir) and (found := find_runs(run_dir)):
        if query is not None:
            raise UserError(f"'{run_dir}' holds {len(found)} run(s), not one: give --sql one of them, e.g. judgeforge inspect {found[0]} --sql ...")
        console.print(runs_table([run_info(p) for p in found], run_dir))
        console.print(f"inspect one with: judgeforge inspect {found[0]}")
        return
    run = open_run(run_dir)
    kind = run.kind.name
    con = connect(list(run.shards))
    con.execute(f"CREATE VIEW {ident(kind)} AS SELECT * EXCLUDE (_rid) FROM src")
    if query is not None:
        columns, rows, more = inspection.run_sql(con, query, max_rows, kind)
        result = Table(title=f"{len(rows)}{'+' if more else ''} row(s)")
        for name in columns:
            result.add_column(name)
        for row in rows:
            result.add_row(*(inspection.shorten(v, 120) for v in row))
        console.print(result)
        return
    manifest = run.manifest
    (rows,) = one_row(con, f"SELECT count(*) FROM {ident(kind)}")
    head = Table(title=f"{kind} · {run_dir}", show_header=False)
    head.add_column("what", style="bold")
    head.add_column("value")
    head.add_row("rows", f"{rows:,}")
    head.add_row("shards", str(len(run.shards)))
    if manifest is not None and manifest.builder is not None:
        head.add_row("builder", f"{manifest.builder.name} {manifest.builder.version}")
    head.add_row("status", run_status(run.root, manifest))
    curation = manifest.curation if manifest is not None else None
    if curation is not None:
        head.add_row("curated from", str(curation.input.path if curation.input else "?"))
    console.print(head)
    if curation is not None:
        console.print(funnel_table(curation, str(run_dir), console.width))
    if manifest is not None and (why := diagnose_run(manifest)):
        console.print(f"[yellow]kept {manifest.rows_out or 0:,} of {manifest.rows_in or 0:,} rows:[/]")
        for line in why:
            console.print(f"  {line}", markup=False, highlight=False)
    stats = Table(title="columns")
    for name in ("column", "type", "nulls", "summary"):
        stats.add_column(name)
    for column, dtype, nulls, summary in inspection.column_stats(con, kind, run.schema):
        stats.add_row(column, inspection.shorten(dtype, 40), f"{nulls:,}", summary)
    console.print(stats)
    for i, sample in enumerate(inspection.samples(con, kind, samples)):
        table = Table(title=f"sample {i + 1}", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        for key, value in sample.items():
            table.add_row(key, value)
        console.print(table)


@click.command("audit")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--examples", type=click.IntRange(min=0), default=3, show_default=True, help="Row ids listed per check that disagrees.")
def audit_command(run_dir: Path, examples: int) -> None:
    """Re-derive every label the rows of RUN_DIR can re-derive and list the disagreements.

    From what each row stores, the audit re-parses judge, analysis and verification texts with the
    shared parsers, re-grades stored final answers against the gold answer (reasoning-gym sources with
    the task's own scorer), re-checks that a corrupted step's value changed, that a step marked final
    states a final answer or ends its search, and that the step-wise DPO view puts EOS after final steps
    only. It reads the shards directly, so it audits runs built by older judgeforge versions too.

    \b
    Prints one line per check: rows checked, disagreements, example row ids.
    Exit status 1 when any check disagrees, 0 otherwise.
    \b
    Example:
      judgeforge audit runs/demo/step_prefs
    """
    from judgeforge.curation.audit import audit_run

    kind, results = audit_run(run_dir, examples)
    table = Table(title=f"audit · {kind} · {run_dir}")
    for name, justify in (("check", "left"), ("rows checked", "right"), ("disagreements", "right"), ("examples", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in results:
        mark = "[red]" if r.disagreements else ""
        table.add_row(r.check.name, f"{r.checked:,}", f"{mark}{r.disagreements:,}", ", ".join(r.examples))
    console = make_console()
    console.print(table)
    failed = [r.check.name for r in results if r.disagreements]
    if failed:
        console.print(f"[red]{len(failed)} check(s) disagree[/]: {', '.join(failed)}")
        raise SystemExit(1)
    console.print(f"all {len(results)} checks agree on every row they apply to")
