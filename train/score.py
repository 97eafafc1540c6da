"""``judgeforge eval prm`` (also ``judgeforge score rprm``): score step-labelled solutions with a generative PRM, then report ProcessBench.

The command is a build of ``rprm-score`` (the same options as ``judgeforge build rprm-score``, through
:func:`judgeforge.executors.build.run_build`, so it resumes like every build) followed by the metric:
once the run is complete, its per-step rewards are read back and ProcessBench is computed per subset at
the ``--threshold`` given or swept (:mod:`judgeforge.builders.rprm_score`) and written to
``OUT/rprm_scores/summary.json``. The rewards do not depend on the threshold, so re-running with another
``--threshold`` on the same ``--out`` recomputes nothing but the metric.
"""

from __future__ import annotations

from typing import Any

import click
from pydantic import ValidationError

from judgeforge.builders import rprm_score
from judgeforge.builders.rprm_score import RprmScoreBuilder, ThresholdChoice, solution_rewards, summary, summary_lines
from judgeforge.errors import UserError
from judgeforge.executors.build import BuildOptions, run_build
from judgeforge.executors.dry_run import dry_run, print_dry_run
from judgeforge.files import write_json
from judgeforge.options import build_options, build_params
from judgeforge.runs import open_run

SUMMARY = "summary.json"
_COLUMNS = ("source_id", "subset", "step_index", "reward", "solution_first_wrong")


def _threshold_choice(threshold: str, threshold_split: str | None) -> ThresholdChoice:
    try:
        return ThresholdChoice(threshold=threshold, threshold_split=threshold_split)
    except ValidationError as exc:
        raise UserError("; ".join(str(e.get("ctx", {}).get("error", e["msg"])) for e in exc.errors())) from None


def score_rprm(opts: BuildOptions, threshold: str, threshold_split: str | None, show: bool = True, plan_only: bool = False) -> dict[str, Any] | None:
    """Build (or resume) the scores of ``opts``, then compute and write ProcessBench (and print it, with ``show``); the summary
    (None while other shards are pending, or with ``plan_only``: ``--dry-run`` prints the build's plan and cost instead)."""
    from judgeforge.console import make_console

    choice = _threshold_choice(threshold, threshold_split)  # a bad --threshold fails before anything is scored
    if plan_only:
        print_dry_run(dry_run(opts))
        return None
    built = run_build(opts)
    console = make_console()
    if built.manifest.status != "complete":
        console.print("[yellow]the run is not complete (other shards pending): no summary written[/]")
        return None
    run = open_run(built.root, RprmScoreBuilder.row_model.kind)
    rows = [row for table in run.tables(_COLUMNS) for row in table.to_pylist()]
    result = summary(built.manifest.dump(), solution_rewards(rows), choice)
    write_json(run.root / SUMMARY, result)
    for line in summary_lines(result, run.root / SUMMARY) if show else []:
        console.print(line, highlight=False, soft_wrap=True)
    return result


def threshold_options() -> list[click.Parameter]:
    """score rprm's own options: they only read the rewards, so they are not build options."""
    fields = ThresholdChoice.model_fields
    return [
        click.Option(["--threshold"], default="0.5", show_default=True, help=fields["threshold"].description),
        click.Option(["--threshold-split"], default=None, metavar="NAME", help=fields["threshold_split"].description),
    ]


def _score_rprm_command(threshold: str, threshold_split: str | None, **values: Any) -> None:
    score_rprm(build_options(RprmScoreBuilder.name, values), threshold, threshold_split, plan_only=values["dry_run"])


score = click.Group("score", help="Score step-labelled solutions with a process reward model and report ProcessBench metrics.")
score.add_command(
    click.Command(
        "rprm",
        params=[*build_params(RprmScoreBuilder), *threshold_options()],
        callback=_score_rprm_command,
        help=f"{RprmScoreBuilder.summary[:1].upper()}{RprmScoreBuilder.summary[1:]}.\n\n{(rprm_score.__doc__ or '').replace('``', '')}",
    )
)
