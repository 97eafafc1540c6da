"""Score steps with a generative process reward model the R-PRM way, and report the ProcessBench metric.

She et al., "R-PRM", EMNLP 2025, arXiv 2503.21295: a step's reward is the mean over K sampled analyses
(paper: K = 10; repository defaults T = 0.2, top_p = 0.95) of P(Yes), the softmax over the Yes and No
tokens at the verdict slot. Each analysis (the prompt of builders/rprm_format.py) is sampled up to the
verdict lead "Verification: Is the step correct (Yes/No)?" (an analysis that ends or runs out of tokens
first gets the lead appended), then one greedy token is read there with its top log-probabilities;
case and leading-space variants of Yes and No are summed. When the engine returns no log-probabilities
(or neither token is among the top 20), the reward is the fraction of Yes verdicts instead: every row's
`method` says which (p_yes, vote; none when no evaluation gave a verdict) and the manifest counts them.

Inputs are step-labelled solutions (judgeforge.step_inputs: PRM800K, Math-Shepherd, ProcessBench, TRL
stepwise files or a step_labels run); --limit keeps the first N solutions. Only the steps the metric
needs are scored: every step of a correct solution, the steps up to the first wrong one of an
erroneous one. ProcessBench (Zheng et al., 2024, arXiv 2412.06559): the predicted first wrong step is
the first step whose reward is below --threshold (-1: none); accuracy is measured apart on erroneous
solutions (prediction = the labelled index) and on correct ones (prediction = -1), and F1 is their
harmonic mean. Solutions whose first wrong step is unknown, or with a step nobody could score, are
counted and left out. judgeforge score rprm writes per-step rewards to OUT/rprm_scores/data (resumable,
like every build) and the metric to OUT/rprm_scores/summary.json.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, Field

from judgeforge.builders.base import Builder
from judgeforge.builders.rprm_format import VERDICT_LEAD, analysis_request, slot_verdict, verdict_slot_prefix
from judgeforge.engines.base import Request, SamplingParams, derive_seed
from judgeforge.errors import UserError
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.rprm import RprmScoreRow
from judgeforge.sources import GYM_PREFIX, SourceConfig
from judgeforge.step_inputs import LabelledSolution, read_step_solutions


class RprmScoreConfig(BaseModel):
    k: int = Field(10, ge=1, description="sampled evaluations per step; the reward is their mean P(Yes) (paper: 10)")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="the predicted first wrong step is the first whose reward is below this")
    temperature: float = Field(0.2, ge=0.0, description="sampling temperature of the evaluations (R-PRM repository: 0.2)")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling of the evaluations (R-PRM repository: 0.95)")
    max_tokens: int = Field(512, ge=1, description="token budget of one analysis before its verdict")


class ProcessBenchScore(BaseModel):
    """ProcessBench counts: solutions judged right among the erroneous and among the correct ones."""

    erroneous: int = 0
    erroneous_right: int = 0
    correct: int = 0
    correct_right: int = 0

    @property
    def accuracy_erroneous(self) -> float | None:
        return self.erroneous_right / self.erroneous if self.erroneous else None

    @property
    def accuracy_correct(self) -> float | None:
        return self.correct_right / self.correct if self.correct else None

    @property
    def f1(self) -> float | None:
        """Harmonic mean of the two accuracies; None unless both kinds of solution were scored."""
        a, b = self.accuracy_erroneous, self.accuracy_correct
        if a is None or b is None:
            return None
        return 2 * a * b / (a + b) if a + b else 0.0


def predicted_first_wrong(rewards: Sequence[float], threshold: float) -> int:
    """0-based index of the first reward below ``threshold``; -1 when there is none."""
    return next((i for i, r in enumerate(rewards) if r < threshold), -1)


def processbench_score(labels: Sequence[int], predictions: Sequence[int]) -> ProcessBenchScore:
    """Score first-wrong-step predictions against labels (-1: the solution is correct)."""
    score = ProcessBenchScore()
    for label, prediction in zip(labels, predictions, strict=True):
        if label == -1:
            score.correct += 1
            score.correct_right += prediction == -1
        else:
            score.erroneous += 1
            score.erroneous_right += prediction == label
    return score


def _reward(p_yes: list[float | None], votes: list[str | None]) -> tuple[float | None, str]:
    probabilities = [p for p in p_yes if p is not None]
    if probabilities:
        return sum(probabilities) / len(probabilities), "p_yes"
    given = [v for v in votes if v is not None]
    if given:
        return sum(v == "Yes" for v in given) / len(given), "vote"
    return None, "none"


class RprmScoreBuilder(Builder[RprmScoreConfig]):
    name = "rprm-score"
    version = "0.1.0"
    summary = "per-step R-PRM rewards (mean P(Yes) over K analyses) for step-labelled solutions, with the ProcessBench F1"
    row_model = RprmScoreRow
    Config = RprmScoreConfig

    @classmethod
    def load_inputs(cls, source: SourceConfig) -> list[BaseModel]:
        if source.source.startswith(GYM_PREFIX):
            raise UserError(f"{cls.name} scores step-labelled solutions (a file or a step_labels run dir), not '{source.source}'")
        return list(read_step_solutions(source.source, source.limit))

    def build(self, items: list[LabelledSolution]) -> list[BaseRow]:
        cfg, seed = self.config, self.ctx.seed
        engine = self.ctx.engines["policy"]
        solutions = []
        for solution in items:
            if solution.first_wrong is None or not solution.evaluated_steps:
                self.stats["solutions_unlabelled"] += 1
            else:
                solutions.append(solution)
        inputs = [item for s in solutions for item in s.inputs()]
        requests = [analysis_request(item, derive_seed(seed, item.id, "score")) for item in inputs]
        params = SamplingParams(n=cfg.k, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, stop=(VERDICT_LEAD,), seed=seed)
        analyses = engine.generate(requests, params)
        slots = [
            (i, Request(messages=request.messages, prefix=verdict_slot_prefix(request, c), seed=derive_seed(seed, inputs[i].id, "slot", j)))
            for i, (request, completions) in enumerate(zip(requests, analyses, strict=True))
            for j, c in enumerate(completions)
            if c.ok
        ]
        read = SamplingParams(n=1, temperature=0.0, max_tokens=1, seed=seed, logprobs=True, top_logprobs=20)
        per_step: list[list[tuple[str, str | None, float | None]]] = [[] for _ in inputs]
        for (i, request), completions in zip(slots, engine.generate([r for _, r in slots], read), strict=True):
            verdict, p_yes = slot_verdict(completions[0])
            per_step[i].append((request.prefix, verdict, p_yes))
        self.stats["evaluations"] += len(slots)
        self.stats["evaluations_failed"] += len(inputs) * cfg.k - len(slots)
        rewards = iter(per_step)
        rows: list[BaseRow] = []
        for solution in solutions:
            rows += self._solution_rows(solution, [next(rewards) for _ in range(solution.evaluated_steps)])
        self.ctx.on_inputs_done(len(items))
        return rows

    def _solution_rows(self, solution: LabelledSolution, steps: list[list[tuple[str, str | None, float | None]]]) -> list[RprmScoreRow]:
        scored = [_reward([p for _, _, p in evals], [v for _, v, _ in evals]) for evals in steps]
        for _, method in scored:
            self.stats[f"rewards_{method}"] += 1
        label = solution.first_wrong if solution.first_wrong is not None else -1
        rewards = [r for r, _ in scored]
        if any(r is None for r in rewards):
            self.stats["solutions_unscored"] += 1
            prediction, right = -1, False
        else:
            prediction = predicted_first_wrong([r for r in rewards if r is not None], self.config.threshold)
            right = prediction == label
            kind = "correct" if label == -1 else "erroneous"
            self.stats[f"solutions_{kind}"] += 1
            self.stats[f"solutions_{kind}_right"] += right
        return [
            RprmScoreRow(
                id=item.id, source_id=solution.id, meta=self.row_meta(), question=solution.question, now_step=item.now_step, step_index=item.step_index,
                label=item.label, reward=reward, method=method, p_yes=[p for _, _, p in evals], votes=[v for _, v, _ in evals],
                analyses=[text for text, _, _ in evals], solution_first_wrong=label, predicted_first_wrong=prediction, solution_judged_right=right,
            )
            for item, (reward, method), evals in zip(solution.inputs(), scored, steps, strict=True)
        ]

    @classmethod
    def score(cls, stats: dict[str, float]) -> ProcessBenchScore:
        """The ProcessBench counts summed over a run's chunks."""
        return ProcessBenchScore(
            erroneous=int(stats.get("solutions_erroneous", 0)), erroneous_right=int(stats.get("solutions_erroneous_right", 0)),
            correct=int(stats.get("solutions_correct", 0)), correct_right=int(stats.get("solutions_correct_right", 0)),
        )

    @classmethod
    def report(cls, stats: dict[str, float]) -> list[tuple[str, str]]:
        s = cls.score(stats)

        def pct(value: float | None) -> str:
            return "-" if value is None else f"{value:.1%}"

        return [
            ("accuracy on erroneous solutions", f"{pct(s.accuracy_erroneous)} of {s.erroneous}"),
            ("accuracy on correct solutions", f"{pct(s.accuracy_correct)} of {s.correct}"),
            ("ProcessBench F1", pct(s.f1)),
            ("step rewards by p_yes / vote / none", f"{stats.get('rewards_p_yes', 0):g} / {stats.get('rewards_vote', 0):g} / {stats.get('rewards_none', 0):g}"),
            ("solutions unlabelled / unscored", f"{stats.get('solutions_unlabelled', 0):g} / {stats.get('solutions_unscored', 0):g}"),
        ]


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The metric of a finished score run, from its manifest."""
    stats = manifest["builder_stats"]
    s = RprmScoreBuilder.score(stats)
    methods = {m: int(stats.get(f"rewards_{m}", 0)) for m in ("p_yes", "vote", "none")}
    return {
        "metric": "ProcessBench",
        "f1": s.f1,
        "accuracy_erroneous": s.accuracy_erroneous,
        "accuracy_correct": s.accuracy_correct,
        "solutions": {**s.model_dump(), "unlabelled": int(stats.get("solutions_unlabelled", 0)), "unscored": int(stats.get("solutions_unscored", 0))},
        "reward_method": "p_yes" if methods["p_yes"] and not methods["vote"] else "vote" if methods["vote"] and not methods["p_yes"] else "mixed",
        "step_rewards_by_method": methods,
        "k": manifest["config"]["k"],
        "threshold": manifest["config"]["threshold"],
        "model": manifest["models"]["policy"],
        "source": manifest["source"],
        "run_id": manifest["run_id"],
        "steps_scored": manifest["rows_out"],
    }


def _score_rprm(**kwargs: Any) -> None:
    from rich.console import Console

    from judgeforge.cli import run_build
    from judgeforge.runs import RunDir

    run_build(RprmScoreBuilder.name, dict(kwargs))
    run = RunDir(Path(kwargs["out"]) / RprmScoreRow.kind, RprmScoreRow.kind)
    manifest = run.read_manifest()
    console = Console()
    if manifest is None or manifest["status"] != "complete":
        console.print("[yellow]the run is not complete (other shards pending): no summary written[/]")
        return
    result = summary(manifest)
    run.write_json(run.root / "summary.json", result)
    f1 = "undefined (needs both erroneous and correct solutions)" if result["f1"] is None else f"{result['f1']:.4f}"
    console.print(f"ProcessBench F1 = {f1} ({result['reward_method']} rewards, K={result['k']}, threshold {result['threshold']}); {run.root / 'summary.json'}")


@functools.cache
def _score_group() -> click.Group:
    from judgeforge.cli import build

    options = build.commands[RprmScoreBuilder.name].params  # the build command's options, made from the registry
    group = click.Group("score", help="Score step-labelled solutions with a process reward model and report ProcessBench metrics.")
    doc = (__doc__ or "").replace("``", "")
    group.add_command(click.Command("rprm", params=options, callback=_score_rprm, help=f"{RprmScoreBuilder.summary[:1].upper()}{RprmScoreBuilder.summary[1:]}.\n\n{doc}"))
    return group


def __getattr__(name: str) -> Any:
    """``score`` (the click group judgeforge.cli registers) is made on first use: it reuses the options of the
    generated ``build rprm-score`` command, and judgeforge.cli imports this module while it is itself
    being imported, so the group cannot be built at import time."""
    if name == "score":
        return _score_group()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
