"""Text-quality filters: length bounds (characters, tokens) and Gopher-style repetition.

A list-of-texts column (a solution's steps) counts as its items joined by blank lines, as the step
format writes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from judgeforge.curation.filters.base import Column, ColumnType, Filter, FilterParams, Stage, ident, joined_text, lit
from judgeforge.curation.ngrams import MAX_NGRAM, text_ngrams


class LengthParams(FilterParams):
    columns: list[str] = Field(min_length=1, description="text (or list-of-text) columns whose length is bounded (a null text has length 0)")
    min_chars: int | None = Field(None, ge=0, description="minimum characters")
    max_chars: int | None = Field(None, ge=0, description="maximum characters")
    min_tokens: int | None = Field(None, ge=0, description="minimum tokens of --tokenizer")
    max_tokens: int | None = Field(None, ge=0, description="maximum tokens of --tokenizer")
    tokenizer: str = Field("smollm2", description="tokenizer for token bounds: 'smollm2', a local checkpoint or a Hub id")

    @model_validator(mode="after")
    def _bounds(self) -> LengthParams:
        if all(b is None for b in (self.min_chars, self.max_chars, self.min_tokens, self.max_tokens)):
            raise ValueError("give at least one of min_chars, max_chars, min_tokens, max_tokens")
        for low, high in (("min_chars", "max_chars"), ("min_tokens", "max_tokens")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{low} ({lo}) is above {high} ({hi})")
        return self


class Length(Filter):
    """Bounds on the length of texts, in characters (SQL) and in tokens of a given tokenizer."""

    type_name = "length"
    summary = "length bounds in characters and in tokens of a given tokenizer"
    Params = LengthParams
    params: LengthParams

    def columns(self) -> list[Column]:
        return [Column("columns", c, ColumnType.TEXT_OR_TEXTS) for c in self.params.columns]

    def _char_checks(self, stage: Stage) -> list[tuple[str, str]]:
        """``(failing condition, reason)`` SQL pairs, one per column and character bound."""
        p = self.params
        checks = []
        for column in p.columns:
            n = f"coalesce(length({joined_text(column, stage.dtype(column))}), 0)"
            if p.min_chars is not None:
                checks.append((f"{n} < {p.min_chars}", f"{lit(column + ': ')} || {n} || ' chars < min {p.min_chars}'"))
            if p.max_chars is not None:
                checks.append((f"{n} > {p.max_chars}", f"{lit(column + ': ')} || {n} || ' chars > max {p.max_chars}'"))
        return checks

    def select(self, stage: Stage) -> str:
        p = self.params
        checks = self._char_checks(stage)
        queries = []
        if checks:
            cases = " ".join(f"WHEN {cond} THEN {reason}" for cond, reason in checks)
            queries.append(f"SELECT _rid, CASE {cases} END AS reason FROM {stage.rows} WHERE {' OR '.join(c for c, _ in checks)}")
        if p.min_tokens is not None or p.max_tokens is not None:
            # Only rows within the character bounds are tokenised: tokenising is the slow part.
            within = f"NOT ({' OR '.join(c for c, _ in checks)})" if checks else ""
            select = ", ".join(f"coalesce({joined_text(c, stage.dtype(c))}, '') AS {ident(c)}" for c in p.columns)
            queries.append(self.batch_drops(stage, select, self._token_reasons, within))
        return " UNION ALL ".join(queries)

    _tokenizer: Any = None

    def prepare(self) -> None:
        if self.params.min_tokens is not None or self.params.max_tokens is not None:
            from judgeforge.models import load_tokenizer, resolve_model

            self._tokenizer = load_tokenizer(resolve_model(self.params.tokenizer))

    def _token_reasons(self, batch: pa.RecordBatch) -> list[str | None]:
        p = self.params
        why: list[str | None] = [None] * batch.num_rows
        for column in p.columns:
            ids = self._tokenizer(batch.column(column).to_pylist(), add_special_tokens=False, return_attention_mask=False)["input_ids"]
            self.stats["texts_tokenized"] += batch.num_rows
            for i, n in enumerate(len(x) for x in ids):
                if why[i] is not None:
                    continue
                if p.min_tokens is not None and n < p.min_tokens:
                    why[i] = f"{column}: {n} tokens < min {p.min_tokens}"
                elif p.max_tokens is not None and n > p.max_tokens:
                    why[i] = f"{column}: {n} tokens > max {p.max_tokens}"
        return why


class RepetitionParams(FilterParams):
    columns: list[str] = Field(min_length=1, description="text (or list-of-text) columns checked, each on its own")
    ngram: int = Field(3, ge=1, le=MAX_NGRAM, description="word n-gram size")
    max_duplicate_fraction: float = Field(0.3, ge=0.0, le=1.0, description="highest allowed share of n-grams that repeat an earlier n-gram of the same text")
    min_ngrams: int = Field(5, ge=1, description="texts with fewer n-grams are not judged")


class Repetition(Filter):
    """Gopher-style repetition: the share of a text's word n-grams that repeat an earlier one.

    DuckDB's regex has no back-references, so repetition is measured by counting n-grams, not matched.
    """

    type_name = "repetition"
    summary = "Gopher-style repetition: share of duplicated word n-grams in a text"
    Params = RepetitionParams
    params: RepetitionParams

    def columns(self) -> list[Column]:
        return [Column("columns", c, ColumnType.TEXT_OR_TEXTS) for c in self.params.columns]

    def select(self, stage: Stage) -> str:
        select = ", ".join(f"{joined_text(c, stage.dtype(c))} AS {ident(c)}" for c in self.params.columns)
        return self.batch_drops(stage, select, self._reasons)

    def _reasons(self, batch: pa.RecordBatch) -> list[str | None]:
        p = self.params
        why: list[str | None] = [None] * batch.num_rows
        for column in p.columns:
            grams, counts = text_ngrams(batch.column(column), p.ngram, short_texts=False)
            text_of = np.repeat(np.arange(batch.num_rows, dtype=np.uint64), counts)
            keys = np.sort((text_of << np.uint64(40)) | (grams >> np.uint64(24)))
            repeat = np.zeros(len(keys), dtype=bool)
            repeat[1:] = keys[1:] == keys[:-1]
            repeats = np.bincount((keys[repeat] >> np.uint64(40)).astype(np.int64), minlength=batch.num_rows)
            fraction = repeats / np.maximum(counts, 1)
            judged = counts >= p.min_ngrams
            self.stats["texts_judged"] += int(judged.sum())
            for i in np.flatnonzero(judged & (fraction > p.max_duplicate_fraction)):
                if why[i] is None:
                    why[i] = f"{column}: {fraction[i]:.0%} of word {p.ngram}-grams repeated (max {p.max_duplicate_fraction:.0%})"
        return why
