"""Answer filters: a recorded final answer graded against the gold answer, and the answer an S2R
trajectory ends on.

Both grade with the shared checker (:func:`judgeforge.verify.answers_match`) where they re-check, and keep
rows with no gold answer: there is nothing to check them against.
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from judgeforge.curation.filters.base import Column, ColumnType, Filter, FilterParams, Stage, ident, no_rows
from judgeforge.formats.s2r import final_attempt


class AnswerCheckParams(FilterParams):
    gold: str = Field(description="column with the gold final answer")
    answer: str = Field(description="column with the recorded final answer")
    correct: str | None = Field(None, description="bool column with the builder's own verdict; none: re-check answer against gold with math-verify")
    drop_unanswered: bool = Field(False, description="also drop rows that have a gold answer but no recorded answer")


class AnswerCheck(Filter):
    """Rows whose recorded final answer fails against the gold answer.

    With ``correct`` the builder's verdict is trusted (it may have used a task's own scorer); without it
    every distinct (gold, answer) pair is checked once with :func:`judgeforge.verify.answers_match`.
    Rows with no gold answer are kept: there is nothing to check them against.
    """

    type_name = "answer_check"
    summary = "drop rows whose recorded final answer fails against gold"
    Params = AnswerCheckParams
    params: AnswerCheckParams

    def columns(self) -> list[Column]:
        cols = [Column("gold", self.params.gold, ColumnType.TEXT), Column("answer", self.params.answer, ColumnType.TEXT)]
        if self.params.correct:
            cols.append(Column("correct", self.params.correct, ColumnType.BOOL))
        return cols

    def select(self, stage: Stage) -> str:
        p = self.params
        gold, answer = ident(p.gold), ident(p.answer)
        unanswered = (
            f"SELECT _rid, 'no recorded answer' AS reason FROM {stage.rows} WHERE {gold} IS NOT NULL AND {answer} IS NULL" if p.drop_unanswered else no_rows()
        )
        if p.correct:
            wrong = (
                f"SELECT _rid, 'answer ' || {answer} || ' marked wrong against gold ' || coalesce({gold}, '?') AS reason "
                f"FROM {stage.rows} WHERE {answer} IS NOT NULL AND {ident(p.correct)} = false"
            )
            return f"{wrong} UNION ALL {unanswered}"
        from judgeforge.verify import answers_match

        verdicts = []
        query = f"SELECT DISTINCT {gold} AS gold, {answer} AS answer FROM {stage.rows} WHERE {gold} IS NOT NULL AND {answer} IS NOT NULL"
        for batch in stage.con.sql(query).to_arrow_reader(stage.batch_rows):
            ok = [answers_match(g, a) for g, a in zip(batch.column("gold").to_pylist(), batch.column("answer").to_pylist(), strict=True)]
            self.stats["distinct_pairs_checked"] += batch.num_rows
            verdicts.append(pa.table({"gold": batch.column("gold"), "answer": batch.column("answer"), "ok": ok}))
        if not verdicts:
            return unanswered
        name = stage.register(pa.concat_tables(verdicts))
        wrong = (
            f"SELECT c._rid, 'answer ' || c.{answer} || ' does not match gold ' || c.{gold} AS reason FROM {stage.rows} c "
            f"JOIN {name} v ON c.{gold} = v.gold AND c.{answer} = v.answer WHERE NOT v.ok"
        )
        return f"{wrong} UNION ALL {unanswered}"


class FinalAttemptParams(FilterParams):
    completion: str = Field("completion", description="column of the self-verifying completion (attempts, verifications, retries)")
    gold: str = Field("gold_answer", description="column with the gold final answer")


class FinalAttempt(Filter):
    """Self-verifying completions (S2R) that do not end on a right answer.

    The answer a completion ends on is that of its last attempt, when that attempt's own verification
    confirms it (:func:`judgeforge.formats.s2r.final_attempt`): a trajectory whose last attempt is
    rejected, unverified or states no answer, or whose confirmed answer fails against gold, teaches the
    model to stop on a wrong answer. The answer is re-read from the text, not taken from the segments.
    """

    type_name = "final_attempt"
    summary = "drop self-verifying completions whose confirmed final attempt is missing or wrong against gold"
    Params = FinalAttemptParams
    params: FinalAttemptParams

    def columns(self) -> list[Column]:
        return [Column("completion", self.params.completion, ColumnType.TEXT), Column("gold", self.params.gold, ColumnType.TEXT)]

    def select(self, stage: Stage) -> str:
        p = self.params
        return self.batch_drops(stage, f"{ident(p.completion)} AS completion, {ident(p.gold)} AS gold", self._reasons, f"{ident(p.gold)} IS NOT NULL")

    def _reasons(self, batch: pa.RecordBatch) -> list[str | None]:
        from judgeforge.verify import answers_match, extract_answer

        why: list[str | None] = []
        for text, gold in zip(batch.column("completion").to_pylist(), batch.column("gold").to_pylist(), strict=True):
            self.stats["completions_checked"] += 1
            attempt = final_attempt(text or "")
            answer = None if attempt is None else extract_answer(attempt)
            if attempt is None:
                why.append("no final attempt confirmed by its own verification")
            elif answer is None:
                why.append("the confirmed final attempt states no answer")
            else:
                why.append(None if answers_match(gold, answer) else f"final answer {answer} does not match gold {gold}")
        return why
