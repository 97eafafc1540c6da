"""Short answers: one sampled answer per problem and whether it verifies against the gold answer.

A row is a problem, the policy's whole answer and the grounded label ``correct`` (the final answer
checked against the source's gold answer; None when the problem has none). TRL view: conversational SFT
``prompt``/``completion`` (the answer, trained on the completion only); the default curation spec keeps
only verified answers, so what is trained on is rejection-sampled data.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from judgeforge.formats.steps import policy_user_message
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.kind import (
    TRL_SFT,
    CardExtras,
    Kind,
    NotTrained,
    Plot,
    ReviewField,
    ReviewQuestion,
    ReviewSpec,
    Row,
    TrainDefaults,
    view,
)


class ShortAnswerRow(BaseRow):
    kind: ClassVar[str] = "short_answers"

    question: str
    answer: str
    gold_answer: str | None
    final_answer: str | None
    correct: bool | None


def sft_view(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversational ``prompt`` / ``completion``: the policy's user turn, then its answer."""
    return [
        {"prompt": [{"role": "user", "content": policy_user_message(r["question"])}], "completion": [{"role": "assistant", "content": r["answer"]}]}
        for r in rows
    ]


def _flip(row: Row) -> Row:
    return {**row, "correct": not row["correct"]}


REVIEW = ReviewSpec(
    fields=(ReviewField("question", "Problem", lambda r: r["question"]), ReviewField("answer", "Answer", lambda r: r["answer"] or "*(empty)*")),
    questions=(
        ReviewQuestion(
            "correct",
            "Is the answer correct?",
            {"yes": "yes", "no": "no"},
            {"yes": "keep", "no": "relabel"},
            "Check the final answer against the problem.",
            lambda r: ("yes" if r["correct"] else "no", None),
        ),
    ),
    guidelines="Answer whether the model's answer is correct; a 'no' flips the row's label.",
    relabel=_flip,
)

_NOT = "short answers train by SFT only"
KIND = Kind(
    name="short_answers",
    row=ShortAnswerRow,
    builder=("short-answers", "tests.example_family.builder:ShortAnswersBuilder"),
    paper=None,
    views={"sft": view(sft_view, "prompt+completion", TRL_SFT), "dpo": NotTrained(_NOT), "rl": NotTrained(_NOT)},
    train_defaults={"sft": TrainDefaults(1e-6, 1, 32, "example family: no paper (ours: lr 1e-6, 1 epoch, batch 32)")},
    default_spec=str(Path(__file__).with_name("short_answers.yaml")),
    review=REVIEW,
    card=CardExtras(
        "Short answers (example family)",
        plots=(
            Plot(
                "answer-length",
                "histogram",
                "Answer length",
                "Characters per answer.",
                ("answer",),
                lambda t: [len(a) for a in t.column("answer").to_pylist()],
                "characters",
            ),
        ),
    ),
)
