"""Preference-pair filters: the two sides differ, the judge separated them, in both orders, not by length.

These read judge data — chosen/rejected texts and scores, and the ordered pairwise judgments a judge
made of the candidates (step-prefs) — and report the judge's position and length biases for the funnel.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from judgeforge.curation.filters.base import Column, ColumnType, Filter, FilterParams, Stage, ident, no_rows, one_row, text_key
from judgeforge.runs import FunnelStep


class PairParams(FilterParams):
    chosen: str = Field("chosen", description="column of the preferred response")
    rejected: str = Field("rejected", description="column of the dispreferred response")


class ChosenNotRejectedParams(PairParams):
    normalize: bool = Field(True, description="compare case-insensitively with runs of whitespace collapsed")


class ChosenNotRejected(Filter):
    """Preference pairs whose two sides are the same text teach nothing."""

    type_name = "chosen_not_rejected"
    summary = "drop pairs whose chosen and rejected texts are equal"
    Params = ChosenNotRejectedParams
    params: ChosenNotRejectedParams

    def columns(self) -> list[Column]:
        return [Column("chosen", self.params.chosen, ColumnType.TEXT_OR_TEXTS), Column("rejected", self.params.rejected, ColumnType.TEXT_OR_TEXTS)]

    def select(self, stage: Stage) -> str:
        p = self.params
        select = f"{text_key(p.chosen, stage.dtype(p.chosen))} AS c, {text_key(p.rejected, stage.dtype(p.rejected))} AS r"
        return self.batch_drops(stage, select, self._reasons)

    def _reasons(self, batch: pa.RecordBatch) -> list[str | None]:
        from judgeforge.curation.ngrams import normalise

        c, r = batch.column("c"), batch.column("r")
        equal = (normalise(c) == normalise(r)).to_arrow() if self.params.normalize else pc.equal(c, r)
        same = pc.or_(pc.fill_null(equal, False), pc.and_(pc.is_null(c), pc.is_null(r)))
        return ["chosen equals rejected" if s else None for s in same.to_pylist()]


class ScoreGapParams(FilterParams):
    chosen: str = Field("chosen_score", description="column of the chosen side's score")
    rejected: str = Field("rejected_score", description="column of the rejected side's score")
    min_gap: float = Field(description="smallest allowed chosen − rejected score; a missing score fails")


class ScoreGap(Filter):
    """Pairs the judge barely separated are noise: require a minimum score gap."""

    type_name = "score_gap"
    summary = "drop pairs whose chosen − rejected score gap is below a minimum"
    Params = ScoreGapParams
    params: ScoreGapParams
    judges = True

    def columns(self) -> list[Column]:
        return [Column("chosen", self.params.chosen, ColumnType.NUMBER), Column("rejected", self.params.rejected, ColumnType.NUMBER)]

    def select(self, stage: Stage) -> str:
        gap = f"({ident(self.params.chosen)} - {ident(self.params.rejected)})"
        low = f"{gap} IS NULL OR {gap} < {self.params.min_gap!r}"
        smallest, largest = one_row(stage.con, f"SELECT min({gap}), max({gap}) FROM {stage.rows} WHERE {low}")
        if smallest is not None:
            self.report["dropped_gaps"] = {"min": round(smallest, 4), "max": round(largest, 4)}
        return (
            f"SELECT _rid, coalesce('score gap ' || round({gap}, 3) || ' < min {self.params.min_gap:g}', 'missing score') AS reason "
            f"FROM {stage.rows} WHERE {low}"
        )

    def explain(self, step: FunnelStep) -> tuple[str, str]:
        gaps = (step.report or {}).get("dropped_gaps")
        spread = f"{gaps['min']:g}–{gaps['max']:g}" if gaps and gaps["min"] != gaps["max"] else f"{gaps['min']:g}" if gaps else "missing"
        return (
            f"{self.params.chosen} − {self.params.rejected} gaps {spread} < min_gap {self.params.min_gap:g}",
            "lower min_gap in a copy of the spec (--spec FILE)",
        )


class PositionSwapParams(FilterParams):
    judgments: str = Field("judgments", description="list column of {first, second, verdict} ordered comparisons")
    pairs: Literal["chosen_rejected", "all"] = Field(
        "chosen_rejected", description="check only the chosen-vs-rejected comparison, or every pair judged in both orders"
    )
    candidates: str = Field("candidates", description="list column of candidate texts that first/second index (for pairs: chosen_rejected)")
    chosen: str = Field("chosen", description="column of the chosen text (for pairs: chosen_rejected)")
    rejected: str = Field("rejected", description="column of the rejected text (for pairs: chosen_rejected)")
    min_consistency: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="smallest share of both-order pairs judged consistently (chosen_rejected: both orders prefer chosen; all: both name the same winner)",
    )


class PositionSwap(Filter):
    """Position-swap consistency: a pair judged in both orders must get the same winner both times.

    With ``pairs: chosen_rejected`` (the default) the chosen-vs-rejected comparison is consistent only
    when *both* orders prefer the chosen step: a judge that prefers the rejected step twice contradicts
    the row's own label, and one that answers "A" whatever it is shown is guessing; both are dropped.
    With ``pairs: all`` every candidate pair judged in both orders is checked for the same winner (no
    pair but chosen-vs-rejected has a label to agree with). Rows with no pair judged in both orders
    (with parsed verdicts) are kept and counted as unchecked. The report carries the A/B balance of all
    verdicts — the judge's position bias.
    """

    type_name = "position_swap"
    summary = "position-swap consistency of pairwise judgments (and the judge's A/B verdict balance)"
    Params = PositionSwapParams
    params: PositionSwapParams
    judges = True

    def explain(self, step: FunnelStep) -> tuple[str, str]:
        agree = "preferred the chosen step" if self.params.pairs == "chosen_rejected" else "named the same winner"
        judged, consistent = step.stats.get("pairs_judged_both_orders", 0), step.stats.get("pairs_consistent", 0)
        share = ((step.report or {}).get("verdicts") or {}).get("A_share")
        bias = f"; A in {share:.0%} of verdicts" if share is not None else ""
        why = f"{consistent} of {judged} pairs judged in both orders {agree} both times, {self.params.min_consistency:g} required{bias}"
        return why, "'action: flag' keeps and logs them, or a lower min_consistency, in a copy of the spec (--spec FILE)"

    def columns(self) -> list[Column]:
        p = self.params
        cols = [Column("judgments", p.judgments, ColumnType.JUDGMENTS)]
        if p.pairs == "chosen_rejected":
            cols += [
                Column("candidates", p.candidates, ColumnType.TEXTS),
                Column("chosen", p.chosen, ColumnType.TEXT),
                Column("rejected", p.rejected, ColumnType.TEXT),
            ]
        return cols

    def select(self, stage: Stage) -> str:
        p = self.params
        j = ident(p.judgments)
        a, b, none = one_row(
            stage.con,
            f"SELECT count(*) FILTER (WHERE v = 'A'), count(*) FILTER (WHERE v = 'B'), count(*) FILTER (WHERE v IS NULL) "
            f"FROM (SELECT unnest({j}).verdict AS v FROM {stage.rows})",
        )
        (rows,) = one_row(stage.con, f"SELECT count(*) FROM {stage.rows}")
        self.report["verdicts"] = {"A": a, "B": b, "unparsed": none, "A_share": round(a / (a + b), 4) if a + b else None}
        if p.pairs == "chosen_rejected":
            scope = (
                f"SELECT _rid, list_position({ident(p.candidates)}, {ident(p.chosen)}) - 1 AS ci, "
                f"list_position({ident(p.candidates)}, {ident(p.rejected)}) - 1 AS ri, unnest({j}) AS j FROM {stage.rows}"
            )
            keep = "WHERE (x.a = x.ci AND x.b = x.ri) OR (x.a = x.ri AND x.b = x.ci)"
            target, agree = "ci", "prefer the chosen step"
        else:
            scope = f"SELECT _rid, unnest({j}) AS j FROM {stage.rows}"
            keep, target, agree = "", "NULL", "name the same winner"
        # w: the candidate a judgment prefers; a both-order pair is consistent when the two agree (and,
        # for chosen_rejected, when the one they agree on is the chosen step).
        checked = f"""
            WITH u AS ({scope}),
            x AS (SELECT *, j.first AS a, j.second AS b, j.verdict AS v FROM u),
            f AS (SELECT _rid, a, b, CASE v WHEN 'A' THEN a WHEN 'B' THEN b END AS w, {target} AS target FROM x {keep}),
            p AS (SELECT s._rid, s.w AS w1, t.w AS w2, s.target FROM f s JOIN f t ON s._rid = t._rid AND s.a = t.b AND s.b = t.a AND s.a < s.b
                  WHERE s.w IS NOT NULL AND t.w IS NOT NULL)
            SELECT _rid, count(*) AS judged, count(*) FILTER (WHERE w1 = w2 AND (target IS NULL OR w1 = target)) AS consistent FROM p GROUP BY _rid
        """
        stage.con.execute(f"CREATE OR REPLACE TEMP TABLE _swap AS {checked}")
        checked_rows, judged, consistent = one_row(stage.con, "SELECT count(*), coalesce(sum(judged), 0), coalesce(sum(consistent), 0) FROM _swap")
        self.stats["rows_checked"] += checked_rows
        self.stats["rows_unchecked"] += rows - checked_rows
        self.stats["pairs_judged_both_orders"] += int(judged)
        self.stats["pairs_consistent"] += int(consistent)
        return (
            f"SELECT _rid, consistent || ' of ' || judged || ' pair(s) judged in both orders {agree}' AS reason "
            f"FROM _swap WHERE consistent < judged * {p.min_consistency!r} - 1e-9"
        )


class LengthBiasParams(PairParams):
    max_chosen_excess: int | None = Field(
        None, ge=0, description="drop pairs whose chosen text is longer than rejected by more than this many characters (WildBench: 50); none: report only"
    )


class LengthBias(Filter):
    """Judges favour longer answers: report chosen vs rejected lengths, optionally cap chosen's excess."""

    type_name = "length_bias"
    summary = "chosen vs rejected length distribution (report), with an optional cap on chosen's excess"
    Params = LengthBiasParams
    params: LengthBiasParams

    def columns(self) -> list[Column]:
        return [Column("chosen", self.params.chosen, ColumnType.TEXT), Column("rejected", self.params.rejected, ColumnType.TEXT)]

    def select(self, stage: Stage) -> str:
        c, r = f"coalesce(length({ident(self.params.chosen)}), 0)", f"coalesce(length({ident(self.params.rejected)}), 0)"
        row = one_row(
            stage.con,
            f"""SELECT count(*), avg(c), median(c), quantile_cont(c, 0.9), avg(r), median(r), quantile_cont(r, 0.9),
                       avg((c > r)::INT), avg((c < r)::INT), avg(c - r)
                FROM (SELECT {c} AS c, {r} AS r FROM {stage.rows})""",
        )
        if row[0]:
            n, cm, cmed, c90, rm, rmed, r90, longer, shorter, diff = row
            self.report.update(
                rows=n,
                chosen_chars={"mean": round(cm, 1), "median": cmed, "p90": c90},
                rejected_chars={"mean": round(rm, 1), "median": rmed, "p90": r90},
                chosen_longer=round(longer, 4),
                chosen_shorter=round(shorter, 4),
                mean_difference=round(diff, 1),
            )
        cap = self.params.max_chosen_excess
        if cap is None:
            return no_rows()
        return f"SELECT _rid, 'chosen is ' || ({c} - {r}) || ' chars longer than rejected (max {cap})' AS reason FROM {stage.rows} WHERE {c} - {r} > {cap}"
