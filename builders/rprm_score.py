"""Score steps with a generative process reward model the R-PRM way, and report the ProcessBench metric.

She et al., "R-PRM", EMNLP 2025, arXiv 2503.21295: a step's reward is the mean over K sampled analyses
(paper: K = 10; repository defaults T = 0.2, top_p = 0.95) of P(Yes), the softmax over the Yes and No
tokens at the verdict slot. Each analysis (the prompt of judgeforge.formats.rprm) is sampled up to the
verdict lead "Verification: Is the step correct (Yes/No)?" (an analysis that ends or runs out of tokens
first gets the lead appended), then one greedy token is read there with its top log-probabilities
(judgeforge.formats.verdicts); case and leading-space variants of Yes and No are summed. When the engine
returns no log-probabilities (or neither token is among the top 20), the reward is the fraction of Yes
verdicts instead: every row's `method` says which (p_yes, vote; none when no evaluation gave a verdict)
and the manifest counts them. An analysis, or a read at its slot, whose engine call failed is no
evaluation: it is dropped and counted (evaluations_failed), never recorded as one without a verdict.

Inputs are step-labelled solutions (judgeforge.builders.step_inputs: PRM800K, Math-Shepherd, ProcessBench, TRL
stepwise files or a step_labels run), or a folder of such files read in name order (ProcessBench's
splits saved as gsm8k.jsonl, math.jsonl, olympiadbench.jsonl, omnimath.jsonl); --limit keeps the first
N solutions over all of them. A solution belongs to the subset its row's `subset` field names, else to
the file (or run dir) it came from, by name. Only the steps the metric needs are scored: every step of
a correct solution, the steps up to the first wrong one of an erroneous one.

ProcessBench (Zheng et al., 2024, arXiv 2412.06559): the predicted first wrong step is the first step
whose reward is below the threshold (-1: none); accuracy is measured apart on erroneous solutions
(prediction = the labelled index) and on correct ones (prediction = -1), a subset's F1 is their
harmonic mean, and the benchmark's figure is the mean of the subsets' F1s (undefined unless every
subset has both kinds of solution), not one F1 over the pooled solutions. score rprm's --threshold is a
number (0.5 unless given) or `sweep`: the threshold that maximises the F1 of the subset
--threshold-split names (e.g. gsm8k), tried at 0, 1 and every midpoint between two consecutive distinct
rewards of that subset (ties: the lowest); every subset, that one included, is then reported at it.
Solutions whose first wrong step is unknown, or with a step nobody could score, are counted and left
out. judgeforge score rprm writes per-step rewards to OUT/rprm_scores/data (resumable, like every
build) and the metric — per subset, their mean, and which threshold was used and how it was chosen —
to OUT/rprm_scores/summary.json. The rewards do not depend on the threshold: re-running with another
--threshold on the same --out recomputes nothing but the metric.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, computed_field, field_validator, model_validator

from judgeforge.builders.base import Builder, BuilderStats, Calls, Loss, Stat, StatFamily
from judgeforge.builders.step_inputs import analysis_calls, read_step_solutions
from judgeforge.engines.base import Engine, ProgressFn, Request, SamplingParams, derive_seed
from judgeforge.errors import UserError
from judgeforge.formats.rprm import ANALYSIS, VERDICT_LEAD, StepToAnalyse, analysis_request, step_reward
from judgeforge.formats.step_inputs import Label, LabelledSolution
from judgeforge.formats.verdicts import SlotReading, read_slots
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.rprm import RprmScoreRow
from judgeforge.sources import GYM_PREFIX, SourceConfig


class RprmScoreConfig(BaseModel):
    k: int = Field(10, ge=1, description="sampled evaluations per step; the reward is their mean P(Yes) (paper: 10)")
    temperature: float = Field(0.2, ge=0.0, description="sampling temperature of the evaluations (R-PRM repository: 0.2)")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling of the evaluations (R-PRM repository: 0.95)")
    max_tokens: int = Field(512, ge=1, description="token budget of one analysis before its verdict")


# --- the metric ----------------------------------------------------------------------------------------


class ProcessBenchScore(BaseModel):
    """ProcessBench counts of one subset: solutions judged right among the erroneous and the correct ones."""

    erroneous: int = 0
    erroneous_right: int = 0
    correct: int = 0
    correct_right: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def accuracy_erroneous(self) -> float | None:
        return self.erroneous_right / self.erroneous if self.erroneous else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def accuracy_correct(self) -> float | None:
        return self.correct_right / self.correct if self.correct else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def f1(self) -> float | None:
        """Harmonic mean of the two accuracies; None unless both kinds of solution were scored."""
        a, b = self.accuracy_erroneous, self.accuracy_correct
        if a is None or b is None:
            return None
        return 2 * a * b / (a + b) if a + b else 0.0


class SolutionRewards(BaseModel):
    """One scored solution as the metric sees it: its subset, its label (-1: correct) and step rewards."""

    id: str
    subset: str
    first_wrong: int
    rewards: list[float]


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


def score_at(solutions: Sequence[SolutionRewards], threshold: float) -> ProcessBenchScore:
    """The ProcessBench counts of ``solutions`` at ``threshold``."""
    return processbench_score([s.first_wrong for s in solutions], [predicted_first_wrong(s.rewards, threshold) for s in solutions])


def by_subset(solutions: Iterable[SolutionRewards]) -> dict[str, list[SolutionRewards]]:
    """Solutions grouped by subset, subsets in name order."""
    groups: dict[str, list[SolutionRewards]] = {}
    for solution in solutions:
        groups.setdefault(solution.subset, []).append(solution)
    return dict(sorted(groups.items()))


def threshold_candidates(rewards: Iterable[float]) -> list[float]:
    """0, 1 and the midpoint between every two consecutive distinct rewards, ascending: every distinct
    set of predictions a threshold in [0, 1] can give is given by one of them."""
    values = sorted(set(rewards))
    return sorted({0.0, 1.0, *((a + b) / 2 for a, b in pairwise(values))})


def _right_interval(solution: SolutionRewards) -> tuple[float, float]:
    """(lo, hi): the solution is judged right exactly at the thresholds t with lo < t <= hi — every step
    before its first wrong one is at least t, and that one (if any) below t."""
    if solution.first_wrong == -1:
        return -math.inf, min(solution.rewards)
    return solution.rewards[solution.first_wrong], min(solution.rewards[: solution.first_wrong], default=math.inf)


def sweep_threshold(solutions: Sequence[SolutionRewards], name: str) -> float:
    """The candidate threshold maximising the F1 of ``solutions`` (subset ``name``); ties: the lowest."""
    erroneous = [_right_interval(s) for s in solutions if s.first_wrong != -1]
    correct = [_right_interval(s) for s in solutions if s.first_wrong == -1]
    if not erroneous or not correct:
        raise UserError(
            f"--threshold-split '{name}' has {len(erroneous)} erroneous and {len(correct)} correct solutions; choosing a threshold "
            "needs both (the scores are kept: re-run with another --threshold-split or a number)"
        )

    def f1(threshold: float) -> float:
        score = ProcessBenchScore(
            erroneous=len(erroneous),
            erroneous_right=sum(lo < threshold <= hi for lo, hi in erroneous),
            correct=len(correct),
            correct_right=sum(lo < threshold <= hi for lo, hi in correct),
        )
        return score.f1 or 0.0

    return max(threshold_candidates(r for s in solutions for r in s.rewards), key=f1)


class ThresholdChoice(BaseModel):
    """How the threshold is set: a number, or ``sweep`` on one named subset."""

    threshold: float | Literal["sweep"] = Field(
        0.5,
        description="the predicted first wrong step is the first whose reward is below this: a number from 0 to 1, or 'sweep' to "
        "use the one maximising the F1 of the subset --threshold-split names",
    )
    threshold_split: str | None = Field(
        None,
        description="with --threshold sweep: the subset (its 'subset' field, or its file's name) the threshold is chosen on, e.g. gsm8k",
    )

    @field_validator("threshold", mode="before")
    @classmethod
    def _number_or_sweep(cls, value: Any) -> float | str:
        if value == "sweep":
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"--threshold must be a number from 0 to 1 or 'sweep', not '{value}'") from None
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"--threshold must be a number from 0 to 1 or 'sweep', not {number:g}")
        return number

    @model_validator(mode="after")
    def _split_with_sweep(self) -> ThresholdChoice:
        if self.threshold == "sweep" and self.threshold_split is None:
            raise ValueError("--threshold sweep needs --threshold-split NAME: the subset the threshold is chosen on")
        if self.threshold != "sweep" and self.threshold_split is not None:
            raise ValueError("--threshold-split only goes with --threshold sweep")
        return self


class ProcessBenchResult(BaseModel):
    """The benchmark's figure: each subset's counts and F1 at one threshold, and the mean of the F1s."""

    f1: float | None = Field(description="the mean of the subsets' F1s; None unless every subset's F1 is defined")
    threshold: float
    threshold_chosen_by: Literal["fixed", "sweep"]
    threshold_split: str | None
    subsets: dict[str, ProcessBenchScore]


def processbench(solutions: Sequence[SolutionRewards], choice: ThresholdChoice) -> ProcessBenchResult:
    """ProcessBench per subset and their mean, at the threshold ``choice`` gives or picks."""
    groups, split = by_subset(solutions), choice.threshold_split
    if isinstance(choice.threshold, float):
        threshold = choice.threshold
    elif split is not None and split in groups:
        threshold = sweep_threshold(groups[split], split)
    else:
        raise UserError(f"--threshold-split '{split}' is not a subset of the scored solutions (subsets: {', '.join(groups) or 'none'})")
    subsets = {name: score_at(group, threshold) for name, group in groups.items()}
    f1s = [s.f1 for s in subsets.values() if s.f1 is not None]
    return ProcessBenchResult(
        f1=sum(f1s) / len(f1s) if f1s and len(f1s) == len(subsets) else None,
        threshold=threshold,
        threshold_chosen_by="fixed" if isinstance(choice.threshold, float) else "sweep",
        threshold_split=split,
        subsets=subsets,
    )


def solution_rewards(rows: Iterable[dict[str, Any]]) -> list[SolutionRewards]:
    """The scored solutions of a score run's rows, steps in order; a solution with a step nobody could
    score is left out (the build counts it as unscored)."""
    steps: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        steps.setdefault(row["source_id"], []).append(row)
    solutions = []
    for source_id, group in steps.items():
        group.sort(key=lambda r: r["step_index"])
        rewards = [r["reward"] for r in group]
        if all(r is not None for r in rewards):
            solutions.append(SolutionRewards(id=source_id, subset=group[0]["subset"], first_wrong=group[0]["solution_first_wrong"], rewards=rewards))
    return solutions


REWARD_METHODS = ("p_yes", "vote", "none")


class RprmScoreStats(BuilderStats):
    SOLUTIONS_UNLABELLED = Stat("solutions_unlabelled")
    SOLUTIONS_UNSCORED = Stat("solutions_unscored")
    SOLUTIONS_CORRECT = Stat("solutions_correct")
    SOLUTIONS_ERRONEOUS = Stat("solutions_erroneous")
    EVALUATIONS = Stat("evaluations")
    EVALUATIONS_FAILED = Stat("evaluations_failed")
    REWARDS = StatFamily("rewards", REWARD_METHODS)

    LOSSES = (
        Loss(
            SOLUTIONS_UNLABELLED,
            "inputs",
            "solutions",
            "have no step labels to score up to a first wrong step",
            "use a source whose solutions are labelled up to their first wrong step (or every step, for a correct one)",
        ),
    )


Evaluation = tuple[str, SlotReading[Label]]
"""One of a step's K evaluations: the analysis up to its verdict slot, and what was read there."""


class StepToScore(StepToAnalyse, Protocol):
    """A step to score, with the stable id its evaluations' seeds derive from."""

    @property
    def id(self) -> str: ...


def evaluate_steps(engine: Engine, steps: Sequence[StepToScore], cfg: RprmScoreConfig, seed: int, progress: ProgressFn | None = None) -> list[list[Evaluation]]:
    """``cfg.k`` sampled analyses of every step, each read at its verdict slot: two batched engine calls.

    A step's list holds the evaluations that did not fail (fewer than K when an analysis or its slot
    read failed: the caller counts the difference). Its reward is :func:`step_evaluations_reward` of them.
    """
    requests = [analysis_request(item, derive_seed(seed, item.id, "score")) for item in steps]
    params = SamplingParams(n=cfg.k, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, stop=(VERDICT_LEAD,), seed=seed)
    analyses = engine.generate(requests, params, progress=progress)
    slots = [
        (i, Request(messages=request.messages, prefix=ANALYSIS.slot(request.prefix + c.text, c.finish_reason), seed=derive_seed(seed, steps[i].id, "slot", j)))
        for i, (request, completions) in enumerate(zip(requests, analyses, strict=True))
        for j, c in enumerate(completions)
        if c.ok
    ]
    per_step: list[list[Evaluation]] = [[] for _ in steps]
    for (i, request), reading in zip(slots, read_slots(engine, ANALYSIS.vocabulary, [r for _, r in slots], seed), strict=True):
        if reading is not None:  # a failed call at the slot is no evaluation
            per_step[i].append((request.prefix, reading))
    return per_step


def step_evaluations_reward(evaluations: Sequence[Evaluation]) -> tuple[float | None, str]:
    """A step's reward from its evaluations (mean P(Yes), else the Yes-vote share) and how it was made."""
    return step_reward([r.probability("Yes") for _, r in evaluations], [r.token for _, r in evaluations])


class RprmScoreBuilder(Builder[RprmScoreConfig]):
    name = "rprm-score"
    version = "0.3.0"
    summary = "per-step R-PRM rewards (mean P(Yes) over K analyses) for step-labelled solutions, with the ProcessBench F1"
    row_model = RprmScoreRow
    Config = RprmScoreConfig
    Stats = RprmScoreStats

    @classmethod
    def load_inputs(cls, source: SourceConfig) -> list[BaseModel]:
        if source.source.startswith(GYM_PREFIX):
            raise UserError(f"{cls.name} scores step-labelled solutions (a file, a folder of files or a step_labels run dir), not '{source.source}'")
        if source.offset:
            raise UserError(f"{cls.name}: --offset skips rows of a problem source; step-labelled solutions take --limit only")
        return list(read_step_solutions(source.source, source.limit))

    @classmethod
    def estimate(cls, config: RprmScoreConfig, inputs: Sequence[LabelledSolution]) -> list[Calls]:
        steps = [item for s in inputs if s.first_wrong is not None and s.evaluated_steps for item in s.inputs()]
        analyses = analysis_calls(steps, config.k, config.max_tokens, "analyses (one per evaluated step)")
        slots = Calls(
            role="policy",
            stage="verdict slots (P(Yes) read after each analysis)",
            requests=len(steps) * config.k,
            max_tokens=1,
            prompts=analyses.prompts,
            added_tokens=config.max_tokens,
        )
        return [analyses, slots]

    def build(self, items: list[LabelledSolution]) -> list[BaseRow]:
        cfg, seed = self.config, self.ctx.seed
        engine = self.ctx.engines["policy"]
        solutions = []
        for solution in items:
            if solution.first_wrong is None or not solution.evaluated_steps:
                self.stats.add(RprmScoreStats.SOLUTIONS_UNLABELLED)
            else:
                solutions.append(solution)
        inputs = [item for s in solutions for item in s.inputs()]
        per_step = evaluate_steps(engine, inputs, cfg, seed)
        evaluated = sum(map(len, per_step))
        self.stats.add(RprmScoreStats.EVALUATIONS, evaluated)
        self.stats.add(RprmScoreStats.EVALUATIONS_FAILED, len(inputs) * cfg.k - evaluated)
        rewards = iter(per_step)
        rows: list[BaseRow] = []
        for solution in solutions:
            rows += self._solution_rows(solution, [next(rewards) for _ in range(solution.evaluated_steps)])
        self.ctx.on_inputs_done(len(items))
        return rows

    def _solution_rows(self, solution: LabelledSolution, steps: list[list[Evaluation]]) -> list[RprmScoreRow]:
        evaluations = [([r.probability("Yes") for _, r in evals], [r.token for _, r in evals], [text for text, _ in evals]) for evals in steps]
        scored = [step_evaluations_reward(evals) for evals in steps]
        for _, method in scored:
            self.stats.add(RprmScoreStats.REWARDS[method])
        label = solution.first_wrong if solution.first_wrong is not None else -1
        if any(r is None for r, _ in scored):
            self.stats.add(RprmScoreStats.SOLUTIONS_UNSCORED)
        else:
            self.stats.add(RprmScoreStats.SOLUTIONS_CORRECT if label == -1 else RprmScoreStats.SOLUTIONS_ERRONEOUS)
        return [
            RprmScoreRow(
                id=item.id,
                source_id=solution.id,
                meta=self.row_meta(),
                subset=solution.subset or "",
                question=solution.question,
                now_step=item.now_step,
                step_index=item.step_index,
                label=item.label,
                reward=reward,
                method=method,
                p_yes=p_yes,
                votes=votes,
                analyses=texts,
                solution_first_wrong=label,
            )
            for item, (reward, method), (p_yes, votes, texts) in zip(solution.inputs(), scored, evaluations, strict=True)
        ]

    @classmethod
    def report(cls, stats: Mapping[str, float]) -> list[tuple[str, str]]:
        S = RprmScoreStats
        rewards = S.REWARDS.read(stats)
        return [
            ("solutions scored: erroneous / correct", f"{S.SOLUTIONS_ERRONEOUS.read(stats):g} / {S.SOLUTIONS_CORRECT.read(stats):g}"),
            ("step rewards by " + " / ".join(REWARD_METHODS), " / ".join(f"{rewards.get(m, 0):g}" for m in REWARD_METHODS)),
            ("evaluations (failed, dropped)", f"{S.EVALUATIONS.read(stats):g} ({S.EVALUATIONS_FAILED.read(stats):g})"),
            ("solutions unlabelled / unscored", f"{S.SOLUTIONS_UNLABELLED.read(stats):g} / {S.SOLUTIONS_UNSCORED.read(stats):g}"),
            ("ProcessBench F1", "per subset and their mean: judgeforge score rprm"),
        ]


def summary(manifest: dict[str, Any], solutions: Sequence[SolutionRewards], choice: ThresholdChoice) -> dict[str, Any]:
    """The metric of a finished score run: ProcessBench per subset and their mean, from its scored
    solutions, with the manifest's counters and provenance."""
    stats, S = manifest["builder_stats"], RprmScoreStats
    result = processbench(solutions, choice)
    methods = {m: int(S.REWARDS[m].read(stats)) for m in REWARD_METHODS}
    return {
        "metric": "ProcessBench",
        **result.model_dump(),
        "solutions": {
            "erroneous": int(S.SOLUTIONS_ERRONEOUS.read(stats)),
            "correct": int(S.SOLUTIONS_CORRECT.read(stats)),
            "unlabelled": int(S.SOLUTIONS_UNLABELLED.read(stats)),
            "unscored": int(S.SOLUTIONS_UNSCORED.read(stats)),
        },
        "reward_method": "p_yes" if methods["p_yes"] and not methods["vote"] else "vote" if methods["vote"] and not methods["p_yes"] else "mixed",
        "step_rewards_by_method": methods,
        "k": manifest["config"]["k"],
        "config": manifest["config"],
        "model": manifest["models"]["policy"],
        "source": manifest["source"],
        "run_id": manifest["run_id"],
        "steps_scored": manifest["rows_out"],
    }


def summary_lines(result: dict[str, Any], where: Path) -> list[str]:
    """What score rprm prints: the mean F1, how the threshold was set, then one line per subset."""

    def number(value: float | None) -> str:
        return "undefined" if value is None else f"{value:.4f}"

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    count = len(result["subsets"])
    how = f"chosen by sweep on {result['threshold_split']}" if result["threshold_chosen_by"] == "sweep" else "fixed"
    f1 = number(result["f1"]) if result["f1"] is not None else "undefined (every subset needs both erroneous and correct solutions)"
    head = (
        f"ProcessBench F1 = {f1} (mean over {count} subset{'' if count == 1 else 's'}; {result['reward_method']} rewards, K={result['k']}, "
        f"threshold {result['threshold']:.4g} {how}); {where}"
    )
    lines = [head]
    for name, s in result["subsets"].items():
        lines.append(
            f"  {name}: F1 {number(s['f1'])}, accuracy on erroneous {pct(s['accuracy_erroneous'])} of {s['erroneous']}, "
            f"on correct {pct(s['accuracy_correct'])} of {s['correct']}"
        )
    return lines
