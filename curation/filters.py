"""The curation filters: small named units, one job each, declared in a YAML spec.

A filter reads the rows still alive (the DuckDB view ``cur``, every column of the kind plus ``_rid``,
a stable row number) and returns one SQL query naming the rows it removes, ``(_rid, reason)``. Filters
that SQL expresses well (length, score gaps, answers, judge consistency, length bias, balancing) are
pure SQL; the ones that need text normalisation or vectorised numpy (exact and MinHash dedup, n-gram
overlap, repetition, tokens, chosen≠rejected) stream Arrow batches out of DuckDB through polars/numpy
and hand their verdicts back as a registered Arrow table — never the whole dataset in Python lists. The pipeline (:mod:`judgeforge.curation.pipeline`) counts rows in and out, keeps a few
example drops, and writes every verdict to the curation log.

Every filter declares the columns it reads and what type they must be; :meth:`Filter.validate` checks
them against the kind's Arrow schema before any data is touched, so a spec that names a column the kind
does not have fails with one clear line. Each filter keeps datatrove-style counters in ``stats`` and may
leave a ``report`` (e.g. the chosen/rejected length distribution) for the funnel.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

from judgeforge.curation.minhash import MinHasher, candidate_pairs, components, similarity
from judgeforge.curation.ngrams import MAX_NGRAM, text_ngrams
from judgeforge.errors import UserError
from judgeforge.sources import SourceConfig

if TYPE_CHECKING:
    import duckdb


class ColumnType(Enum):
    """What a filter needs a column to hold."""

    TEXT = "text"
    TEXT_OR_TEXTS = "text or list of texts"
    TEXTS = "list of texts"
    NUMBER = "number"
    BOOL = "bool"
    SCALAR = "text, number or bool"
    ANY = "any type"
    JUDGMENTS = "list of {first, second, verdict} judgments"


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_texts(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and _is_text(t.value_type)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _is_judgments(t: pa.DataType) -> bool:
    if not pa.types.is_list(t) or not pa.types.is_struct(t.value_type):
        return False
    fields = {t.value_type.field(i).name: t.value_type.field(i).type for i in range(t.value_type.num_fields)}
    return (
        pa.types.is_integer(fields.get("first", pa.null()))
        and pa.types.is_integer(fields.get("second", pa.null()))
        and _is_text(fields.get("verdict", pa.null()))
    )


_CHECKS = {
    ColumnType.TEXT: _is_text,
    ColumnType.TEXT_OR_TEXTS: lambda t: _is_text(t) or _is_texts(t),
    ColumnType.TEXTS: _is_texts,
    ColumnType.NUMBER: _is_number,
    ColumnType.BOOL: pa.types.is_boolean,
    ColumnType.SCALAR: lambda t: _is_text(t) or _is_number(t) or pa.types.is_boolean(t),
    ColumnType.ANY: lambda t: True,
    ColumnType.JUDGMENTS: _is_judgments,
}


@dataclass(frozen=True)
class Column:
    """One column a filter reads: the parameter that names it, the column, and the type it must have."""

    param: str
    name: str
    type: ColumnType


def one_row(con: duckdb.DuckDBPyConnection, query: str, params: list[Any] | None = None) -> tuple[Any, ...]:
    """The single row a query returns (aggregates, counts)."""
    (row,) = con.execute(query, params or []).fetchall()
    return tuple(row)


def ident(column: str) -> str:
    """A column name as a quoted SQL identifier."""
    return '"' + column.replace('"', '""') + '"'


def lit(text: str) -> str:
    """A Python string as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def text_key(column: str, dtype: pa.DataType) -> str:
    """SQL for a column as one comparable text: strings trimmed, list items trimmed and joined by a
    separator that is not whitespace, anything else cast to text. :func:`ngrams.normalise` does the rest."""
    col = ident(column)
    if _is_text(dtype):
        return f"trim({col})"
    if _is_texts(dtype):
        return f"array_to_string(list_transform({col}, lambda s: trim(s)), chr(30))"
    return f"CAST({col} AS VARCHAR)"


def joined_text(column: str, dtype: pa.DataType) -> str:
    """SQL for a text or list-of-texts column as one text (list items joined by blank lines)."""
    col = ident(column)
    return f"array_to_string({col}, chr(10) || chr(10))" if _is_texts(dtype) else col


@dataclass
class Stage:
    """What a filter sees: the DuckDB connection, the view of surviving rows, and the kind's schema."""

    con: duckdb.DuckDBPyConnection
    schema: pa.Schema
    batch_rows: int = 20_000
    rows: str = "cur"
    _tables: Iterator[int] = field(default_factory=itertools.count)

    def batches(self, select: str, where: str = "") -> Iterator[pa.RecordBatch]:
        """Surviving rows as Arrow batches of ``_rid`` plus the ``select`` expressions."""
        query = f"SELECT _rid, {select} FROM {self.rows}" + (f" WHERE {where}" if where else "")
        yield from self.con.sql(query).to_arrow_reader(self.batch_rows)

    def register(self, table: pa.Table) -> str:
        """Make an Arrow table queryable under a fresh name."""
        name = f"_t{next(self._tables)}"
        self.con.register(name, table)
        return name

    def dtype(self, column: str) -> pa.DataType:
        return self.schema.field(column).type


class FilterParams(BaseModel):
    """Base of every filter's parameters: unknown keys in the spec are errors."""

    model_config = ConfigDict(extra="forbid")


class Filter(ABC):
    """One named curation step. Subclasses set ``type_name``, ``summary`` and ``Params``."""

    type_name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[FilterParams]]

    def __init__(self, name: str, params: FilterParams) -> None:
        self.name = name
        self.params = params
        self.stats: Counter[str] = Counter()
        self.report: dict[str, Any] = {}

    @abstractmethod
    def columns(self) -> list[Column]:
        """Every column this filter reads."""

    @abstractmethod
    def select(self, stage: Stage) -> str:
        """SQL selecting ``(_rid, reason)`` for the surviving rows this filter removes (or flags)."""

    def prepare(self) -> None:
        """Load what the filter needs besides the rows (an eval set, a tokenizer) before any row is read,
        so a bad eval source or tokenizer fails at once, not after the filters before it have run."""

    def validate(self, schema: pa.Schema, kind: str) -> None:
        """Raise a one-line error unless every column exists in the kind's schema with a usable type."""
        for col in self.columns():
            index = schema.get_field_index(col.name)
            if index < 0:
                raise UserError(
                    f"filter '{self.name}': {col.param} names column '{col.name}', which kind '{kind}' does not have "
                    f"(its columns: {', '.join(schema.names)})"
                )
            dtype = schema.field(index).type
            if not _CHECKS[col.type](dtype):
                raise UserError(f"filter '{self.name}': {col.param} column '{col.name}' of kind '{kind}' is {dtype}, expected {col.type.value}")


# --- duplicates ------------------------------------------------------------------------------------


class ExactDedupParams(FilterParams):
    columns: list[str] = Field(min_length=1, description="columns that together define a row of this kind")
    normalize: bool = Field(True, description="compare texts case-insensitively with runs of whitespace collapsed")


class ExactDedup(Filter):
    """Rows whose defining columns are equal (after normalisation) are one row: keep the first."""

    type_name = "exact_dedup"
    summary = "drop rows whose defining columns repeat an earlier row (normalised text hash)"
    Params = ExactDedupParams
    params: ExactDedupParams

    def columns(self) -> list[Column]:
        return [Column("columns", c, ColumnType.ANY) for c in self.params.columns]

    def select(self, stage: Stage) -> str:
        from judgeforge.curation.ngrams import text_hashes

        parts = ", ".join(f"coalesce({text_key(c, stage.dtype(c))}, chr(2))" for c in self.params.columns)
        keys = []
        for batch in stage.batches(f"concat_ws(chr(31), {parts}) AS key"):
            h1, h2 = text_hashes(batch.column("key"), self.params.normalize)
            keys.append(pa.table({"_rid": batch.column("_rid"), "h1": h1, "h2": h2}))
        if not keys:
            return _no_rows()
        name = stage.register(pa.concat_tables(keys))
        return f"""
            WITH k AS (SELECT h1, h2, min(_rid) AS keep FROM {name} GROUP BY h1, h2 HAVING count(*) > 1)
            SELECT t._rid, 'exact duplicate of ' || c.id AS reason FROM {name} t JOIN k USING (h1, h2) JOIN {stage.rows} c ON c._rid = k.keep
            WHERE t._rid <> k.keep
        """


class NearDedupParams(FilterParams):
    columns: list[str] = Field(min_length=1, description="text (or list-of-text) columns joined into the document")
    same: list[str] = Field([], description="columns two rows must share exactly to be compared at all")
    ngram: int = Field(5, ge=1, le=MAX_NGRAM, description="word n-gram size (datatrove: 5)")
    bands: int = Field(14, ge=1, description="LSH bands (datatrove: 14)")
    rows_per_band: int = Field(8, ge=1, description="MinHash values per band (datatrove: 8)")
    min_similarity: float | None = Field(
        None, ge=0.0, le=1.0, description="also require this estimated Jaccard over the full signature (none: pure LSH, as datatrove)"
    )
    seed: int = Field(1, description="seed of the MinHash permutations")


class NearDedup(Filter):
    """MinHash + LSH over word n-grams; keep the first row of each connected component of candidates."""

    type_name = "near_dedup"
    summary = "MinHash + LSH near-duplicates (word 5-grams, 14x8), one row kept per cluster"
    Params = NearDedupParams
    params: NearDedupParams

    def columns(self) -> list[Column]:
        return [Column("columns", c, ColumnType.TEXT_OR_TEXTS) for c in self.params.columns] + [
            Column("same", c, ColumnType.ANY) for c in self.params.same
        ]

    def select(self, stage: Stage) -> str:
        p = self.params
        hasher = MinHasher(p.bands, p.rows_per_band, p.seed)
        text = "concat_ws(chr(10), " + ", ".join(joined_text(c, stage.dtype(c)) for c in p.columns) + ")"
        same = f"hash({', '.join(ident(c) for c in p.same)})" if p.same else "0::UBIGINT"
        rids, keys, sigs = [], [], []
        for batch in stage.batches(f"{text} AS text, {same} AS same"):
            grams, counts = text_ngrams(batch.column("text"), p.ngram, short_texts=True)
            has = counts > 0
            self.stats["documents"] += batch.num_rows
            self.stats["empty_documents"] += int((~has).sum())
            self.stats["ngrams"] += len(grams)
            sig = hasher.signatures(grams, counts[has])
            rids.append(batch.column("_rid").to_numpy()[has])
            keys.append(hasher.band_keys(sig, batch.column("same").to_numpy().astype(np.uint64)[has]))
            if p.min_similarity is not None:
                sigs.append(sig)
        if not rids:
            return _no_rows()
        rid = np.concatenate(rids)
        order = np.argsort(rid)  # node i = i-th smallest _rid, so a component's root is its first row
        rid = rid[order]
        u, v = candidate_pairs(np.concatenate(keys)[order])
        self.stats["candidate_pairs"] += len(u)
        if p.min_similarity is not None and len(u):
            sim = similarity(np.concatenate(sigs)[order], u, v)
            u, v = u[sim >= p.min_similarity], v[sim >= p.min_similarity]
            self.stats["verified_pairs"] += len(u)
        root = components(len(rid), u, v)
        dup = root != np.arange(len(rid))
        self.stats["clusters"] += len(np.unique(root[dup]))
        drops = pa.table({"_rid": rid[dup], "keep": rid[root[dup]]})
        name = stage.register(drops)
        return f"SELECT d._rid, 'near duplicate of ' || k.id AS reason FROM {name} d JOIN {stage.rows} k ON k._rid = d.keep"


def _no_rows() -> str:
    return "SELECT NULL::BIGINT AS _rid, NULL::VARCHAR AS reason WHERE false"


# --- contamination ---------------------------------------------------------------------------------


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
            return _no_rows()
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
            return _no_rows()
        name = stage.register(pa.concat_tables(hits))
        joins = " UNION ALL ".join(
            f"SELECT c._rid, h.reason FROM {stage.rows} c JOIN {name} h ON h.col = {lit(col)} AND c.{ident(col)} = h.text"
            for col in self.params.columns
        )
        return f"SELECT _rid, first(reason ORDER BY reason) AS reason FROM ({joins}) GROUP BY _rid"


# --- length and repetition -------------------------------------------------------------------------


class LengthParams(FilterParams):
    columns: list[str] = Field(min_length=1, description="text columns whose length is bounded (a null text has length 0)")
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
        return [Column("columns", c, ColumnType.TEXT) for c in self.params.columns]

    def _char_checks(self) -> list[tuple[str, str]]:
        """``(failing condition, reason)`` SQL pairs, one per column and character bound."""
        p = self.params
        checks = []
        for column in p.columns:
            n = f"coalesce(length({ident(column)}), 0)"
            if p.min_chars is not None:
                checks.append((f"{n} < {p.min_chars}", f"{lit(column + ': ')} || {n} || ' chars < min {p.min_chars}'"))
            if p.max_chars is not None:
                checks.append((f"{n} > {p.max_chars}", f"{lit(column + ': ')} || {n} || ' chars > max {p.max_chars}'"))
        return checks

    def select(self, stage: Stage) -> str:
        p = self.params
        checks = self._char_checks()
        queries = []
        if checks:
            cases = " ".join(f"WHEN {cond} THEN {reason}" for cond, reason in checks)
            queries.append(f"SELECT _rid, CASE {cases} END AS reason FROM {stage.rows} WHERE {' OR '.join(c for c, _ in checks)}")
        if p.min_tokens is not None or p.max_tokens is not None:
            # Only rows within the character bounds are tokenised: tokenising is the slow part.
            within = f"NOT ({' OR '.join(c for c, _ in checks)})" if checks else ""
            queries.append(f"SELECT _rid, reason FROM {self._token_drops(stage, within)}")
        return " UNION ALL ".join(queries)

    _tokenizer: Any = None

    def prepare(self) -> None:
        if self.params.min_tokens is not None or self.params.max_tokens is not None:
            from judgeforge.models import load_tokenizer, resolve_model

            self._tokenizer = load_tokenizer(resolve_model(self.params.tokenizer))

    def _token_drops(self, stage: Stage, where: str) -> str:
        p = self.params
        tokenizer = self._tokenizer
        rids: list[np.ndarray] = []
        reasons: list[str] = []
        select = ", ".join(f"coalesce({ident(c)}, '') AS {ident(c)}" for c in p.columns)
        for batch in stage.batches(select, where):
            bad = np.zeros(batch.num_rows, dtype=bool)
            why = np.full(batch.num_rows, "", dtype=object)
            for column in p.columns:
                ids = tokenizer(batch.column(column).to_pylist(), add_special_tokens=False, return_attention_mask=False)["input_ids"]
                n = np.fromiter((len(x) for x in ids), dtype=np.int64, count=batch.num_rows)
                self.stats["texts_tokenized"] += batch.num_rows
                for bound, fails, sign in ((p.min_tokens, lambda n, b: n < b, "<"), (p.max_tokens, lambda n, b: n > b, ">")):
                    if bound is None:
                        continue
                    new = fails(n, bound) & ~bad
                    for i in np.flatnonzero(new):
                        why[i] = f"{column}: {n[i]} tokens {sign} {'min' if sign == '<' else 'max'} {bound}"
                    bad |= new
            rids.append(batch.column("_rid").to_numpy()[bad])
            reasons.extend(why[bad].tolist())
        return stage.register(pa.table({"_rid": np.concatenate(rids) if rids else np.empty(0, np.int64), "reason": pa.array(reasons, pa.string())}))


class RepetitionParams(FilterParams):
    columns: list[str] = Field(min_length=1, description="text columns checked, each on its own")
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
        return [Column("columns", c, ColumnType.TEXT) for c in self.params.columns]

    def select(self, stage: Stage) -> str:
        p = self.params
        rids: list[np.ndarray] = []
        reasons: list[str] = []
        for batch in stage.batches(", ".join(ident(c) for c in p.columns)):
            bad = np.zeros(batch.num_rows, dtype=bool)
            why = np.full(batch.num_rows, "", dtype=object)
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
                new = judged & (fraction > p.max_duplicate_fraction) & ~bad
                for i in np.flatnonzero(new):
                    why[i] = f"{column}: {fraction[i]:.0%} of word {p.ngram}-grams repeated (max {p.max_duplicate_fraction:.0%})"
                bad |= new
            rids.append(batch.column("_rid").to_numpy()[bad])
            reasons.extend(why[bad].tolist())
        if not rids:
            return _no_rows()
        name = stage.register(pa.table({"_rid": np.concatenate(rids), "reason": pa.array(reasons, pa.string())}))
        return f"SELECT _rid, reason FROM {name}"


# --- answers ---------------------------------------------------------------------------------------


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
            f"SELECT _rid, 'no recorded answer' AS reason FROM {stage.rows} WHERE {gold} IS NOT NULL AND {answer} IS NULL"
            if p.drop_unanswered
            else _no_rows()
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


# --- judge data ------------------------------------------------------------------------------------


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
        from judgeforge.curation.ngrams import normalise

        p = self.params
        same = []
        select = f"{text_key(p.chosen, stage.dtype(p.chosen))} AS c, {text_key(p.rejected, stage.dtype(p.rejected))} AS r"
        for batch in stage.batches(select):
            c, r = batch.column("c"), batch.column("r")
            equal = (normalise(c) == normalise(r)).to_arrow() if p.normalize else pc.equal(c, r)
            mask = pc.or_(pc.fill_null(equal, False), pc.and_(pc.is_null(c), pc.is_null(r)))
            same.append(pc.filter(batch.column("_rid"), mask))
        if not same:
            return _no_rows()
        name = stage.register(pa.table({"_rid": pa.concat_arrays(same)}))
        return f"SELECT _rid, 'chosen equals rejected' AS reason FROM {name}"


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

    def columns(self) -> list[Column]:
        return [Column("chosen", self.params.chosen, ColumnType.NUMBER), Column("rejected", self.params.rejected, ColumnType.NUMBER)]

    def select(self, stage: Stage) -> str:
        gap = f"({ident(self.params.chosen)} - {ident(self.params.rejected)})"
        return (
            f"SELECT _rid, coalesce('score gap ' || round({gap}, 3) || ' < min {self.params.min_gap:g}', 'missing score') AS reason "
            f"FROM {stage.rows} WHERE {gap} IS NULL OR {gap} < {self.params.min_gap!r}"
        )


class PositionSwapParams(FilterParams):
    judgments: str = Field("judgments", description="list column of {first, second, verdict} ordered comparisons")
    pairs: Literal["chosen_rejected", "all"] = Field("chosen_rejected", description="check only the chosen-vs-rejected comparison, or every pair judged in both orders")
    candidates: str = Field("candidates", description="list column of candidate texts that first/second index (for pairs: chosen_rejected)")
    chosen: str = Field("chosen", description="column of the chosen text (for pairs: chosen_rejected)")
    rejected: str = Field("rejected", description="column of the rejected text (for pairs: chosen_rejected)")
    min_consistency: float = Field(1.0, ge=0.0, le=1.0, description="smallest share of both-order pairs judged consistently (chosen_rejected: both orders prefer chosen; all: both name the same winner)")


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

    def columns(self) -> list[Column]:
        p = self.params
        cols = [Column("judgments", p.judgments, ColumnType.JUDGMENTS)]
        if p.pairs == "chosen_rejected":
            cols += [Column("candidates", p.candidates, ColumnType.TEXTS), Column("chosen", p.chosen, ColumnType.TEXT), Column("rejected", p.rejected, ColumnType.TEXT)]
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
    max_chosen_excess: int | None = Field(None, ge=0, description="drop pairs whose chosen text is longer than rejected by more than this many characters (WildBench: 50); none: report only")


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
            return _no_rows()
        return f"SELECT _rid, 'chosen is ' || ({c} - {r}) || ' chars longer than rejected (max {cap})' AS reason FROM {stage.rows} WHERE {c} - {r} > {cap}"


# --- balance ---------------------------------------------------------------------------------------


class LabelBalanceParams(FilterParams):
    column: str = Field(description="the label column (Yes/No for R-PRM, A/B for judges, difficulty for S2R)")
    labels: list[str] | None = Field(None, description="the labels to balance; rows with other labels are dropped, and a group missing one keeps nothing (default: the labels present)")
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


FILTERS: dict[str, type[Filter]] = {
    f.type_name: f
    for f in (
        ExactDedup, NearDedup, Decontaminate, Length, Repetition, AnswerCheck,
        ChosenNotRejected, ScoreGap, PositionSwap, LengthBias, LabelBalance,
    )
}
