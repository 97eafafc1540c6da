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
from judgeforge.schemas.kind import (
    DISCARD_NOTE,
    PROCESS_SELF_REWARDING,
    TRL_SFT,
    CardExtras,
    Kind,
    NotTrained,
    ReviewField,
    ReviewMeta,
    ReviewQuestion,
    ReviewSpec,
    Row,
    TrainDefaults,
    or_placeholder,
    problem_field,
    view,
)


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


# --- review ----------------------------------------------------------------------------------------


def _model_answer(row: Row) -> tuple[str, float | None]:
    # The data keeps the solution as a good one; a sampled solution whose answer did not verify says so.
    return ("wrong" if row["verified"] is False else "yes"), None


REVIEW = ReviewSpec(
    fields=(
        problem_field(),
        ReviewField("solution", "Solution", lambda r: or_placeholder(solution_text(r["steps"]), "*(no steps)*")),
    ),
    questions=(
        ReviewQuestion(
            "solution_good",
            "Is this solution correct and well split into steps?",
            {"yes": "yes", "wrong": "no, the solution is wrong", "badly_split": "no, it is right but badly split into steps"},
            {"yes": "keep", "wrong": "drop", "badly_split": "drop"},
            "Correct: every step is right and the final answer is. Well split: each `Step n:` is one meaningful step, "
            "not a fragment of one nor several steps run together.",
            _model_answer,
        ),
    ),
    guidelines=(
        "Each record is one step-by-step solution the policy will be fine-tuned to write. Answer **yes** if it is "
        "correct and well split into steps (kept), otherwise say what is wrong with it (dropped). " + DISCARD_NOTE
    ),
    metadata=(
        ReviewMeta("origin", "terms", lambda r: r["origin"]),
        ReviewMeta("verified", "terms", lambda r: None if r["verified"] is None else str(r["verified"]).lower()),
        ReviewMeta("num_steps", "integer", lambda r: len(r["steps"])),
    ),
)


KIND = Kind(
    name="ift",
    row=IftRow,
    builder=("ift", "judgeforge.builders.ift:IftBuilder"),
    paper=PROCESS_SELF_REWARDING,
    views={
        "sft": view(sft_view, "prompt+completion", TRL_SFT),
        "dpo": NotTrained("IFT rows are single solutions, not preference pairs"),
        "rl": NotTrained("IFT rows are supervised targets; RL prompts come from s2r-rl-prompts"),
    },
    train_defaults={"sft": TrainDefaults(1e-6, 3, 32, "Zhang et al. 2025, M0 -> M1 on IFT + EFT: 3 epochs, lr 1e-6, batch 32")},
    default_spec="ift.yaml",
    review=REVIEW,
    card=CardExtras("Step-formatted solutions (IFT)", ("text-generation",), ("sft", "self-rewarding")),
)
