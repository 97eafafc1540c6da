"""Label filters: step labels that agree with themselves and the final answer, and label balance.

:class:`FirstWrongCheck` guards step-labelled solutions (the inputs R-PRM learns from and ProcessBench is
scored on); :class:`LabelBalance` down-samples a label column the way the papers balance their data
(EFT's and the Self-Taught Evaluator's exact A/B balance).
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from judgeforge.curation.filters.base import Column, ColumnType, Filter, FilterParams, Stage, ident, lit
from judgeforge.formats.step_inputs import first_wrong
from judgeforge.runs import FunnelStep


class FirstWrongCheckParams(FilterParams):
    labels: str = Field("labels", description="list column of per-step labels (true, false, or null: not labelled)")
    first_wrong: str = Field("first_wrong", description="column of the 0-based first wrong step (-1: none; null: unknown)")
    final_correct: str = Field("final_answer_correct", description="bool column: whether the solution's final answer is right (null: not graded)")


class FirstWrongCheck(Filter):
    """Step-labelled solutions whose first wrong step is marked inconsistently.

    ``first_wrong`` must be what the labels say (:func:`judgeforge.formats.step_inputs.first_wrong`), and a
    solution whose every step is labelled correct must reach the right final answer: one that does not
    has a wrong step its labels missed (ProcessBench counts it as a correct solution).
    """

    type_name = "first_wrong_check"
    summary = "drop step-labelled solutions whose first wrong step disagrees with their labels or their final answer"
    Params = FirstWrongCheckParams
    params: FirstWrongCheckParams

    def columns(self) -> list[Column]:
        p = self.params
        return [
            Column("labels", p.labels, ColumnType.BOOLS),
            Column("first_wrong", p.first_wrong, ColumnType.NUMBER),
            Column("final_correct", p.final_correct, ColumnType.BOOL),
        ]

    def select(self, stage: Stage) -> str:
        p = self.params
        select = f"{ident(p.labels)} AS labels, {ident(p.first_wrong)} AS first_wrong, {ident(p.final_correct)} AS final_correct"
        return self.batch_drops(stage, select, self._reasons)

    def _reasons(self, batch: pa.RecordBatch) -> list[str | None]:
        why: list[str | None] = []
        columns = (batch.column(c).to_pylist() for c in ("labels", "first_wrong", "final_correct"))
        for labels, marked, final_correct in zip(*columns, strict=True):
            derived = first_wrong(labels or [])
            if marked != derived:
                why.append(f"first_wrong is {marked}, its labels say {derived}")
            elif derived == -1 and final_correct is False:
                why.append("every step labelled correct but the final answer is wrong")
            else:
                why.append(None)
        return why


class LabelBalanceParams(FilterParams):
    column: str = Field(description="the label column (Yes/No for R-PRM, A/B for judges, difficulty for S2R)")
    labels: list[str] | None = Field(
        None, description="the labels to balance; rows with other labels are dropped, and a group missing one keeps nothing (default: the labels present)"
    )
    by: list[str] = Field([], description="balance within each group of these columns (stratified), not only overall")
    max_ratio: float = Field(1.0, ge=1.0, description="keep at most this many times the rarest label's count of each label")
    seed: int = Field(0, description="seed of the down-sampling: the same seed keeps the same rows")


class LabelBalance(Filter):
    """Stratified down-sampling: every label keeps at most ``max_ratio`` × the rarest label's count.

    Which rows stay is decided by ``md5(id, seed)``, so it is reproducible and independent of row order.
    """

    type_name = "label_balance"
    summary = "balance a label column by seeded stratified down-sampling"
    Params = LabelBalanceParams
    params: LabelBalanceParams

    def explain(self, step: FunnelStep) -> tuple[str, str]:
        report = step.report or {}
        found = ", ".join(f"{k} {v}" for k, v in (report.get("labels_in") or {}).items()) or "none"
        wanted = "/".join(self.params.labels) if self.params.labels else "every label present"
        within = f" within each {', '.join(self.params.by)}" if self.params.by else ""
        return (
            f"{self.params.column}: {found}; {wanted} must each appear{within}",
            "build more rows (raise --limit) so every label appears, or a larger max_ratio in a copy of the spec",
        )

    def columns(self) -> list[Column]:
        return [Column("column", self.params.column, ColumnType.SCALAR)] + [Column("by", c, ColumnType.SCALAR) for c in self.params.by]

    def select(self, stage: Stage) -> str:
        p = self.params
        label = f"coalesce(CAST({ident(p.column)} AS VARCHAR), '<null>')"
        group = "concat_ws(chr(31), " + ", ".join(f"coalesce(CAST({ident(c)} AS VARCHAR), '<null>')" for c in p.by) + ")" if p.by else "''"
        wanted = ", ".join(lit(x) for x in p.labels) if p.labels else ""
        in_labels = f"label IN ({wanted})" if p.labels else "true"
        need = len(p.labels) if p.labels else 0
        stage.con.execute(
            f"CREATE OR REPLACE TEMP TABLE _labels AS SELECT _rid, {label} AS label, {group} AS grp, md5(id || {lit(str(p.seed))}) AS draw FROM {stage.rows}"
        )
        stage.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _balance AS
            WITH t AS (SELECT * FROM _labels WHERE {in_labels}),
            c AS (SELECT grp, label, count(*) AS n FROM t GROUP BY grp, label),
            g AS (SELECT grp, CASE WHEN count(*) < {need} THEN 0 ELSE min(n) END AS rarest FROM c GROUP BY grp),
            r AS (SELECT t.*, row_number() OVER (PARTITION BY grp, label ORDER BY draw, _rid) AS pos FROM t)
            SELECT r._rid, 'label ' || r.label || ' down-sampled to ' || floor(g.rarest * {p.max_ratio!r})::BIGINT || ' of ' || c.n AS reason
            FROM r JOIN g USING (grp) JOIN c USING (grp, label) WHERE r.pos > floor(g.rarest * {p.max_ratio!r})
            UNION ALL
            SELECT _rid, 'label ' || label || ' is not one of {"/".join(p.labels or [])}' AS reason FROM _labels WHERE NOT ({in_labels})"""
        )
        counts = stage.con.execute(
            "SELECT label, count(*), count(*) FILTER (WHERE _rid NOT IN (SELECT _rid FROM _balance)) FROM _labels GROUP BY label ORDER BY label"
        ).fetchall()
        self.report["labels_in"] = {label: n for label, n, _ in counts}
        self.report["labels_kept"] = {label: kept for label, _, kept in counts}
        return "SELECT _rid, reason FROM _balance"
