"""S2R reward functions for TRL's ``RLOOTrainer`` and ``GRPOTrainer`` (any trainer taking TRL-style ``reward_funcs``).

S2R's RL stage (Ma et al., ACL 2025, arXiv 2502.12853) rewards a self-verifying policy either at the
outcome level — is the final answer right? — or at the process level — is each self-verification
right about the attempt it checks? The paper trains and compares the two as separate variants; it
does not add them, and neither does a recipe here (:data:`REWARDS`: one per run). The paper's exact
reward definitions were not found (its repository gives per-segment rewards of ±1, 0 for a missing
verdict); these are ours, and both read a completion
with the very functions the builder lays trajectories out with
(:mod:`judgeforge.formats.s2r`), so a trajectory the builder made is cut back into exactly its
segments:

- :func:`outcome_reward` grades the completion's **final state**: 1.0 when the answer that stands at the
  end (:func:`judgeforge.formats.s2r.final_attempt`: the last attempt, provided its own
  verification accepts it with "Verdict: correct") is correct, else 0.0. A completion that rejects its
  last attempt and stops, whose last verification gives no verdict, or that never verifies its last
  attempt has no answer standing and scores 0.0 — even when that attempt happens to be right.
- :func:`process_reward`: the completion is cut into (attempt, verification) pairs with
  :func:`judgeforge.formats.s2r.parse_trajectory` (built on ``split_segments``); each
  verification scores 1.0 when its verdict ("correct" / "incorrect") matches the real correctness of
  the attempt it follows and 0.0 otherwise (no verdict counts as 0.0). TRL takes one scalar per
  completion, so the completion's process reward is the **mean over its verifications**; a completion
  that never verifies scores 0.0.

Correctness is decided by :func:`judgeforge.verify.check_answer` on the ``problem`` column (the whole
problem as JSON, so reasoning-gym tasks use their own scorer) when the dataset has one, else by
matching the ``answer`` column (the gold answer) with :func:`judgeforge.verify.answers_match`. TRL hands
every dataset column to a reward function as a keyword argument; ``s2r_rl_prompts`` runs carry both.

Both functions follow TRL 1.16's signature — ``(prompts, completions, completion_ids, **kwargs)`` with
the dataset columns and ``trainer_state`` in ``kwargs`` — and accept standard (string) or conversational
(list of messages) completions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Literal

from judgeforge.formats.s2r import final_attempt, parse_trajectory, parse_verdict
from judgeforge.sources import Problem
from judgeforge.verify import answers_match, check_answer, extract_answer

Completion = str | list[dict[str, str]]
RewardFunc = Callable[..., list[float]]


def outcome_reward(prompts: Sequence[Any], completions: Sequence[Completion], completion_ids: Sequence[Any] | None = None, **kwargs: Any) -> list[float]:
    """1.0 when the answer standing at the end (the last attempt, accepted by its own verification) is correct, else 0.0."""
    rewards = []
    for completion, grade in zip(completions, _graders(len(completions), kwargs), strict=True):
        final = final_attempt(_text(completion))
        rewards.append(float(final is not None and grade(final)))
    return rewards


def process_reward(prompts: Sequence[Any], completions: Sequence[Completion], completion_ids: Sequence[Any] | None = None, **kwargs: Any) -> list[float]:
    """Mean over the completion's verifications of 1.0 (verdict matches its attempt's correctness) or 0.0."""
    rewards = []
    for completion, grade in zip(completions, _graders(len(completions), kwargs), strict=True):
        scores = []
        for attempt in parse_trajectory(_text(completion)):
            if attempt.verification is None:
                continue
            verdict = parse_verdict(attempt.verification).verdict
            scores.append(float(verdict is not None and (verdict == "correct") == grade(attempt.text)))
        rewards.append(sum(scores) / len(scores) if scores else 0.0)
    return rewards


Variant = Literal["outcome", "process"]
REWARDS: dict[Variant, RewardFunc] = {"outcome": outcome_reward, "process": process_reward}
"""The two variants S2R compares; an RL recipe trains with exactly one of them."""


def _text(completion: Completion) -> str:
    """The text of a standard (string) or conversational (messages) completion."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if m.get("role", "assistant") == "assistant")


def _graders(n: int, columns: dict[str, Any]) -> list[Callable[[str], bool]]:
    """One correctness check per completion, from the ``problem`` or the ``answer`` column."""
    problems, answers = columns.get("problem"), columns.get("answer")
    if problems is not None:
        parsed = [Problem.model_validate_json(p) for p in problems]
        return [functools.partial(_solves, p) for p in parsed]
    if answers is not None:
        return [functools.partial(_matches, gold) for gold in answers]
    raise ValueError(f"S2R rewards need an 'answer' (gold answer) or 'problem' column in the dataset; got {sorted(columns)} for {n} completions")


def _solves(problem: Problem, text: str) -> bool:
    return bool(check_answer(problem, text))


def _matches(gold: str | None, text: str) -> bool:
    predicted = extract_answer(text)
    return gold is not None and predicted is not None and answers_match(gold, predicted)
