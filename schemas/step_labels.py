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
:mod:`judgeforge.formats.step_inputs` reads a run of these rows back as evaluation inputs. TRL view: the
stepwise-supervision layout (``prompt``, ``completions``, ``labels``), cut after the first wrong step.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Literal

from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.kind import CardExtras, Kind, NotTrained, generic_review
from judgeforge.formats.step_inputs import LabelledSolution

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


_EVAL_ONLY = "step labels are evaluation inputs (R-PRM builds its training data from them), not a training set"
KIND = Kind(
    name="step_labels",
    row=StepLabelRow,
    builder=("step-labels", "judgeforge.builders.step_labels:StepLabelsBuilder"),
    paper=None,
    views={"sft": NotTrained(_EVAL_ONLY), "dpo": NotTrained(_EVAL_ONLY), "grpo": NotTrained(_EVAL_ONLY)},
    train_defaults={},
    default_spec="step_labels.yaml",
    review=generic_review(StepLabelRow),
    card=CardExtras("Step-labelled solutions (process supervision)", ("text-generation",), ("process-supervision", "process-reward-model")),
)
