"""Step-wise preference rows and their TRL view for step-wise DPO.

A row is one search step of one problem: the question, the steps accepted so far, the best and worst
of the N sampled next steps (by the judge's pairwise wins; forced verdicts count soft), every candidate
with its score and every raw judgment. Steps that tied are not written, nor steps whose candidates were
all the same text (nothing to prefer); such a step still appears in later rows' ``previous_steps``. The DPO view lays the prompt out exactly as the policy saw it while searching — the user
turn, then the assistant turn so far ending in the next step's header, rendered with the model's chat
template — and the completions are the next step only. TRL's ``DPOTrainer`` would append EOS to every
completion, teaching the policy to stop after an intermediate step; the view instead ends an
intermediate step with the step delimiter and only a final step with EOS, and
:class:`judgeforge.train.stepwise_dpo.StepwiseDPOTrainer` tokenises it without adding anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import BaseModel

from judgeforge.formats.steps import STEP_DELIMITER, assistant_prefix, policy_user_message
from judgeforge.chat import render_prompt
from judgeforge.schemas.base import BaseRow


class StepJudgment(BaseModel):
    """One ordered pairwise comparison between two candidates of the same step."""

    first: int
    second: int
    raw: str
    verdict: str | None
    forced: bool
    p_first: float | None


class StepPrefsRow(BaseRow):
    kind: ClassVar[str] = "step_prefs"

    question: str
    previous_steps: list[str]
    step_index: int
    chosen: str
    rejected: str
    chosen_is_final: bool
    rejected_is_final: bool
    chosen_score: float
    rejected_score: float
    candidates: list[str]
    candidate_scores: list[float]
    judgments: list[StepJudgment]
    judge_unparsable: int
    gold_answer: str | None
    final_answer: str | None
    solution_correct: bool | None
    solution_status: str


def _completion(body: str, is_final: bool, eos_token: str) -> str:
    return body + (eos_token if is_final else STEP_DELIMITER)


def dpo_view(rows: Iterable[dict[str, Any]], tokenizer: Any) -> list[dict[str, str]]:
    """``prompt`` / ``chosen`` / ``rejected`` strings for step-wise DPO, in the policy's chat format."""
    out = []
    for row in rows:
        prefix = assistant_prefix(row["previous_steps"], row["step_index"])
        prompt = render_prompt(tokenizer, [{"role": "user", "content": policy_user_message(row["question"])}], prefix)
        out.append(
            {
                "prompt": prompt,
                "chosen": _completion(row["chosen"], row["chosen_is_final"], tokenizer.eos_token),
                "rejected": _completion(row["rejected"], row["rejected_is_final"], tokenizer.eos_token),
            }
        )
    return out
