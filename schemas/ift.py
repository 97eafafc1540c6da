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
