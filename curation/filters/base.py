"""The filter framework: what every curation filter is, what it sees, and the SQL helpers they share.

A filter reads the rows still alive (the DuckDB view ``cur``, every column of the kind plus ``_rid``,
a stable row number) and returns one SQL query naming the rows it removes, ``(_rid, reason)``. Filters
that SQL expresses well are pure SQL; the ones that need Python or vectorised numpy judge rows in Arrow
batches through :meth:`Filter.batch_drops`, which owns the iteration and hands the verdicts back as a
registered Arrow table — never the whole dataset in Python lists. The pipeline
(:mod:`judgeforge.curation.pipeline`) counts rows in and out, keeps a few example drops, and writes
every verdict to the curation log.

Every filter declares the columns it reads and what type they must be; :meth:`Filter.validate` checks
them against the kind's Arrow schema before any data is touched, so a spec that names a column the kind
does not have fails with one clear line. Each filter keeps datatrove-style counters in ``stats`` and may
leave a ``report`` (e.g. the chosen/rejected length distribution) for the funnel. When a curation keeps
no rows, or fewer than a tenth of them, each filter that removed the most explains its drops from its own
parameters and report and says what to change (:meth:`Filter.explain`).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from judgeforge.errors import UserError
from judgeforge.runs import FunnelStep

if TYPE_CHECKING:
    import duckdb


class ColumnType(Enum):
    """What a filter needs a column to hold."""

    TEXT = "text"
    TEXT_OR_TEXTS = "text or list of texts"
    TEXTS = "list of texts"
    NUMBER = "number"
    BOOL = "bool"
    BOOLS = "list of bools"
    SCALAR = "text, number or bool"
    ANY = "any type"
    JUDGMENTS = "list of {first, second, verdict} judgments"


def is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def is_texts(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and is_text(t.value_type)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _is_judgments(t: pa.DataType) -> bool:
    if not pa.types.is_list(t) or not pa.types.is_struct(t.value_type):
        return False
    fields = {t.value_type.field(i).name: t.value_type.field(i).type for i in range(t.value_type.num_fields)}
    return (
        pa.types.is_integer(fields.get("first", pa.null()))
        and pa.types.is_integer(fields.get("second", pa.null()))
        and is_text(fields.get("verdict", pa.null()))
    )


_CHECKS = {
    ColumnType.TEXT: is_text,
    ColumnType.TEXT_OR_TEXTS: lambda t: is_text(t) or is_texts(t),
    ColumnType.TEXTS: is_texts,
    ColumnType.NUMBER: _is_number,
    ColumnType.BOOL: pa.types.is_boolean,
    ColumnType.BOOLS: lambda t: pa.types.is_list(t) and pa.types.is_boolean(t.value_type),
    ColumnType.SCALAR: lambda t: is_text(t) or _is_number(t) or pa.types.is_boolean(t),
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
    if is_text(dtype):
        return f"trim({col})"
    if is_texts(dtype):
        return f"array_to_string(list_transform({col}, lambda s: trim(s)), chr(30))"
    return f"CAST({col} AS VARCHAR)"


def joined_text(column: str, dtype: pa.DataType) -> str:
    """SQL for a text or list-of-texts column as one text (list items joined by blank lines)."""
    col = ident(column)
    return f"array_to_string({col}, chr(10) || chr(10))" if is_texts(dtype) else col


def no_rows() -> str:
    """A query selecting no ``(_rid, reason)`` rows: what a filter that removes nothing returns."""
    return "SELECT NULL::BIGINT AS _rid, NULL::VARCHAR AS reason WHERE false"


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


Judge = Callable[[pa.RecordBatch], Sequence[str | None]]
"""One reason per row of a batch: why the row is removed, or None to keep it."""


class Filter(ABC):
    """One named curation step. Subclasses set ``type_name``, ``summary`` and ``Params``.

    ``judges``: the filter checks a judge's verdicts (score gaps, presentation orders), so a curation it
    empties is explained with how the input's verdicts came about (all forced, one position named).
    """

    type_name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[FilterParams]]
    judges: ClassVar[bool] = False

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

    def explain(self, step: FunnelStep) -> tuple[str, str]:
        """What this filter removed, in a few words read off its parameters, report and example drops, and what in
        the spec would keep more. Default: its first example's reason, and loosening its parameters."""
        example = step.examples[0].get("reason") if step.examples else None
        return (
            f"e.g. {example}" if example else ""
        ), f"loosen '{self.name}' in a copy of the spec (its parameters: judgeforge curate --help) and pass it with --spec"

    def prepare(self) -> None:  # noqa: B027 (most filters need nothing besides the rows)
        """Load what the filter needs besides the rows (an eval set, a tokenizer) before any row is read,
        so a bad eval source or tokenizer fails at once, not after the filters before it have run."""

    def validate(self, schema: pa.Schema, kind: str) -> None:
        """Raise a one-line error unless every column exists in the kind's schema with a usable type."""
        for col in self.columns():
            index = schema.get_field_index(col.name)
            if index < 0:
                raise UserError(
                    f"filter '{self.name}': {col.param} names column '{col.name}', which kind '{kind}' does not have (its columns: {', '.join(schema.names)})"
                )
            dtype = schema.field(index).type
            if not _CHECKS[col.type](dtype):
                raise UserError(f"filter '{self.name}': {col.param} column '{col.name}' of kind '{kind}' is {dtype}, expected {col.type.value}")

    def batch_drops(self, stage: Stage, select: str, judge: Judge, where: str = "") -> str:
        """SQL for the rows ``judge`` removes: the surviving rows (those matching ``where``) stream by in
        Arrow batches of ``_rid`` plus the ``select`` expressions, ``judge`` gives each row a reason or
        None, and the removed rows come back to DuckDB as one registered Arrow table."""
        rids: list[np.ndarray] = []
        reasons: list[str] = []
        for batch in stage.batches(select, where):
            why = judge(batch)
            bad = np.fromiter((r is not None for r in why), dtype=bool, count=batch.num_rows)
            rids.append(batch.column("_rid").to_numpy()[bad])
            reasons.extend(r for r in why if r is not None)
        if not rids:
            return no_rows()
        name = stage.register(pa.table({"_rid": np.concatenate(rids), "reason": pa.array(reasons, pa.string())}))
        return f"SELECT _rid, reason FROM {name}"
