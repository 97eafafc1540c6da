"""The answers file, ``RUN_DIR/review.parquet``: what ``review pull`` writes and ``review apply`` reads.

One row per reviewer and record: the row id, the reviewer, the response status (submitted or
discarded), per question the answer and the model's own answer (the suggestion it was shown), and the
free-text note. Its Parquet metadata says where the answers came from (:class:`ReviewSource`), so
``apply`` refuses answers about another kind or another set of questions.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from judgeforge.errors import UserError
from judgeforge.files import atomic_write
from judgeforge.runs import Run
from judgeforge.schemas.kind import NOTE_QUESTION, ReviewSpec, Row

SIDECAR = "review.parquet"
REVIEW_KEY = b"judgeforge.review"
DISCARDED = "discarded"
SUBMITTED = "submitted"


class ReviewSource(BaseModel):
    """Where a sidecar's answers came from; stored in its Parquet metadata."""

    kind: str
    run_id: str | None
    dataset: str
    workspace: str
    api_url: str
    questions: list[str]
    records: int
    records_completed: int
    pulled_at: str


def model_column(question: str) -> str:
    """The sidecar column holding the model's own answer to ``question``."""
    return f"model_{question}"


def _schema(spec: ReviewSpec, source: ReviewSource) -> pa.Schema:
    columns = [pa.field("row_id", pa.string()), pa.field("reviewer", pa.string()), pa.field("status", pa.string())]
    for q in spec.questions:
        columns += [pa.field(q.name, pa.string()), pa.field(model_column(q.name), pa.string())]
    columns.append(pa.field(NOTE_QUESTION, pa.string()))
    return pa.schema(columns, metadata={REVIEW_KEY: source.model_dump_json().encode()})


def write_sidecar(run: Run, answers: list[Row], source: ReviewSource) -> Path:
    """Write the answers (sorted by row and reviewer) to ``RUN_DIR/review.parquet`` atomically."""
    ordered = sorted(answers, key=lambda a: (a["row_id"], a["reviewer"]))
    table = pa.Table.from_pylist(ordered, schema=_schema(run.kind.review, source))
    return atomic_write(run.root / SIDECAR, lambda tmp: pq.write_table(table, tmp))


def read_sidecar(run: Run) -> tuple[list[Row], ReviewSource]:
    """The answers pulled for ``run`` and where they came from; one-line errors for a missing or foreign file."""
    path = run.root / SIDECAR
    if not path.is_file():
        raise UserError(f"no review answers at {path}: run `judgeforge review pull {run.root} --dataset NAME` first")
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(REVIEW_KEY)
    if raw is None:
        raise UserError(f"{path}: not a judgeforge review file (no '{REVIEW_KEY.decode()}' in its metadata)")
    source = ReviewSource.model_validate_json(raw)
    if source.kind != run.kind.name:
        raise UserError(f"{path}: holds answers about '{source.kind}' rows, but {run.root} holds '{run.kind.name}' rows")
    return table.to_pylist(), source
