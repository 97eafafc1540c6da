"""Benchmark decontamination: drop rows sharing a word n-gram with a user-given eval set (open-r1 style).

The eval set is any judgeforge source, loaded once in :meth:`Decontaminate.prepare` (so a bad source
fails before any row is read); without one the filter is skipped and says so in its report.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from judgeforge.curation.filters.base import Column, ColumnType, Filter, FilterParams, Stage, ident, lit, no_rows
from judgeforge.curation.ngrams import MAX_NGRAM, text_ngrams
from judgeforge.sources import SourceConfig


class DecontaminateParams(FilterParams):
    columns: list[str] = Field(["question"], min_length=1, description="text columns checked against the eval set")
    eval: SourceConfig | None = Field(None, description="the eval set: any judgeforge source (source, question_col, ...); none skips the filter")
    eval_fields: list[Literal["question", "solution", "answer"]] = Field(["question"], min_length=1, description="eval problem fields whose n-grams count")
    ngram: int = Field(8, ge=1, le=MAX_NGRAM, description="word n-gram size (open-r1: 8)")

    @model_validator(mode="after")
    def _answers_only_when_used(self) -> DecontaminateParams:
        # An eval set needs no answer column unless its answers are checked for overlap too.
        if self.eval is not None and "answer" not in self.eval_fields and "answer_col" not in self.eval.model_fields_set:
            self.eval = self.eval.model_copy(update={"answer_col": None})
        return self


class Decontaminate(Filter):
    """Rows sharing any word n-gram with an eval problem (open-r1 style, default 8-grams)."""

    type_name = "decontaminate"
    summary = "word 8-gram overlap with a user-given eval set (any judgeforge source)"
    Params = DecontaminateParams
    params: DecontaminateParams

    def columns(self) -> list[Column]:
        return [Column("columns", c, ColumnType.TEXT) for c in self.params.columns]

    _index: tuple[np.ndarray, np.ndarray, list[str]] | None = None

    def prepare(self) -> None:
        if self.params.eval is not None:
            self._index = self._eval_index(self.params.eval)

    def _eval_index(self, source: SourceConfig) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Sorted unique eval n-gram hashes, the eval problem each first came from, and the problem ids."""
        from judgeforge.sources import load_problems

        problems = load_problems(source)
        texts = [getattr(pr, f) or "" for pr in problems for f in self.params.eval_fields]
        grams, counts = text_ngrams(pa.array(texts, pa.string()), self.params.ngram, short_texts=True)
        owner = np.repeat(np.arange(len(texts)) // len(self.params.eval_fields), counts)
        unique, first = np.unique(grams, return_index=True)
        self.stats["eval_problems"] = len(problems)
        self.stats["eval_ngrams"] = len(unique)
        return unique, owner[first], [pr.id for pr in problems]

    def select(self, stage: Stage) -> str:
        if self._index is None:
            self.report["skipped"] = "no eval set: give --eval or 'eval:' in the spec"
            return no_rows()
        index, owners, ids = self._index
        hits: list[pa.Table] = []
        for column in self.params.columns:
            col = ident(column)
            # Rows often share a text (every step of one problem has the same question): check each text once.
            query = f"SELECT DISTINCT {col} AS text FROM {stage.rows} WHERE {col} IS NOT NULL"
            for batch in stage.con.sql(query).to_arrow_reader(stage.batch_rows):
                grams, counts = text_ngrams(batch.column("text"), self.params.ngram, short_texts=True)
                self.stats["texts_checked"] += batch.num_rows
                pos = np.minimum(np.searchsorted(index, grams), len(index) - 1) if len(index) else np.zeros(len(grams), np.int64)
                hit = index[pos] == grams if len(index) else np.zeros(len(grams), bool)
                text_of = np.repeat(np.arange(batch.num_rows), counts)
                shared = np.bincount(text_of[hit], minlength=batch.num_rows)
                found = np.flatnonzero(shared)
                if not len(found):
                    continue
                first_hit = np.searchsorted(text_of[hit], found)  # text_of is sorted, so this is each text's first hit
                problem = owners[pos[hit][first_hit]]
                reasons = [
                    f"{column}: {n} word {self.params.ngram}-gram(s) shared with eval problem '{ids[i]}'"
                    for n, i in zip(shared[found].tolist(), problem.tolist(), strict=True)
                ]
                hits.append(pa.table({"col": [column] * len(found), "text": batch.column("text").take(found), "reason": reasons}))
        if not hits:
            return no_rows()
        name = stage.register(pa.concat_tables(hits))
        joins = " UNION ALL ".join(
            f"SELECT c._rid, h.reason FROM {stage.rows} c JOIN {name} h ON h.col = {lit(col)} AND c.{ident(col)} = h.text" for col in self.params.columns
        )
        return f"SELECT _rid, first(reason ORDER BY reason) AS reason FROM ({joins}) GROUP BY _rid"
