"""Best-of-N with a generative PRM: R-PRM's second figure besides ProcessBench (``judgeforge eval best-of-n``).

R-PRM (She et al., EMNLP 2025, arXiv 2503.21295) shows its reward model is useful by *guiding* a policy:
sample N solutions per problem, score every one with the PRM, keep the best (Qwen2.5-7B-Instruct,
Best-of-8: 49.6 against pass@1 41.0). The same procedure here, on any policy and any R-PRM-format
reward model:

1. The policy solves each problem greedily (pass@1) and samples ``n`` solutions (temperature, top_p),
   in the builders' step format (the policy prompt, the assistant turn opened with ``Step 1:``).
2. Each sample is cut into its steps (:func:`judgeforge.formats.steps.split_steps`), and every step is
   scored as ``judgeforge eval prm`` scores it: the mean over ``k`` sampled analyses of P(Yes) at the
   verdict slot (:func:`judgeforge.builders.rprm_score.evaluate_steps`; the Yes-vote share where the
   engine returns no log-probabilities).
3. A solution's score aggregates its step rewards by **min** (the default) or by **product**. Min is the
   default because a solution is only as sound as its weakest step, and it does not depend on how many
   steps a solution has: a product multiplies in every step, so it prefers short solutions (ten steps at
   0.9 score 0.35, two at 0.8 score 0.64). Both are reported.

What is reported, over the problems with a gold answer: **pass@1** (the greedy solution is right),
**Best-of-N** by min and by product (the highest-scoring sample is right; ties go to the first sample),
**majority vote** (the most frequent final answer among the samples that state one is right; ties go to
the answer given first) and **oracle pass@N** (some sample is right: the ceiling of any selection). A
sample whose engine call failed is dropped and counted (``failed_samples``), never scored or selected;
a sample none of whose steps got an evaluation, or that has no steps, is *unscored* and never selected;
a problem with no scored sample has no Best-of-N pick and counts as wrong (``problems_unscored``).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from judgeforge.builders.rprm_score import RprmScoreConfig, evaluate_steps, step_evaluations_reward
from judgeforge.engines import EngineSpec
from judgeforge.engines.base import Engine, ProgressFn, SamplingParams, derive_seed
from judgeforge.formats.steps import normalise_steps, split_steps
from judgeforge.sources import Problem, SourceConfig
from judgeforge.train.eval import solve, token_progress
from judgeforge.verify import check_answer, extract_answer

Aggregate = Literal["min", "product"]
AGGREGATES: tuple[Aggregate, ...] = ("min", "product")


class BestOfNSettings(BaseModel):
    """How the policy samples and the PRM scores (the settings the result records)."""

    n: int = Field(8, ge=1, description="solutions sampled per problem (R-PRM's figure: Best-of-8)")
    temperature: float = Field(0.7, gt=0.0, description="sampling temperature of the N solutions")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling of the N solutions")
    max_tokens: int = Field(256, ge=1, description="longest solution, in tokens (the greedy one too)")
    aggregate: Aggregate = Field("min", description="how a solution's step rewards become its score: min (default) or product")
    prm: RprmScoreConfig = Field(default_factory=RprmScoreConfig, description="the PRM's K analyses per step and their sampling")
    seed: int = Field(0, description="seed of the samples and of the PRM's analyses")


@dataclass(frozen=True)
class _Step:
    """One step of one sampled solution, as the PRM is asked about it."""

    id: str
    question: str
    previous_steps: list[str]
    now_step: str


class SampleResult(BaseModel):
    """One sampled solution: its answer, whether it is right, its steps' rewards and its two scores."""

    index: int
    text: str
    answer: str | None
    correct: bool | None
    step_rewards: list[float | None]
    min: float | None
    product: float | None


class ProblemResult(BaseModel):
    """One problem: the greedy solution, the samples, and what each selection picked."""

    id: str
    greedy_answer: str | None
    greedy_correct: bool | None
    failed_samples: int
    samples: list[SampleResult]
    picked: dict[str, int | None] = Field(description="aggregate → the index of the sample Best-of-N keeps (None: no scored sample)")
    majority_answer: str | None


class BestOfNFigures(BaseModel):
    """Accuracies over the problems with a gold answer (``graded``); None when there are none."""

    problems: int
    graded: int
    pass_at_1: float | None
    best_of_n: dict[str, float | None] = Field(description="aggregate → Best-of-N accuracy")
    majority: float | None
    oracle: float | None
    samples: int
    failed_samples: int
    unscored_samples: int
    problems_unscored: int


class BestOfNResult(BaseModel):
    """A policy's Best-of-N figures under one PRM, with what is needed to trust and repeat them."""

    model: str
    """The policy (``model`` like every eval result, so ``--plot`` and ``--out`` treat them alike)."""
    weights_hash: str
    prm: str
    prm_weights_hash: str
    engines: dict[str, dict[str, Any]]
    source: dict[str, Any]
    source_fingerprint: str
    settings: BestOfNSettings
    seconds: float
    figures: BestOfNFigures
    results: list[ProblemResult]


def aggregate(rewards: Sequence[float | None], how: Aggregate) -> float | None:
    """A solution's score from its step rewards; None when it has no step or a step has no reward."""
    if not rewards or any(r is None for r in rewards):
        return None
    given = [r for r in rewards if r is not None]
    return min(given) if how == "min" else math.prod(given)


def pick(scores: Sequence[float | None]) -> int | None:
    """The index of the highest score (ties: the first); None when no sample is scored."""
    scored = [(s, -i) for i, s in enumerate(scores) if s is not None]
    return -max(scored)[1] if scored else None


def majority_answer(answers: Sequence[str | None]) -> str | None:
    """The most frequent stated answer (ties: the one stated first); None when no sample states one."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == top)


def score_samples(
    engine: Engine, problems: Sequence[Problem], samples: Sequence[Sequence[tuple[str, bool]]], settings: BestOfNSettings, progress: ProgressFn | None = None
) -> list[list[list[float | None]]]:
    """Every step of every sample that did not fail, scored by the PRM ``engine`` (two batched calls): rewards per
    problem, per such sample (in order), per step."""
    steps: list[_Step] = []
    shape: list[list[int]] = []
    for problem, texts in zip(problems, samples, strict=True):
        counts = []
        for j, (text, ok) in enumerate(texts):
            if not ok:
                continue
            numbered = normalise_steps(split_steps(text), None)
            steps += [_Step(f"{problem.id}/sample-{j}/step-{i + 1}", problem.question, numbered[:i], step) for i, step in enumerate(numbered)]
            counts.append(len(numbered))
        shape.append(counts)
    rewards = iter([step_evaluations_reward(evals)[0] for evals in evaluate_steps(engine, steps, settings.prm, settings.seed, progress)])
    return [[[next(rewards) for _ in range(count)] for count in counts] for counts in shape]


def problem_result(problem: Problem, greedy: str, samples: Sequence[tuple[str, bool]], rewards: Sequence[list[float | None]]) -> ProblemResult:
    """One problem's samples graded and scored, and what each selection keeps."""
    kept = [(j, text) for j, (text, ok) in enumerate(samples) if ok]
    results = [
        SampleResult(
            index=j,
            text=text,
            answer=extract_answer(text),
            correct=check_answer(problem, text),
            step_rewards=step_rewards,
            min=aggregate(step_rewards, "min"),
            product=aggregate(step_rewards, "product"),
        )
        for (j, text), step_rewards in zip(kept, rewards, strict=True)
    ]
    picked: dict[str, int | None] = {}
    for how in AGGREGATES:
        best = pick([getattr(r, how) for r in results])
        picked[how] = None if best is None else results[best].index
    return ProblemResult(
        id=problem.id,
        greedy_answer=extract_answer(greedy),
        greedy_correct=check_answer(problem, greedy),
        failed_samples=len(samples) - len(kept),
        samples=results,
        picked=picked,
        majority_answer=majority_answer([r.answer for r in results]),
    )


def _share(hits: int, whole: int) -> float | None:
    return hits / whole if whole else None


def figures(results: Sequence[ProblemResult]) -> BestOfNFigures:
    """The figures over ``results`` (definitions in the module docstring)."""
    graded = [r for r in results if r.greedy_correct is not None]

    def right(r: ProblemResult, index: int | None) -> bool:
        return index is not None and bool(next(s for s in r.samples if s.index == index).correct)

    def majority_right(r: ProblemResult) -> bool:
        return r.majority_answer is not None and bool(next(s for s in r.samples if s.answer == r.majority_answer).correct)

    return BestOfNFigures(
        problems=len(results),
        graded=len(graded),
        pass_at_1=_share(sum(bool(r.greedy_correct) for r in graded), len(graded)),
        best_of_n={how: _share(sum(right(r, r.picked[how]) for r in graded), len(graded)) for how in AGGREGATES},
        majority=_share(sum(majority_right(r) for r in graded), len(graded)),
        oracle=_share(sum(any(s.correct for s in r.samples) for r in graded), len(graded)),
        samples=sum(len(r.samples) + r.failed_samples for r in results),
        failed_samples=sum(r.failed_samples for r in results),
        unscored_samples=sum(s.min is None for r in results for s in r.samples),
        problems_unscored=sum(r.picked["min"] is None for r in results),
    )


class Sampled(BaseModel):
    """What the policy wrote: per problem the greedy solution, and the N samples as (text, ok)."""

    greedy: list[str]
    samples: list[list[tuple[str, bool]]]

    def steps(self) -> int:
        """How many steps the PRM is asked about."""
        return sum(len(split_steps(text)) for per_problem in self.samples for text, ok in per_problem if ok)


def sample(policy: Engine, problems: Sequence[Problem], settings: BestOfNSettings, progress: ProgressFn | None = None) -> Sampled:
    """The policy's greedy solution and N samples of every problem (two batched calls)."""
    greedy = solve(policy, problems, SamplingParams(n=1, temperature=0.0, max_tokens=settings.max_tokens), lambda p: 0, progress)
    params = SamplingParams(n=settings.n, temperature=settings.temperature, top_p=settings.top_p, max_tokens=settings.max_tokens, seed=settings.seed)
    samples = solve(policy, problems, params, lambda p: derive_seed(settings.seed, p.id, "best-of-n"), progress)
    return Sampled(greedy=[g[0][0] for g in greedy], samples=[[(text, ok) for text, ok, _ in per_problem] for per_problem in samples])


def select(prm: Engine, problems: Sequence[Problem], sampled: Sampled, settings: BestOfNSettings, progress: ProgressFn | None = None) -> list[ProblemResult]:
    """Score every sample's steps with ``prm`` and select: one result per problem."""
    rewards = score_samples(prm, problems, sampled.samples, settings, progress)
    return [problem_result(p, g, s, r) for p, g, s, r in zip(problems, sampled.greedy, sampled.samples, rewards, strict=True)]


def evaluate_best_of_n(policy: EngineSpec, prm: EngineSpec, source: SourceConfig, settings: BestOfNSettings) -> BestOfNResult:
    """Best-of-N of the policy ``policy`` runs under the PRM ``prm`` runs, on the problems of ``source``.

    The policy's engine is closed before the PRM's is made, unless both are the same spec (one model,
    loaded once), so a large policy and a large PRM never sit in memory together.
    """
    from judgeforge.engines import make_engine
    from judgeforge.executors.local import inputs_fingerprint
    from judgeforge.runs import redact_urls
    from judgeforge.sources import load_problems

    problems = load_problems(source)
    clock = time.perf_counter()
    policy_engine = make_engine(policy)
    shared = prm == policy
    try:
        with token_progress(f"best-of-n: {policy.model} solves {len(problems)} problems greedily and samples {settings.n} solutions of each") as progress:
            sampled = sample(policy_engine, problems, settings, progress)
        policy_hash = policy_engine.weights_hash
    finally:
        if not shared:
            policy_engine.close()
    prm_engine = policy_engine if shared else make_engine(prm)
    try:
        with token_progress(f"best-of-n: {prm.model} scores {sampled.steps()} steps of the samples, {settings.prm.k} analyses each") as progress:
            results = select(prm_engine, problems, sampled, settings, progress)
        prm_hash = prm_engine.weights_hash
    finally:
        prm_engine.close()
    return BestOfNResult(
        model=policy.model,
        weights_hash=policy_hash,
        prm=prm.model,
        prm_weights_hash=prm_hash,
        engines={"policy": redact_urls(policy.model_dump(mode="json")), "prm": redact_urls(prm.model_dump(mode="json"))},
        source=source.model_dump(mode="json"),
        source_fingerprint=inputs_fingerprint(problems),
        settings=settings,
        seconds=round(time.perf_counter() - clock, 3),
        figures=figures(results),
        results=results,
    )
