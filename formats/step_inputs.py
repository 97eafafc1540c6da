"""Step-labelled solutions and R-PRM evaluation inputs: the records, and the pure functions over them.

R-PRM (She et al., EMNLP 2025, arXiv 2503.21295) trains and evaluates a reward model on *evaluation
inputs*: a problem, the steps written so far, the step to judge (the "now step") and its label, Yes or
No. A :class:`LabelledSolution` is one solution with a label per step (its steps in the ``Step n:``
format of :mod:`judgeforge.formats.steps`; ``None`` where the source gives no label); it is cut into
:class:`StepInput` records that stop at its first wrong step: the steps after it build on an error, and
the ProcessBench metric never looks past it. Reading the public layouts (PRM800K, Math-Shepherd,
ProcessBench, TRL stepwise, step_labels run dirs) into these records is
:mod:`judgeforge.builders.step_inputs`' job; nothing here touches a file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from judgeforge.formats.steps import format_step

Label = Literal["Yes", "No"]

_LEADING_HEADER = re.compile(r"^\s*Step\s+\d+\s*[:.]\s*", re.IGNORECASE)


class LabelledSolution(BaseModel):
    """One solution with a label per step: True (correct), False (wrong) or None (not labelled)."""

    id: str
    question: str
    steps: list[str]
    labels: list[bool | None]
    gold_answer: str | None = None
    layout: str
    subset: str | None = None  # the benchmark subset it is reported in: the row's 'subset' field, else its file's or run's name

    @property
    def first_wrong(self) -> int | None:
        """ProcessBench's label: see :func:`first_wrong`."""
        return first_wrong(self.labels)

    @property
    def evaluated_steps(self) -> int:
        """How many leading steps become evaluation inputs: the labelled ones up to the first wrong one."""
        count = 0
        for label in self.labels:
            if label is None:
                break
            count += 1
            if not label:
                break
        return count

    def inputs(self) -> list[StepInput]:
        """Evaluation inputs for the labelled steps up to and including the first wrong one."""
        return [
            StepInput(
                id=f"{self.id}/step-{index + 1}",
                solution_id=self.id,
                question=self.question,
                previous_steps=self.steps[:index],
                now_step=self.steps[index],
                step_index=index + 1,
                label="Yes" if self.labels[index] else "No",
                gold_answer=self.gold_answer,
            )
            for index in range(self.evaluated_steps)
        ]


class StepInput(BaseModel):
    """One R-PRM evaluation input: is ``now_step`` (step ``step_index``, 1-based) correct given the rest?

    ``in_balanced_subset`` marks the inputs a seeded Yes/No-balanced selection keeps (see
    :func:`judgeforge.builders.step_inputs.load_step_inputs`); builders drop the others when asked to balance.
    """

    id: str
    solution_id: str
    question: str
    previous_steps: list[str]
    now_step: str
    step_index: int
    label: Label
    gold_answer: str | None = None
    in_balanced_subset: bool = True


def first_wrong(labels: Sequence[bool | None]) -> int | None:
    """0-based index of the first wrong step; -1 when every step is labelled correct; None when a step
    before any wrong one is unlabelled (the solution's first wrong step is then unknown)."""
    for index, label in enumerate(labels):
        if label is None:
            return None
        if not label:
            return index
    return -1


def step_text(index: int, text: str) -> str:
    """A step in the ``Step n:`` format, whatever header (or none) the source wrote it with."""
    return format_step(index, " " + _LEADING_HEADER.sub("", text.strip(), count=1))


def label_balance(inputs: Sequence[StepInput]) -> dict[str, int]:
    """How many inputs carry each label."""
    return {label: sum(1 for i in inputs if i.label == label) for label in ("Yes", "No")}
