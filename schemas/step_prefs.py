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

from collections import Counter
from collections.abc import Iterable
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel

from judgeforge.chat import render_prompt
from judgeforge.formats.steps import STEP_DELIMITER, assistant_prefix, policy_user_message
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.kind import (
    DISCARD_NOTE,
    PROCESS_SELF_REWARDING,
    STEPWISE_DPO,
    CardExtras,
    Kind,
    NotTrained,
    Plot,
    ReviewMeta,
    ReviewQuestion,
    ReviewSpec,
    Row,
    TrainDefaults,
    VerdictCount,
    Verdicts,
    previous_steps_field,
    problem_field,
    step_field,
    tally,
    view,
)


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


# --- review ----------------------------------------------------------------------------------------


def _model_answer(row: Row) -> tuple[str, float | None]:
    # The judge ranked chosen above rejected; the confidence is the score margin over its maximum
    # (every candidate meets N-1 others in both orders, one point per judgment).
    span = 2.0 * max(len(row["candidates"]) - 1, 1)
    return "yes", round(min(max((row["chosen_score"] - row["rejected_score"]) / span, 0.0), 1.0), 4)


def _swap_chosen_rejected(row: Row) -> Row:
    swapped = dict(row)
    for a, b in (("chosen", "rejected"), ("chosen_is_final", "rejected_is_final"), ("chosen_score", "rejected_score")):
        swapped[a], swapped[b] = row[b], row[a]
    return swapped


REVIEW = ReviewSpec(
    fields=(
        problem_field(answer=None),
        previous_steps_field(),
        step_field("chosen", "Chosen step (the model's best)"),
        step_field("rejected", "Rejected step (the model's worst)"),
    ),
    questions=(
        ReviewQuestion(
            "chosen_better",
            "Is the chosen step really better than the rejected one?",
            {"yes": "yes", "no": "no, the rejected one is better", "tie": "tie / can't tell"},
            {"yes": "keep", "no": "relabel", "tie": "drop"},
            "Judge the next step only, given the problem and the previous steps: is it correct, and does it move the solution forward?",
            _model_answer,
        ),
    ),
    guidelines=(
        "Each record is one step of a step-by-step solution. The model sampled several candidate next steps "
        "and judged them against each other; it kept the best as **chosen** and the worst as **rejected**.\n\n"
        "Answer **yes** if the chosen step is better, **no** if the rejected one is better (the pair is then "
        "swapped), **tie** if neither is clearly better (the pair is dropped). " + DISCARD_NOTE
    ),
    metadata=(
        ReviewMeta("step_index", "integer", lambda r: r["step_index"]),
        ReviewMeta("solution_status", "terms", lambda r: r["solution_status"]),
    ),
    relabel=_swap_chosen_rejected,
)


# --- card plots ------------------------------------------------------------------------------------


def _margins(table: pa.Table) -> list[float]:
    return [c - r for c, r in zip(table.column("chosen_score").to_pylist(), table.column("rejected_score").to_pylist(), strict=True)]


def _status_counts(table: pa.Table) -> tuple[list[str], list[int]]:
    status = Counter(table.column("solution_status").to_pylist())
    return sorted(status), [status[k] for k in sorted(status)]


PLOTS = (
    Plot(
        "score-margin",
        "histogram",
        "Judge score margin, chosen − rejected",
        "How decisively the judge preferred the chosen step (pairwise wins of chosen minus rejected).",
        ("chosen_score", "rejected_score"),
        _margins,
        "pairwise wins",
    ),
    Plot(
        "step-index",
        "histogram",
        "Pairs per step position",
        "At which step of the solution each pair was taken.",
        ("step_index",),
        lambda t: t.column("step_index").to_pylist(),
        "step index",
    ),
    Plot(
        "solution-status",
        "bars",
        "How each row's solution search ended",
        "Rows by how their problem's search ended (final answer reached, step limit, rollback limit).",
        ("solution_status",),
        _status_counts,
    ),
)


def count_verdicts(table: pa.Table, config: Any) -> Verdicts:
    """Every judgment of every row: candidate ``first`` shown as A against ``second``, per row."""
    rows = zip(table.column("id").to_pylist(), table.column("judgments").to_pylist(), strict=True)
    return tally((row_id, j["first"], j["second"], j["verdict"], j["forced"]) for row_id, judgments in rows for j in judgments)


KIND = Kind(
    name="step_prefs",
    row=StepPrefsRow,
    builder=("step-prefs", "judgeforge.builders.step_prefs:StepPrefsBuilder"),
    paper=PROCESS_SELF_REWARDING,
    views={
        "sft": NotTrained("step preferences are pairs; the M0 -> M1 SFT data is the ift and eft kinds"),
        "dpo": view(dpo_view, "stepwise", STEPWISE_DPO, needs_tokenizer=True),
        "rl": NotTrained("the paper trains on step preferences by step-wise DPO, not RL"),
    },
    train_defaults={"dpo": TrainDefaults(5e-7, 1, 32, "Zhang et al. 2025, step-wise DPO: 1 epoch, lr 5e-7, batch 32 (beta not found)")},
    default_spec="step_prefs.yaml",
    review=REVIEW,
    card=CardExtras(
        "Step-wise preference pairs",
        ("text-generation",),
        ("dpo", "step-wise-dpo", "process-supervision", "self-rewarding", "llm-as-a-judge"),
        PLOTS,
    ),
    verdicts=VerdictCount(("id", "judgments"), count_verdicts),
)
