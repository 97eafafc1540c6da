"""Monte-Carlo value of a partial solution: how often does the policy reach the gold answer from here?

With no process reward model offline, a step is graded the way Math-Shepherd grades it: complete the
solution R times from the steps so far and count how many completions reach the gold answer. EFT uses
these values to ground which of two candidate steps is better; step-label building uses them to mark
each step correct or not. One batched engine call covers every prefix of every problem. A prefix none
of whose rollouts finished (engine errors, token budget) has no value at all rather than 0.0, so a
failed call can never make a step "wrong" or a candidate "worst".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from judgeforge.builders.base import BuilderStats, Counters, Stat
from judgeforge.engines.base import Engine, SamplingParams, derive_seed
from judgeforge.formats.steps import next_step_request
from judgeforge.sources import Problem
from judgeforge.verify import check_answer, has_final_answer


class RolloutStats(BuilderStats):
    """The counters of every builder that grades by rollouts (its ``Stats`` extend these)."""

    ROLLOUTS = Stat("rollouts")
    ROLLOUTS_UNFINISHED = Stat("rollouts_unfinished")
    ROLLOUTS_FAILED = Stat("rollouts_failed")


@dataclass(frozen=True)
class RolloutResult:
    """Outcome of R completions from one partial solution."""

    rollouts: int
    correct: int
    unfinished: int
    failed: int

    @property
    def finished(self) -> int:
        """Rollouts that came back and ended (a final answer, or a stop before the token budget)."""
        return self.rollouts - self.failed - self.unfinished

    @property
    def value(self) -> float | None:
        """Fraction of the returned rollouts (finished or not) reaching the gold answer; None when no
        rollout finished (every call failed or ran out of budget), which is no evidence either way:
        callers drop or leave unlabelled what has no value, never read it as 0."""
        return self.correct / (self.rollouts - self.failed) if self.finished else None

    def count(self, stats: Counters) -> None:
        """Add this result's rollouts (unfinished, failed) to a builder's :class:`RolloutStats` counters."""
        stats.add(RolloutStats.ROLLOUTS, self.rollouts)
        stats.add(RolloutStats.ROLLOUTS_UNFINISHED, self.unfinished)
        stats.add(RolloutStats.ROLLOUTS_FAILED, self.failed)


def rollout_values(
    engine: Engine,
    prefixes: Sequence[tuple[Problem, Sequence[str]]],
    rollouts: int,
    params: SamplingParams,
    seed: int,
) -> list[RolloutResult]:
    """Complete each (problem, steps so far) ``rollouts`` times in one call and count gold answers reached.

    ``params`` sets temperature, top_p and the completion budget; ``n`` is replaced by ``rollouts`` and no
    stop strings apply (a rollout runs to the end of the solution). A rollout that hits its token budget
    without a final answer counts as unfinished (and not correct); see :attr:`RolloutResult.value`.
    """
    requests = [next_step_request(problem.question, list(steps), derive_seed(seed, problem.id, "rollout", *steps)) for problem, steps in prefixes]
    sampling = params.model_copy(update={"n": rollouts, "stop": ()})
    results = []
    outputs = engine.generate(requests, sampling)
    for (problem, _), request, completions in zip(prefixes, requests, outputs, strict=True):
        correct = unfinished = failed = 0
        for completion in completions:
            if not completion.ok:
                failed += 1
                continue
            text = request.prefix + completion.text
            if not has_final_answer(completion.text) and completion.finish_reason == "length":
                unfinished += 1
            elif check_answer(problem, text):
                correct += 1
        results.append(RolloutResult(rollouts=len(completions), correct=correct, unfinished=unfinished, failed=failed))
    return results
