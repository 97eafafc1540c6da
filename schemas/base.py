"""Typed rows and their Arrow schemas: the contract between builders, curation, review and training.

Every dataset kind is one pydantic row model. Writers validate rows through it and derive the Parquet
schema from it (so a shard's columns are exactly the model's fields), and stamp the kind into the
Parquet metadata; readers refuse a file stamped with another kind, or none, with a clear error.
"""

from __future__ import annotations

import types
import typing
from typing import Any, ClassVar, Union, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

KIND_KEY = b"judgeforge.kind"
SCHEMA_VERSION_KEY = b"judgeforge.schema_version"


class RowMeta(BaseModel):
    """Where a row came from."""

    builder: str
    builder_version: str
    run_id: str
    model: str


class BaseRow(BaseModel):
    """Fields every row of every kind carries."""

    model_config = ConfigDict(extra="forbid")

    kind: ClassVar[str] = ""
    schema_version: ClassVar[str] = "1"

    id: str
    source_id: str
    meta: RowMeta


_SCALARS: dict[type, pa.DataType] = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def _arrow_type(annotation: Any) -> pa.DataType:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"unsupported union {annotation}")
        return _arrow_type(inner[0])
    if origin is typing.Literal:
        return _arrow_type(type(get_args(annotation)[0]))
    if origin is list:
        return pa.list_(_arrow_type(get_args(annotation)[0]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return arrow_struct(annotation)
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    raise TypeError(f"no Arrow type for {annotation}")


def arrow_struct(model: type[BaseModel]) -> pa.StructType:
    return pa.struct([pa.field(n, _arrow_type(f.annotation)) for n, f in model.model_fields.items()])


def arrow_schema(row_model: type[BaseRow]) -> pa.Schema:
    """The Parquet schema of a kind, with the kind stamped into its metadata."""
    fields = [pa.field(n, _arrow_type(f.annotation)) for n, f in row_model.model_fields.items()]
    return pa.schema(fields, metadata={KIND_KEY: row_model.kind.encode(), SCHEMA_VERSION_KEY: row_model.schema_version.encode()})


def rows_to_table(row_model: type[BaseRow], rows: list[BaseRow]) -> pa.Table:
    """Validate rows against their model and turn them into an Arrow table with the kind's schema."""
    for row in rows:
        if not isinstance(row, row_model):
            raise TypeError(f"expected {row_model.__name__}, got {type(row).__name__}")
    schema = arrow_schema(row_model)
    return pa.Table.from_pylist([r.model_dump() for r in rows], schema=schema)
