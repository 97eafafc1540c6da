"""IFT rows: a problem and a step-by-step solution, the policy half of the M0 → M1 fine-tune.

The solution is stored both as its steps and as the joined text in the step format every step-wise
builder uses, so the model learns to write exactly the ``Step n:`` layout the step search continues.
TRL view: conversational SFT ``prompt``/``completion`` — the policy's user turn, then the solution as
the assistant turn, trained on the completion only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from judgeforge.formats.steps import policy_user_message, solution_text
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.kind import PROCESS_SELF_REWARDING, TRL_SFT, CardExtras, Kind, NotTrained, TrainDefaults, generic_review, view


class IftRow(BaseRow):
    kind: ClassVar[str] = "ift"

    question: str
    steps: list[str]
    solution: str
    gold_answer: str | None
    final_answer: str | None
    origin: str
    verified: bool | None


def sft_view(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversational ``prompt`` / ``completion`` for TRL's SFTTrainer, which then trains on the solution only."""
    return [
        {
            "prompt": [{"role": "user", "content": policy_user_message(row["question"])}],
            "completion": [{"role": "assistant", "content": solution_text(row["steps"])}],
        }
        for row in rows
    ]


KIND = Kind(
    name="ift",
    row=IftRow,
    builder=("ift", "judgeforge.builders.ift:IftBuilder"),
    paper=PROCESS_SELF_REWARDING,
    views={
        "sft": view(sft_view, "prompt+completion", TRL_SFT),
        "dpo": NotTrained("IFT rows are single solutions, not preference pairs"),
        "grpo": NotTrained("IFT rows are supervised targets; RL prompts come from s2r-rl-prompts"),
    },
    train_defaults={"sft": TrainDefaults(1e-6, 3, 32, "Zhang et al. 2025, M0 -> M1 on IFT + EFT: 3 epochs, lr 1e-6, batch 32")},
    default_spec="ift.yaml",
    review=generic_review(IftRow),
    card=CardExtras("Step-formatted solutions (IFT)", ("text-generation",), ("sft", "self-rewarding")),
)
