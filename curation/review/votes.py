"""From answers to decisions: each reviewed row's fate by majority vote, and per question how reviewers agreed.

A row's answers to one question are its reviewers' votes (a discarded record votes "discarded", which
drops it). The most common vote wins; an even split between the leaders decides nothing and leaves the
row as it was. The winner's outcome comes from the kind's question (keep / relabel / drop); with several
questions the most severe outcome wins. The statistics — rows and answers reviewed, agreement with the
model's own answers, unanimity among reviewers, answer counts — go into the reviewed run's manifest and
its card.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from judgeforge.curation.review.sidecar import DISCARDED, SIDECAR, SUBMITTED, model_column
from judgeforge.errors import UserError
from judgeforge.schemas.kind import Outcome, ReviewSpec, Row

_SEVERITY: dict[Outcome, int] = {"keep": 0, "relabel": 1, "drop": 2}


@dataclass
class QuestionStats:
    """How one question was answered over the whole review."""

    rows_reviewed: int = 0
    answers: int = 0
    agree_with_model: int = 0
    compared_with_model: int = 0
    unanimous_rows: int = 0
    rows_with_several_answers: int = 0
    labels: Counter[str] = field(default_factory=Counter)

    def add(self, question: str, submitted: list[Row]) -> None:
        """Count one row's submitted answers to ``question``."""
        if not submitted:
            return
        self.rows_reviewed += 1
        self.answers += len(submitted)
        self.labels.update(a[question] for a in submitted)
        compared = [a for a in submitted if a[model_column(question)] is not None]
        self.compared_with_model += len(compared)
        self.agree_with_model += sum(a[question] == a[model_column(question)] for a in compared)
        if len(submitted) > 1:
            self.rows_with_several_answers += 1
            self.unanimous_rows += len({a[question] for a in submitted}) == 1

    def report(self) -> dict[str, Any]:
        return {
            "rows_reviewed": self.rows_reviewed,
            "answers": self.answers,
            "agreement_with_model": round(self.agree_with_model / self.compared_with_model, 4) if self.compared_with_model else None,
            "answers_compared_with_model": self.compared_with_model,
            "reviewer_unanimity": round(self.unanimous_rows / self.rows_with_several_answers, 4) if self.rows_with_several_answers else None,
            "labels": dict(sorted(self.labels.items())),
        }


def majority(votes: list[str]) -> str | None:
    """The most common vote, or None on an even split between the leaders (or no vote)."""
    ranked = Counter(votes).most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def decide(spec: ReviewSpec, answers: list[Row]) -> tuple[dict[str, Outcome | None], dict[str, QuestionStats]]:
    """Per row id: keep / relabel / drop (None: the reviewers split evenly); per question: the statistics."""
    by_row: dict[str, list[Row]] = {}
    for a in answers:
        by_row.setdefault(a["row_id"], []).append(a)
    stats = {q.name: QuestionStats() for q in spec.questions}
    decisions: dict[str, Outcome | None] = {}
    for row_id, row_answers in by_row.items():
        outcomes: list[Outcome] = []
        for q in spec.questions:
            stats[q.name].add(q.name, [a for a in row_answers if a["status"] == SUBMITTED and a[q.name] is not None])
            winner = majority([v for v in (DISCARDED if a["status"] == DISCARDED else a[q.name] for a in row_answers) if v is not None])
            if winner is None:
                continue
            if winner != DISCARDED and winner not in q.outcomes:
                raise UserError(f"{SIDECAR}: row '{row_id}' has the answer '{winner}' to '{q.name}', which this kind does not know")
            outcomes.append("drop" if winner == DISCARDED else q.outcomes[winner])
        decisions[row_id] = max(outcomes, key=lambda o: _SEVERITY[o] if o else -1) if outcomes else None
    return decisions, stats
