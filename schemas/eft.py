"""EFT rows: pairwise next-step judgments grounded in Monte-Carlo rollouts, the judge half of M0 → M1.

``{x, s_1..s_{l-1}, s_l^1, s_l^2, judge}``: a problem, a step prefix, two candidate next steps shown as
Step A / Step B, and a judgment (reasoning + ``[[A]]``/``[[B]]``). The label comes from rollouts, not the
judge's opinion; a judgment is kept only when it agrees with that label in both presentation orders, and
both orders are emitted so "A is better" and "B is better" are exactly balanced. TRL view:
conversational SFT ``prompt``/``completion`` (trained on the completion only) whose user turn is the very pairwise prompt the step-prefs builder judges with, so a model
trained on EFT judges in the format the builder parses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from judgeforge.formats.judge import judge_user_message
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.kind import PROCESS_SELF_REWARDING, TRL_SFT, CardExtras, Kind, NotTrained, TrainDefaults, generic_review, view


class EftRow(BaseRow):
    kind: ClassVar[str] = "eft"

    pair_id: str
    question: str
    previous_steps: list[str]
    step_index: int
    step_a: str
    step_b: str
    label: str
    judgment: str
    forced_verdict: bool
    value_a: float
    value_b: float
    rollouts: int
    gold_answer: str | None
    judge_raw_better_first: str
    judge_raw_better_second: str


def sft_view(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversational ``prompt`` / ``completion`` for TRL's SFTTrainer: the pairwise judge prompt, then the
    kept judgment, the only part trained on."""
    return [
        {
            "prompt": [{"role": "user", "content": judge_user_message(row["question"], row["previous_steps"], row["step_a"], row["step_b"])}],
            "completion": [{"role": "assistant", "content": row["judgment"]}],
        }
        for row in rows
    ]


KIND = Kind(
    name="eft",
    row=EftRow,
    builder=("eft", "judgeforge.builders.eft:EftBuilder"),
    paper=PROCESS_SELF_REWARDING,
    views={
        "sft": view(sft_view, "prompt+completion", TRL_SFT),
        "dpo": NotTrained("EFT trains the judge by SFT on its kept judgments (the paper has no judge DPO)"),
        "grpo": NotTrained("EFT rows are supervised judge targets, not RL prompts"),
    },
    train_defaults={"sft": TrainDefaults(1e-6, 3, 32, "Zhang et al. 2025, M0 -> M1 on IFT + EFT: 3 epochs, lr 1e-6, batch 32")},
    default_spec="eft.yaml",
    review=generic_review(EftRow),
    card=CardExtras("Pairwise step judgments (EFT)", ("text-generation",), ("sft", "llm-as-a-judge", "self-rewarding")),
)
