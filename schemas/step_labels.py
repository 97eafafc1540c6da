"""Step-labelled solutions: the evaluation inputs R-PRM learns from and is scored on, built offline.

A row is one solution to one problem in the ``Step n:`` step format, with one label per step — True
(correct), False (wrong) or None (not labelled: the steps after a known first error). ``first_wrong``
is ProcessBench's label (0-based index of the first wrong step, -1 when every step is correct).
``origin`` says where the labels come from: ``sampled`` (a policy solution labelled by Monte-Carlo
rollouts, Math-Shepherd style; ``step_values`` holds each step's fraction of rollouts reaching the gold
answer, None with the label when no rollout finished), ``corrupted`` (a gold solution with one step
changed on purpose so that its value changes, so the first wrong step is known exactly; ``corruption``
is a note of what changed, "step k: number OLD -> NEW" or "step k: operation OLD -> NEW") or ``gold``
(the gold solution, every step correct).
:mod:`judgeforge.builders.step_inputs` reads a run of these rows back as evaluation inputs. TRL view: the
stepwise-supervision layout (``prompt``, ``completions``, ``labels``), cut after the first wrong step.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Literal

from judgeforge.formats.step_inputs import LabelledSolution
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.kind import (
    DISCARD_NOTE,
    CardExtras,
    Kind,
    NotTrained,
    ReviewField,
    ReviewMeta,
    ReviewQuestion,
    ReviewSpec,
    Row,
    or_placeholder,
    problem_field,
)

Origin = Literal["sampled", "corrupted", "gold"]


class StepLabelRow(BaseRow):
    kind: ClassVar[str] = "step_labels"

    question: str
    steps: list[str]
    labels: list[bool | None]
    first_wrong: int | None
    origin: Origin
    gold_answer: str | None
    final_answer: str | None
    final_answer_correct: bool | None
    step_values: list[float | None]
    rollouts: int
    corruption: str | None
    corruption_kind: str | None


def stepwise_view(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """TRL stepwise supervision: ``prompt`` (the question), ``completions`` (steps) and ``labels``,
    for the labelled steps up to and including the first wrong one (the evaluation inputs' steps)."""
    out = []
    for row in rows:
        solution = LabelledSolution(id=row["id"], question=row["question"], steps=row["steps"], labels=row["labels"], layout="step-labels")
        count = solution.evaluated_steps
        if count:
            out.append({"prompt": row["question"], "completions": row["steps"][:count], "labels": row["labels"][:count]})
    return out


# --- review ----------------------------------------------------------------------------------------

_MARKS = {True: "✅ correct", False: "❌ wrong", None: "— not labelled"}


def _labelled_steps(row: Row) -> str:
    parts = []
    for index, (step, label) in enumerate(zip(row["steps"], row["labels"], strict=True)):
        first = " · **marked as the first wrong step**" if index == row["first_wrong"] else ""
        parts.append(f"*{_MARKS[label]}*{first}\n\n{or_placeholder(step, '*(empty)*')}")
    return or_placeholder("\n\n".join(parts), "*(no steps)*")


def _marking(row: Row) -> str:
    first = row["first_wrong"]
    if first is None:
        marked = "No first wrong step is known (a step before any wrong one is not labelled)."
    elif first < 0:
        marked = "No step is marked wrong: every step is labelled correct."
    else:
        marked = f"The first wrong step is marked at **Step {first + 1}**."
    how = {"sampled": "Monte-Carlo rollouts from each step", "corrupted": "a gold solution with one step changed on purpose", "gold": "the gold solution"}
    note = f" ({row['corruption']})" if row["corruption"] else ""
    return f"{marked}\n\nLabels from: {how.get(row['origin'], row['origin'])}{note}. Final answer: `{row['final_answer']}`."


REVIEW = ReviewSpec(
    fields=(
        problem_field(),
        ReviewField("steps", "Solution, with its step labels", _labelled_steps),
        ReviewField("marking", "Marked first wrong step", _marking),
    ),
    questions=(
        ReviewQuestion(
            "first_wrong_right",
            "Is the first wrong step marked correctly?",
            {"yes": "yes", "earlier": "no, an earlier step is wrong", "later": "no, the first error is later (or there is none)"},
            {"yes": "keep", "earlier": "drop", "later": "drop"},
            "Read the solution step by step: which is the first step that is wrong (a wrong calculation, a wrong "
            "fact, or a step that does not follow)? With no step marked, answer yes if every step is correct.",
            lambda r: None if r["first_wrong"] is None else ("yes", None),
        ),
    ),
    guidelines=(
        "Each record is a step-by-step solution with a label per step; process reward models are trained and scored "
        "on where the first wrong step is. Answer **yes** if the marked first wrong step (or, with none marked, no "
        "wrong step) is right (kept), otherwise say whether the first error is earlier or later (dropped). " + DISCARD_NOTE
    ),
    metadata=(
        ReviewMeta("origin", "terms", lambda r: r["origin"]),
        ReviewMeta("corruption_kind", "terms", lambda r: r["corruption_kind"]),
        ReviewMeta("first_wrong", "integer", lambda r: r["first_wrong"]),
        ReviewMeta("num_steps", "integer", lambda r: len(r["steps"])),
    ),
)


_EVAL_ONLY = "step labels are evaluation inputs (R-PRM builds its training data from them), not a training set"
KIND = Kind(
    name="step_labels",
    row=StepLabelRow,
    builder=("step-labels", "judgeforge.builders.step_labels:StepLabelsBuilder"),
    paper=None,
    views={"sft": NotTrained(_EVAL_ONLY), "dpo": NotTrained(_EVAL_ONLY), "rl": NotTrained(_EVAL_ONLY)},
    train_defaults={},
    default_spec="step_labels.yaml",
    review=REVIEW,
    card=CardExtras("Step-labelled solutions (process supervision)", ("text-generation",), ("process-supervision", "process-reward-model")),
)
