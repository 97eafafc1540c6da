"""The curation filters: small named units, one job each, declared in a YAML spec.

:mod:`.base` is the framework (what a filter is and sees, the SQL helpers); each other module holds one
group of filters: :mod:`.dedup` (exact and MinHash near-duplicates), :mod:`.decontaminate` (eval-set
n-gram overlap), :mod:`.text` (length, repetition), :mod:`.answers` (final answers against gold),
:mod:`.verdicts` (a kept text states its label), :mod:`.pairs` (preference-pair and judge checks) and
:mod:`.labels` (step-label consistency, label balance). :data:`FILTERS` names every filter type a spec
may use; adding a filter is one class in its group's module and one entry below.
"""

from __future__ import annotations

from judgeforge.curation.filters.answers import AnswerCheck, FinalAttempt
from judgeforge.curation.filters.base import Column, ColumnType, Filter, FilterParams, Stage, ident, joined_text, lit, no_rows, one_row, text_key
from judgeforge.curation.filters.decontaminate import Decontaminate
from judgeforge.curation.filters.dedup import ExactDedup, NearDedup
from judgeforge.curation.filters.labels import FirstWrongCheck, LabelBalance
from judgeforge.curation.filters.pairs import ChosenNotRejected, LengthBias, PositionSwap, ScoreGap
from judgeforge.curation.filters.text import Length, Repetition
from judgeforge.curation.filters.verdicts import VerdictMatch

FILTERS: dict[str, type[Filter]] = {
    f.type_name: f
    for f in (
        ExactDedup,
        NearDedup,
        Decontaminate,
        Length,
        Repetition,
        AnswerCheck,
        FinalAttempt,
        VerdictMatch,
        ChosenNotRejected,
        ScoreGap,
        PositionSwap,
        LengthBias,
        FirstWrongCheck,
        LabelBalance,
    )
}

__all__ = [
    "FILTERS",
    "Column",
    "ColumnType",
    "Filter",
    "FilterParams",
    "Stage",
    "ident",
    "joined_text",
    "lit",
    "no_rows",
    "one_row",
    "text_key",
    "AnswerCheck",
    "ChosenNotRejected",
    "Decontaminate",
    "ExactDedup",
    "FinalAttempt",
    "FirstWrongCheck",
    "LabelBalance",
    "Length",
    "LengthBias",
    "NearDedup",
    "PositionSwap",
    "Repetition",
    "ScoreGap",
    "VerdictMatch",
]
