"""``judgeforge review push | pull | apply``: click parsing and printing only; the work is in the sibling modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from judgeforge.console import make_console
from judgeforge.curation.review.apply import apply, default_out
from judgeforge.curation.review.transport import Connection, pull, push
from judgeforge.runs import open_run


def _connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--api-url", envvar="ARGILLA_API_URL", show_envvar=True, default=None, help="Argilla server URL, e.g. http://localhost:6900."),
        click.option(
            "--api-key",
            envvar="ARGILLA_API_KEY",
            show_envvar=True,
            default=None,
            help="Argilla API key (prefer the environment variable; it is never written anywhere).",
        ),
        click.option("--workspace", envvar="ARGILLA_WORKSPACE", show_envvar=True, default=None, help="Argilla workspace (default: your first workspace)."),
        click.option("--dataset", "dataset_name", required=True, help="Name of the Argilla dataset."),
        click.option("--timeout", type=click.IntRange(min=1), default=60, show_default=True, help="Seconds to wait for each request to the server."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _summary(title: str, lines: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for label, value in lines:
        table.add_row(label, value)
    return table


_RUN_DIR = click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))


@click.group()
def review() -> None:
    """Human review of a run in Argilla: push a sample, pull the answers, apply them to a new run."""


@review.command("push")
@_RUN_DIR
@_connection_options
@click.option("--sample", type=click.IntRange(min=1), default=200, show_default=True, help="How many rows to send for review.")
@click.option("--stratify-by", default=None, help="Column whose values keep their share of the sample (each value at least one row).")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed: the same seed picks the same rows.")
@click.option(
    "--reviewers", type=click.IntRange(min=1), default=1, show_default=True, help="Answers needed before a record counts as completed (new datasets only)."
)
def push_command(
    run_dir: Path,
    api_url: str | None,
    api_key: str | None,
    workspace: str | None,
    dataset_name: str,
    timeout: int,
    sample: int,
    stratify_by: str | None,
    seed: int,
    reviewers: int,
) -> None:
    """Send a sample of RUN_DIR's rows to an Argilla dataset built for the run's kind.

    Creates the dataset (fields, questions, metadata and guidelines from the kind) or reuses it; each
    record is keyed by its row id and carries the model's own verdict as a suggestion, so pushing again
    updates records instead of duplicating them and keeps answers already given.
    """
    run = open_run(run_dir)
    conn = Connection(api_url=api_url, api_key=api_key, workspace=workspace, timeout=timeout)
    result = push(run, conn, dataset_name, sample, stratify_by, seed, reviewers, make_console(stderr=True))
    make_console().print(
        _summary(
            "review push",
            [
                ("dataset", f"{result.dataset} (workspace {result.workspace})"),
                ("review at", result.url),
                ("records sent", f"{result.sampled} of {result.rows_in_run} rows"),
                ("new / updated", f"{result.created} / {result.updated}"),
            ],
        )
    )


@review.command("pull")
@_RUN_DIR
@_connection_options
def pull_command(run_dir: Path, api_url: str | None, api_key: str | None, workspace: str | None, dataset_name: str, timeout: int) -> None:
    """Fetch the submitted and discarded answers into RUN_DIR/review.parquet (one row per reviewer and record)."""
    run = open_run(run_dir)
    conn = Connection(api_url=api_url, api_key=api_key, workspace=workspace, timeout=timeout)
    path, source, n = pull(run, conn, dataset_name)
    make_console().print(
        _summary(
            "review pull",
            [
                ("answers", str(n)),
                ("records completed", f"{source.records_completed} of {source.records}"),
                ("written to", str(path)),
            ],
        )
    )


@review.command("apply")
@_RUN_DIR
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output directory; the reviewed run goes to OUT/<kind>/ [default: RUN_DIR's parent + '-reviewed'].",
)
def apply_command(run_dir: Path, out: Path | None) -> None:
    """Write a new run dir from RUN_DIR and its pulled answers: reviewed rows kept, relabelled or dropped.

    A row's fate is the majority of its reviewers' answers, by the kind's questions (e.g. step_prefs keeps
    "yes", swaps chosen and rejected on "no", drops "tie"; rprm_prefs flips the step label on "no"; most
    kinds drop a "no"); a discarded record is dropped; an even split leaves the row as it was. The
    manifest links to RUN_DIR and records per question the rows and answers reviewed and the reviewers'
    agreement with the model's own answers.
    """
    run = open_run(run_dir)
    out = out or default_out(run_dir)
    manifest = apply(run, out).dump()
    rows = manifest["review"]["rows"]
    lines = [
        ("dataset", str(out / run.kind.name)),
        ("rows in / out", f"{manifest['rows_in']} / {manifest['rows_out']}"),
        ("kept / relabelled / dropped", f"{rows['keep']} / {rows['relabel']} / {rows['drop']}"),
        ("unreviewed / split", f"{rows['unreviewed']} / {rows['split']}"),
    ]
    for name, q in manifest["review"]["questions"].items():
        agreement = "-" if q["agreement_with_model"] is None else f"{q['agreement_with_model']:.0%} of {q['answers_compared_with_model']} answers"
        lines.append((f"{name}: agreement with model", agreement))
    make_console().print(_summary("review apply", lines))
