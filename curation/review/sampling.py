"""Which rows go to review: a reproducible, optionally stratified sample of a run's row ids.

Only the id column (and the stratifying one) is read to draw the sample, and only the sampled rows are
read in full, with a filter, so sampling a large run never loads it whole.
"""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.compute as pc

from judgeforge.errors import UserError
from judgeforge.runs import Run
from judgeforge.schemas.kind import Row


def sample_ids(run: Run, size: int, stratify_by: str | None, seed: int) -> list[str]:
    """A reproducible sample of row ids; with ``stratify_by``, every value keeps its share (at least one)."""
    dataset = run.dataset()
    columns = ["id"] + ([stratify_by] if stratify_by else [])
    if stratify_by and stratify_by not in dataset.schema.names:
        raise UserError(f"--stratify-by '{stratify_by}': no such column in {run.root} (columns: {', '.join(dataset.schema.names)})")
    if stratify_by and isinstance(dataset.schema.field(stratify_by).type, (pa.ListType, pa.StructType)):
        raise UserError(f"--stratify-by '{stratify_by}': pick a column of plain values, not lists or structs")
    table = dataset.to_table(columns=columns)
    ids = table.column("id").to_pylist()
    rng = random.Random(seed)
    if not stratify_by:
        ordered = sorted(ids)
        rng.shuffle(ordered)
        return sorted(ordered[:size])
    groups: dict[str, list[str]] = {}
    for row_id, value in zip(ids, table.column(stratify_by).to_pylist(), strict=True):
        groups.setdefault(str(value), []).append(row_id)
    size = min(size, len(ids))
    keys = sorted(groups)
    quota = {k: len(groups[k]) * size / len(ids) for k in keys}
    take = {k: min(len(groups[k]), max(1, int(quota[k]))) for k in keys}
    while sum(take.values()) > size:  # more strata than the sample: the smallest give way
        smallest = min((k for k in keys if take[k] > 0), key=lambda k: (quota[k], k))
        take[smallest] -= 1
    while sum(take.values()) < size:  # fill up where the share is furthest from its quota
        open_keys = [k for k in keys if take[k] < len(groups[k])]
        take[max(open_keys, key=lambda k: (quota[k] - take[k], k))] += 1
    chosen: list[str] = []
    for k in keys:
        members = sorted(groups[k])
        rng.shuffle(members)
        chosen.extend(members[: take[k]])
    return sorted(chosen)


def read_rows(run: Run, ids: list[str]) -> list[Row]:
    """The full rows with these ids, in that order, read with a filter instead of loading the whole run."""
    table = run.dataset().to_table(filter=pc.field("id").isin(ids))
    by_id = {r["id"]: r for r in table.to_pylist()}
    return [by_id[i] for i in ids]
