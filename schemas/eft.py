"""EFT rows: pairwise next-step judgments grounded in Monte-Carlo rollouts, the judge half of M0 → M1.

``{x, s_1..s_{l-1}, s_l^1, s_l^2, judge}``: a problem, a step prefix, two candidate next steps shown as
Step A / Step B, and a judgment (reasoning + ``[[A]]``/``[[B]]``). The label comes from rollouts, not the
judge's opinion; a judgment is kept only when it agrees with that label in both presentation orders, and
both orders are emitted so "A is better" and "B is better" are exactly balanced. TRL view:
conversational SFT ``prompt``/``completion`` (trained on the completion only) whose user turn is the very pairwise prompt the step-prefs builder judges with, so a model
trained on EFT judges in the format the builder parses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, ClassVar

import pyarrow as pa

from judgeforge.formats.judge import judge_user_message
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.kind import (
    DISCARD_NOTE,
    PROCESS_SELF_REWARDING,
    TRL_SFT,
    CardExtras,
    Kind,
    NotTrained,
    ReviewMeta,
    ReviewSpec,
    Row,
    TrainDefaults,
    VerdictCount,
    Verdicts,
    kept_judgment_field,
    previous_steps_field,
    problem_field,
    step_field,
    tally,
    view,
    yes_no,
)


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


# --- review ----------------------------------------------------------------------------------------


def _model_answer(row: Row) -> tuple[str, float | None]:
    # The rollouts back the kept verdict; the confidence is how far apart the two steps' values are.
    return "yes", round(min(abs(row["value_a"] - row["value_b"]), 1.0), 4)


REVIEW = ReviewSpec(
    fields=(
        problem_field(),
        previous_steps_field(),
        step_field("step_a", "Step A"),
        step_field("step_b", "Step B"),
        kept_judgment_field("Step"),
    ),
    questions=(
        yes_no(
            "verdict_correct",
            "Is the kept verdict correct?",
            "Judge the two candidate next steps yourself, given the problem and the previous steps: is the step the "
            "judgment picks really the better one, and does its reasoning hold?",
            _model_answer,
        ),
    ),
    guidelines=(
        "Each record is a judgment the judge model will be fine-tuned to write: two candidate next steps (A and B) of "
        "a step-by-step solution, and a judgment ending in the verdict `[[A]]` or `[[B]]`. The verdict agrees with "
        "Monte-Carlo rollouts from each step. Answer **yes** if the verdict is correct (kept), **no** if it is not "
        "(dropped: the judgment's reasoning would be wrong too). " + DISCARD_NOTE
    ),
    metadata=(
        ReviewMeta("step_index", "integer", lambda r: r["step_index"]),
        ReviewMeta("label", "terms", lambda r: r["label"]),
        ReviewMeta("forced_verdict", "terms", lambda r: str(r["forced_verdict"]).lower()),
        ReviewMeta("value_gap", "float", lambda r: round(abs(r["value_a"] - r["value_b"]), 4)),
    ),
)


def count_verdicts(table: pa.Table, config: Mapping[str, Any]) -> Verdicts:
    """Each row's kept judgment: its pair's step A shown first against step B; both orders of a pair are two rows."""
    columns = (table.column(c).to_pylist() for c in ("pair_id", "step_a", "step_b", "label", "forced_verdict"))
    counted = tally(zip(*columns, strict=True))
    if config.get("judgment_source") == "rollouts":
        return replace(counted, written="written from the rollout evidence (--judgment-source rollouts: no judge call)")
    return counted


KIND = Kind(
    name="eft",
    row=EftRow,
    builder=("eft", "judgeforge.builders.eft:EftBuilder"),
    paper=PROCESS_SELF_REWARDING,
    views={
        "sft": view(sft_view, "prompt+completion", TRL_SFT),
        "dpo": NotTrained("EFT trains the judge by SFT on its kept judgments (the paper has no judge DPO)"),
        "rl": NotTrained("EFT rows are supervised judge targets, not RL prompts"),
    },
    train_defaults={"sft": TrainDefaults(1e-6, 3, 32, "Zhang et al. 2025, M0 -> M1 on IFT + EFT: 3 epochs, lr 1e-6, batch 32")},
    default_spec="eft.yaml",
    review=REVIEW,
    card=CardExtras("Pairwise step judgments (EFT)", ("text-generation",), ("sft", "llm-as-a-judge", "self-rewarding")),
    verdicts=VerdictCount(("pair_id", "step_a", "step_b", "label", "forced_verdict"), count_verdicts),
)
