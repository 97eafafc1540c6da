"""Verdict filters: the verdict a kept judge or verifier text states, read back with the shared parser,
must be the row's label (or, for a rejected side, must be a verdict other than the label).

A training target teaches the verdict its text states, not the one a builder recorded beside it, so
the text itself is re-parsed: with :func:`judgeforge.formats.judge.parse_verdict` for pairwise judgments
(``[[A]]`` / ``[[B]]``: EFT, Self-Taught) or :func:`judgeforge.formats.rprm.parse_analysis` for R-PRM
analyses (the ``Verification: ... Yes|No`` line). A text with no verdict, several, or one off the
format fails either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pyarrow as pa
from pydantic import Field

from judgeforge.curation.filters.base import Column, ColumnType, Filter, FilterParams, Stage, ident
from judgeforge.formats.judge import parse_verdict
from judgeforge.formats.rprm import parse_analysis
from judgeforge.runs import FunnelStep

PARSERS: dict[str, Callable[[str], str | None]] = {
    "judge": parse_verdict,
    "rprm": lambda text: parse_analysis(text).verdict,
}


class VerdictMatchParams(FilterParams):
    text: str = Field(description="column of the judgment or analysis whose verdict is read")
    label: str = Field("label", description="column of the label the verdict is compared with")
    format: Literal["judge", "rprm"] = Field(description="judge: a pairwise [[A]]/[[B]] judgment; rprm: an R-PRM analysis ending in Yes/No")
    expect: Literal["match", "differ"] = Field(
        "match", description="match: the verdict must be the label; differ: a verdict other than the label (a rejected side)"
    )


class VerdictMatch(Filter):
    """Rows whose text does not state the verdict it is kept for."""

    type_name = "verdict_match"
    summary = "re-parse a judgment's or analysis's verdict and drop rows where it is not the label (or, for a rejected side, is)"
    Params = VerdictMatchParams
    params: VerdictMatchParams
    judges = True

    def explain(self, step: FunnelStep) -> tuple[str, str]:
        none = step.stats.get("no_verdict", 0)
        why = f"{none} of {step.stats.get('texts_parsed', 0)} {self.params.text} texts state no single {self.params.format} verdict"
        return why, "rebuild so that kept texts state their verdict (the builder's counters say how many it forced), or drop this filter in a copy of the spec"

    def columns(self) -> list[Column]:
        return [Column("text", self.params.text, ColumnType.TEXT), Column("label", self.params.label, ColumnType.TEXT)]

    def select(self, stage: Stage) -> str:
        return self.batch_drops(stage, f"{ident(self.params.text)} AS text, {ident(self.params.label)} AS label", self._reasons)

    def _reasons(self, batch: pa.RecordBatch) -> list[str | None]:
        p, parse = self.params, PARSERS[self.params.format]
        why: list[str | None] = []
        for text, label in zip(batch.column("text").to_pylist(), batch.column("label").to_pylist(), strict=True):
            verdict = parse(text or "")
            self.stats["texts_parsed"] += 1
            self.stats["no_verdict"] += verdict is None
            if verdict is None:
                why.append(f"{p.text}: states no single verdict in the {p.format} format")
            elif (verdict == label) != (p.expect == "match"):
                why.append(f"{p.text}: verdict {verdict} {'is not' if p.expect == 'match' else 'is'} the label {label}")
            else:
                why.append(None)
        return why
