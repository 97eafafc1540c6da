"""The ``judgeforge eval`` commands: the figures the papers report, measured on your own models (see :data:`judgeforge.cli.COMMANDS`).

``eval`` (final-answer accuracy, or with ``--self-verify`` accuracy after S2R-style self-verification),
``eval judge`` (a judge on held-out pairs), ``eval prm`` (ProcessBench of a generative PRM) and ``eval
best-of-n`` (a policy guided by a PRM). Each prints a table, writes its result as JSON with the models'
weights hashes, the data's fingerprint and the settings, and can plot several models side by side in
the order given (M1, M2, ... of a loop). Heavy libraries are imported when a command runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from judgeforge.builders.rprm_score import RprmScoreBuilder
from judgeforge.console import make_console
from judgeforge.executors.build import POLICY
from judgeforge.options import build_options, build_params, engine_choices, engine_options
from judgeforge.train.score import score_rprm, threshold_options

PRM_ROLE = "prm"
"""The role of the reward model in ``eval best-of-n``: its engine options are ``--prm-*``."""


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _report(table: Table, results: Sequence[Any], out: Path | None, plot: Path | None, series: dict[str, Sequence[float | None]], title: str) -> None:
    """What every eval ends with: its table, the results as JSON (``--out``), the models' figures plotted (``--plot``)."""
    from judgeforge.files import write_json
    from judgeforge.plots import lines

    make_console().print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, [r.model_dump(mode="json") for r in results])
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        lines([r.model for r in results], series, title, plot)


def _table(title: str, columns: Sequence[str], left: Sequence[str] = ("model",)) -> Table:
    table = Table(title=title)
    for name in columns:
        table.add_column(name, justify="left" if name in left else "right")
    return table


_OUT_HELP = "Write the results (per model and per problem) to this JSON file."
_PLOT_HELP = "Write a PNG line plot of the models' figures, in the order given."


@click.group("eval", invoke_without_command=True)
@click.option("--model", "models", multiple=True, default=["smollm2"], show_default=True, help="Model to evaluate; repeat to compare several (M1, M2, ...).")
@engine_options(POLICY, skip=("model",))
@click.option("--source", default="gym:gsm_symbolic", show_default=True, help="Held-out problems: gym:<task>, a local file, or a datasets id/path.")
@click.option("--question-col", default="question", show_default=True, help="Column holding the question (files and datasets).")
@click.option("--answer-col", default="answer", show_default=True, help="Column holding the gold final answer.")
@click.option("--solution-col", default=None, help="Column holding a gold solution, as for judgeforge build (read, not graded: answers are).")
@click.option("--id-col", default=None, help="Column holding a stable problem id.")
@click.option(
    "--split",
    default="test",
    show_default=True,
    help="Split to read from a datasets id. eval measures held-out problems, so it reads the test split where judgeforge build reads train.",
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Evaluate on the first N problems.")
@click.option("--seed", type=int, default=10_000, show_default=True, help="reasoning-gym seed of the held-out problems (keep it apart from build seeds).")
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Longest solution generated (with --self-verify: each attempt and each verification), in tokens.",
)
@click.option(
    "--self-verify",
    is_flag=True,
    help="S2R models: let the model verify its answer and retry up to --max-attempts; grade the answer it ends on (see the module doc).",
)
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True, help="With --self-verify: attempts per problem (the budget).")
@click.option(
    "--force-verdicts/--no-force-verdicts",
    default=True,
    show_default=True,
    help="With --self-verify: force a verdict at the verdict slot when a verification gives none (counted as forced).",
)
@click.option("--save-generations", is_flag=True, help="Keep every generated solution (with --self-verify: the whole trajectory) in the --out JSON.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help=_OUT_HELP)
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), default=None, help=_PLOT_HELP)
@click.pass_context
def eval_command(
    ctx: click.Context,
    models: tuple[str, ...],
    source: str,
    question_col: str,
    answer_col: str,
    solution_col: str | None,
    id_col: str | None,
    split: str,
    limit: int,
    seed: int,
    max_tokens: int,
    self_verify: bool,
    max_attempts: int,
    force_verdicts: bool,
    save_generations: bool,
    out: Path | None,
    plot: Path | None,
    **engine: Any,
) -> None:
    """Measure models: final-answer accuracy (this command's own options), or a judge, a PRM, Best-of-N (subcommands).

    Without a subcommand: final-answer accuracy of one or more models on held-out problems (greedy,
    batched). Each model solves the problems step by step in the builders' format; answers are checked
    with the task's own scorer (reasoning-gym) or math-verify. Prints one row per model. Every model runs
    on the engine the engine options describe (as for the policy of judgeforge build), e.g. --engine vllm,
    or --base-url URL --tokenizer ID for a served model.

    With --self-verify (models trained on S2R data): each model answers the S2R prompt, verifies its
    answer in S2R's layout and tries again after a rejection, up to --max-attempts; the answer it ends on
    is graded. The table adds the first attempt's accuracy, the mean number of attempts, how often the
    final answer turned a right first attempt wrong (right→wrong) and a wrong one right (wrong→right), and
    the verifications' verdicts: parsed, forced or missing.

    A subcommand's options follow its name: judgeforge eval judge --model M --pairs FILE.
    """
    if ctx.invoked_subcommand is not None:
        return
    from judgeforge.sources import SourceConfig

    policy = engine_choices(engine).policy
    cfg = SourceConfig(
        source=source, question_col=question_col, answer_col=answer_col, solution_col=solution_col, id_col=id_col, split=split, limit=limit, seed=seed
    )
    specs = [policy.model_copy(update={"model": model}) for model in models]
    if self_verify:
        _self_verify(specs, cfg, max_tokens, max_attempts, force_verdicts, save_generations, out, plot)
        return
    from judgeforge.train.eval import evaluate

    results = [evaluate(spec, cfg, max_tokens=max_tokens, save_generations=save_generations) for spec in specs]
    table = _table(
        f"judgeforge eval · {source} · {results[0].problems} problems · greedy, ≤{max_tokens} tokens",
        ("model", "correct", "graded", "no answer", "accuracy", "seconds"),
    )
    for r in results:
        table.add_row(r.model, str(r.correct), str(r.graded), str(r.unanswered), _pct(r.accuracy), f"{r.seconds:.1f}")
    _report(table, results, out, plot, {"accuracy": [r.accuracy for r in results]}, f"held-out accuracy · {source}")


def _self_verify(
    specs: Sequence[Any], cfg: Any, max_tokens: int, max_attempts: int, force_verdicts: bool, save_generations: bool, out: Path | None, plot: Path | None
) -> None:
    from judgeforge.train.self_verify import SelfVerifySettings, evaluate_self_verify

    settings = SelfVerifySettings(max_attempts=max_attempts, max_tokens=max_tokens, force_verdicts=force_verdicts)
    results = [evaluate_self_verify(spec, cfg, settings, save_generations) for spec in specs]
    columns = (
        "model",
        "graded",
        "accuracy",
        "1st attempt",
        "attempts",
        "accepted",
        "right→wrong",
        "wrong→right",
        "verdicts parsed/forced/none",
        "verdict acc.",
    )
    table = _table(f"judgeforge eval --self-verify · {cfg.source} · {results[0].figures.problems} problems · ≤{max_attempts} attempts, greedy", columns)
    for r in results:
        f = r.figures
        how = f.verifications_by_how
        table.add_row(
            r.model,
            str(f.graded),
            _pct(f.accuracy),
            _pct(f.first_attempt_accuracy),
            "-" if f.mean_attempts is None else f"{f.mean_attempts:.2f}",
            f"{f.accepted}/{f.problems}",
            str(f.right_to_wrong),
            str(f.wrong_to_right),
            f"{how['parsed']}/{how['forced']}/{how['unparsable'] + how['failed']}",
            _pct(f.verification_accuracy),
        )
    series: dict[str, Sequence[float | None]] = {
        "accuracy after self-verification": [r.figures.accuracy for r in results],
        "first-attempt accuracy": [r.figures.first_attempt_accuracy for r in results],
    }
    _report(table, results, out, plot, series, f"self-verification · {cfg.source}")


@eval_command.command("judge")
@click.option("--model", "models", multiple=True, default=["smollm2"], show_default=True, help="Judge to evaluate; repeat to compare several (M1, M2, ...).")
@engine_options(POLICY, skip=("model",))
@click.option(
    "--pairs",
    "pairs_source",
    required=True,
    help="Held-out pairs: an EFT or Self-Taught run dir (its test split when it has one), or a .jsonl/.json/.parquet file in the RewardBench layout "
    "(prompt, chosen, rejected, subset) or the chosen/rejected conversation layout.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Judge only the first N pairs.  [default: all]")
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, show_default=True, help="Longest judgment generated, in tokens.")
@click.option(
    "--force-verdicts/--no-force-verdicts",
    default=True,
    show_default=True,
    help="Force a verdict at the verdict slot when a judgment has none (reported as forced, never as correct).",
)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write the results (per model, subset and pair) to this JSON file.")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), default=None, help=_PLOT_HELP)
def eval_judge_command(
    models: tuple[str, ...], pairs_source: str, limit: int | None, max_tokens: int, force_verdicts: bool, out: Path | None, plot: Path | None, **engine: Any
) -> None:
    """Pairwise accuracy of a judge on held-out pairs, each judged greedily in both orders.

    The judge sees the better answer as A, then as B, in the builders' judge prompt (the step prompt for
    EFT pairs, the response prompt otherwise). accuracy: judgments whose parsed verdict picks the better
    answer, over all judgments; pair acc.: pairs right in both orders; consistency: pairs whose two
    verdicts name the same answer. Forced verdicts (the judgment had none; forced at its verdict slot)
    are never counted as correct: their own accuracy is the forced column's. One row per model, and per
    subset where the pairs have several. A run dir built with --test-fraction is read at its held-out
    test split (RUN/test); a run without one is read whole, with a warning that its pairs may have been
    trained on.
    """
    from judgeforge.train.judge_eval import evaluate_judge

    policy = engine_choices(engine).policy
    results = [evaluate_judge(policy.model_copy(update={"model": m}), pairs_source, limit, max_tokens, force_verdicts) for m in models]
    table = _table(
        f"judgeforge eval judge · {results[0].pairs_source} · {results[0].overall.pairs} pairs × 2 orders · greedy, ≤{max_tokens} tokens",
        ("model", "subset", "pairs", "accuracy", "pair acc.", "consistency", "parsed", "forced (acc.)", "unparsable", "failed"),
        left=("model", "subset"),
    )
    for r in results:
        for subset, f in [("all", r.overall), *r.subsets.items()]:
            forced = f"{f.forced} ({_pct(f.forced_accuracy)})" if f.forced else "0"
            table.add_row(
                r.model,
                subset,
                str(f.pairs),
                _pct(f.accuracy),
                _pct(f.pair_accuracy),
                _pct(f.position_consistency),
                str(f.parsed),
                forced,
                str(f.unparsable),
                str(f.failed),
            )
    series: dict[str, Sequence[float | None]] = {
        "accuracy": [r.overall.accuracy for r in results],
        "pair accuracy": [r.overall.pair_accuracy for r in results],
        "position consistency": [r.overall.position_consistency for r in results],
    }
    _report(table, results, out, plot, series, f"judge accuracy · {pairs_source}")


def _slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model.rstrip("/")).strip("-.") or "model"


def _prm_command() -> click.Command:
    """``eval prm``: ``score rprm`` for one or several reward models, one run dir each, and one table."""
    params = [p for p in build_params(RprmScoreBuilder) if p.name != "model"]
    params.insert(
        0,
        click.Option(
            ["--model", "models"],
            multiple=True,
            default=["smollm2"],
            show_default=True,
            help="Reward model to evaluate; repeat to compare several: each is scored into OUT/<model>/ (one model: OUT itself).",
        ),
    )
    params += [*threshold_options(), click.Option(["--plot"], type=click.Path(path_type=Path, dir_okay=False), default=None, help=_PLOT_HELP)]

    def callback(models: tuple[str, ...], threshold: str, threshold_split: str | None, plot: Path | None, **values: Any) -> None:
        from judgeforge.files import write_json
        from judgeforge.plots import lines

        out: Path = values["out"]
        slugs: list[str] = []
        for model in models:
            slug = _slug(model)
            slugs.append(slug if slug not in slugs else f"{slug}-{len(slugs)}")
        summaries = []
        for model, slug in zip(models, slugs, strict=True):
            where = out if len(models) == 1 else out / slug
            opts = build_options(RprmScoreBuilder.name, {**values, "model": model, "out": where})
            summary = score_rprm(opts, threshold, threshold_split, show=False, plan_only=values["dry_run"])
            if summary is None:  # --dry-run, or a --shard process whose run other shards still build
                continue
            summaries.append(summary)
        if len(summaries) < len(models):
            return
        first = summaries[0]
        how = f"sweep on {first['threshold_split']}" if first["threshold_chosen_by"] == "sweep" else "fixed"
        table = _table(
            f"judgeforge eval prm · ProcessBench · {values['source']} · K={first['k']} · threshold {how}",
            ("model", "subset", "erroneous acc.", "correct acc.", "F1", "threshold"),
            left=("model", "subset"),
        )
        for model, s in zip(models, summaries, strict=True):
            table.add_row(model, "mean", "", "", "-" if s["f1"] is None else f"{s['f1']:.4f}", f"{s['threshold']:.4g}")
            for name, sub in s["subsets"].items():
                f1 = "-" if sub["f1"] is None else f"{sub['f1']:.4f}"
                table.add_row(
                    "", name, f"{_pct(sub['accuracy_erroneous'])} of {sub['erroneous']}", f"{_pct(sub['accuracy_correct'])} of {sub['correct']}", f1, ""
                )
        make_console().print(table)
        if len(models) > 1:
            write_json(out / "eval-prm.json", summaries)
        where = out / "eval-prm.json" if len(models) > 1 else out / RprmScoreBuilder.row_model.kind / "summary.json"
        make_console(stderr=True).print(f"results (weights hashes, the source's fingerprint, settings, per-subset counts): {where}")
        if plot is not None:
            plot.parent.mkdir(parents=True, exist_ok=True)
            lines(list(models), {"ProcessBench F1 (mean over subsets)": [s["f1"] for s in summaries]}, f"ProcessBench · {values['source']}", plot)

    doc = (
        "ProcessBench of one or several generative PRMs (R-PRM): accuracy on erroneous and on correct solutions and their F1, per subset and "
        "their mean, at a fixed --threshold or one swept on --threshold-split. Each model's per-step rewards are a resumable run "
        "(OUT/rprm_scores, or OUT/<model>/rprm_scores for several) and its summary.json holds the figures with the model's weights hash, "
        "the source's fingerprint and the settings. The same scoring as judgeforge score rprm; its options:\n\n"
        + (RprmScoreBuilder.summary[:1].upper() + RprmScoreBuilder.summary[1:])
        + "."
    )
    return click.Command("prm", params=params, callback=callback, help=doc)


eval_command.add_command(_prm_command())


@eval_command.command("best-of-n")
@click.option("--policy", "policies", multiple=True, default=["smollm2"], show_default=True, help="Policy that samples; repeat to compare several.")
@engine_options(POLICY, skip=("model",))
@click.option("--prm", "prm", default="smollm2", show_default=True, help="Reward model in the R-PRM format (trained on rprm-sft / rprm-prefs data).")
@engine_options(PRM_ROLE, skip=("model",))
@click.option("--source", default="gym:gsm_symbolic", show_default=True, help="Held-out problems: gym:<task>, a local file, or a datasets id/path.")
@click.option("--question-col", default="question", show_default=True, help="Column holding the question (files and datasets).")
@click.option("--answer-col", default="answer", show_default=True, help="Column holding the gold final answer.")
@click.option("--id-col", default=None, help="Column holding a stable problem id.")
@click.option("--split", default="test", show_default=True, help="Split to read from a datasets id (held-out problems: test).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Evaluate on the first N problems.")
@click.option("--seed", type=int, default=10_000, show_default=True, help="reasoning-gym seed of the problems, and the seed of the samples and analyses.")
@click.option("--n", type=click.IntRange(min=1), default=8, show_default=True, help="Solutions sampled per problem (R-PRM reports Best-of-8).")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=0.7, show_default=True, help="Sampling temperature of the N solutions.")
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=0.95, show_default=True, help="Nucleus sampling of the N solutions.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, show_default=True, help="Longest solution (greedy or sampled), in tokens.")
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True, help="PRM analyses per step; a step's reward is their mean P(Yes) (R-PRM: 10).")
@click.option(
    "--prm-temperature", type=click.FloatRange(min=0), default=0.2, show_default=True, help="Sampling temperature of the analyses (R-PRM's repository: 0.2)."
)
@click.option("--prm-top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=0.95, show_default=True, help="Nucleus sampling of the analyses.")
@click.option("--prm-max-tokens", type=click.IntRange(min=1), default=512, show_default=True, help="Longest analysis before its verdict, in tokens.")
@click.option(
    "--aggregate",
    type=click.Choice(["min", "product"]),
    default="min",
    show_default=True,
    help="The aggregation the plot draws (the table shows both): min, since a solution is as sound as its weakest step and min does not favour short solutions.",
)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help=_OUT_HELP)
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), default=None, help=_PLOT_HELP)
def eval_best_of_n_command(
    policies: tuple[str, ...],
    prm: str,
    source: str,
    question_col: str,
    answer_col: str,
    id_col: str | None,
    split: str,
    limit: int,
    seed: int,
    n: int,
    temperature: float,
    top_p: float,
    max_tokens: int,
    k: int,
    prm_temperature: float,
    prm_top_p: float,
    prm_max_tokens: int,
    aggregate: str,
    out: Path | None,
    plot: Path | None,
    **engine: Any,
) -> None:
    """Best-of-N: a policy samples N solutions per problem, a generative PRM scores every step, the best is kept.

    A step's reward is the mean P(Yes) over --k analyses of the PRM (as eval prm scores it); a solution's
    score is its steps' minimum (or product). One row per policy: pass@1 (greedy), Best-of-N by min and by
    product, majority vote over the N answers, and oracle pass@N (some sample right), over the problems
    with a gold answer; failed and unscored samples are counted, never selected. The PRM runs on the
    policy's engine settings with any --prm-* option given replaced (e.g. --prm-base-url for a served PRM);
    the policy's engine is closed before the PRM's is loaded.
    """
    from judgeforge.builders.rprm_score import RprmScoreConfig
    from judgeforge.sources import SourceConfig
    from judgeforge.train.best_of_n import BestOfNSettings, evaluate_best_of_n

    choices = engine_choices({**engine, f"{PRM_ROLE}_model": prm}, (PRM_ROLE,))
    settings = BestOfNSettings(
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        aggregate=aggregate,
        prm=RprmScoreConfig(k=k, temperature=prm_temperature, top_p=prm_top_p, max_tokens=prm_max_tokens),
        seed=seed,
    )
    cfg = SourceConfig(source=source, question_col=question_col, answer_col=answer_col, id_col=id_col, split=split, limit=limit, seed=seed)
    prm_spec = choices.spec(PRM_ROLE)
    results = [evaluate_best_of_n(choices.policy.model_copy(update={"model": p}), prm_spec, cfg, settings) for p in policies]
    table = _table(
        f"judgeforge eval best-of-n · {source} · {results[0].figures.problems} problems · N={n}, T={temperature:g} · PRM {prm}, K={k}",
        ("model", "graded", "pass@1", "best-of-N (min)", "best-of-N (product)", "majority", f"oracle pass@{n}", "failed / unscored samples"),
    )
    for r in results:
        f = r.figures
        table.add_row(
            r.model,
            str(f.graded),
            _pct(f.pass_at_1),
            _pct(f.best_of_n["min"]),
            _pct(f.best_of_n["product"]),
            _pct(f.majority),
            _pct(f.oracle),
            f"{f.failed_samples} / {f.unscored_samples}",
        )
    series: dict[str, Sequence[float | None]] = {
        "pass@1": [r.figures.pass_at_1 for r in results],
        f"best-of-{n} ({aggregate})": [r.figures.best_of_n[aggregate] for r in results],
        "majority": [r.figures.majority for r in results],
        f"oracle pass@{n}": [r.figures.oracle for r in results],
    }
    _report(table, results, out, plot, series, f"best-of-{n} · PRM {prm} · {source}")
