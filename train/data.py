"""Built runs as training data: which kinds each recipe trains on, and the TRL view of each kind.

A recipe never reads Parquet itself. It names its method (``sft``, ``dpo``, ``grpo``) and gets back the
records of every ``--data`` run in the format TRL takes, built by the kind's view in ``schemas/`` — or a
one-line error when a run is unfinished, is of a kind the method cannot train on, or mixes formats one
trainer cannot take together. Each run's identity (run id, kind, rows, a hash of its manifest) goes
into the training manifest, so a checkpoint always says which data made it.

Every SFT view says which tokens are targets, as the papers train: a conversational ``prompt`` /
``completion`` (TRL trains on the completion only) or pre-tokenised ``input_ids`` with ``labels`` that
carry -100 where nothing is learnt. None is a chat ``messages`` record, which TRL trains on whole.

An eval split is held out **by problem**: :func:`hold_out` takes the given share of the runs' distinct
``source_id`` values, the ones whose SHA-256 sorts first (the same problems every time, whatever the
seed), so no problem is in both splits — IFT and EFT rows of one problem go to the same side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from judgeforge.builders import diagnose_run
from judgeforge.errors import UserError
from judgeforge.runs import Manifest, open_run
from judgeforge.schemas.kind import Method, NotTrained, View
from judgeforge.schemas.registry import all_kinds, get_kind


def method_for(kind: str) -> Method | None:
    """The first method that trains on ``kind``, if any."""
    trained = get_kind(kind).trained_by()
    return trained[0] if trained else None


@dataclass(frozen=True)
class DataRun:
    """One finished run given with ``--data``."""

    path: Path
    kind: str
    run_id: str
    rows: int
    manifest_sha256: str
    shards: tuple[Path, ...]
    held_out_rows: int | None = None
    """Rows of the run's held-out test split (``--test-fraction``), which training never reads; None: it has none."""

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "path": str(self.path),
            "kind": self.kind,
            "run_id": self.run_id,
            "rows": self.rows,
            "manifest_sha256": self.manifest_sha256,
        }
        if self.held_out_rows is not None:
            described["held_out_test_rows_excluded"] = self.held_out_rows
        return described


def _view(kind: str, method: Method) -> View:
    found = get_kind(kind).view(method)
    if not isinstance(found, View):
        raise UserError(f"kind '{kind}' has no {method} view ({found.reason})")
    return found


def open_data(paths: Sequence[Path], method: Method) -> list[DataRun]:
    """Check every ``--data`` run: finished, of a kind ``method`` trains on, in one record format, and holding rows
    (a run without any is refused, named, with why it is empty, even beside others that have some)."""
    if not paths:
        raise UserError(f"give at least one --data RUN_DIR for 'judgeforge train {method}'")
    runs, manifests = [], []
    for path in paths:
        run = open_run(Path(path))
        kind = run.kind.name
        if run.manifest is None or run.manifest.status != "complete":
            raise UserError(
                f"run dir '{path}' is unfinished (its manifest.json is missing or not 'complete'): finish the build first by re-running its command"
            )
        kind_view = run.kind.view(method)
        if isinstance(kind_view, NotTrained):
            other = method_for(kind)
            hint = f"train it with 'judgeforge train {other}'" if other else "no recipe trains on it"
            trained = ", ".join(k.name for k in all_kinds() if isinstance(k.view(method), View))
            raise UserError(f"run dir '{path}' holds '{kind}' rows: 'judgeforge train {method}' trains on {trained} ({kind_view.reason}); {hint}")
        digest = hashlib.sha256(run.manifest_path.read_bytes()).hexdigest()
        test = run.test_split()  # held out: only RUN/data is trained on
        runs.append(DataRun(run.root, kind, run.manifest.run_id or "", run.num_rows(), digest, run.shards, None if test is None else test.num_rows()))
        manifests.append(run.manifest)
    formats = {_view(r.kind, method).format for r in runs}
    if len(formats) > 1:
        kinds = ", ".join(sorted({r.kind for r in runs}))
        raise UserError(f"--data mixes kinds one {method} trainer cannot take together ({kinds}: formats {', '.join(sorted(formats))}); train them separately")
    for data, manifest in zip(runs, manifests, strict=True):
        if not data.rows:
            why = f" ({reason})" if (reason := empty_reason(manifest)) else ""
            todo = "leave it out of --data or rebuild it" if len(runs) > 1 else "nothing to train on"
            raise UserError(f"--data '{data.path}' holds no rows{why}; {todo}")
    return runs


def empty_reason(manifest: Manifest) -> str:
    """Why a run holds no rows, on one line: its curation's diagnosis, or its build's (the counters that took them)."""
    return "; ".join(diagnose_run(manifest))


def trainer_spec(runs: Sequence[DataRun], method: Method) -> tuple[str, str, str]:
    """The (module, trainer class, TRL config class) the runs' views name (one record format, so one trainer)."""
    specs = {_view(r.kind, method).trainer for r in runs}
    if len(specs) > 1:
        raise UserError(f"--data mixes kinds whose views need different trainers ({', '.join(sorted(f'{m}.{c}' for m, c, _ in specs))}); train them separately")
    (spec,) = specs
    return spec


@dataclass(frozen=True)
class HeldOut:
    """The problems (``source_id`` values) held out of training, and how many there were in all."""

    source_ids: frozenset[str]
    total: int
    fraction: float

    def describe(self) -> dict[str, Any]:
        digest = hashlib.sha256("\n".join(sorted(self.source_ids)).encode()).hexdigest()
        return {"fraction": self.fraction, "problems": len(self.source_ids), "of": self.total, "source_ids_sha256": digest}


def hold_out(runs: Sequence[DataRun], fraction: float) -> HeldOut:
    """``fraction`` of the runs' distinct problems (at least one, never all), chosen by the hash of their ``source_id``."""
    ids = {sid for run in runs for shard in run.shards for sid in pq.read_table(shard, columns=["source_id"]).column("source_id").to_pylist()}
    count = max(1, round(fraction * len(ids)))
    if count >= len(ids):
        raise UserError(f"--eval-fraction {fraction} holds out {count} of the {len(ids)} problems in --data: nothing is left to train on; lower it")
    ranked = sorted(ids, key=lambda sid: hashlib.sha256(sid.encode()).hexdigest())
    return HeldOut(frozenset(ranked[:count]), len(ids), fraction)


def training_dataset(runs: Sequence[DataRun], method: Method, tokenizer: Any, keep: Callable[[str], bool] | None = None, what: str = "--data") -> Any:
    """The TRL records of every run (of its rows whose ``source_id`` passes ``keep``), in ``--data`` order, as one ``datasets.Dataset``.

    One shard at a time goes through Python (the views are functions of rows); its records go straight
    into Arrow, so peak Python memory is one shard's rows, not the whole training set's.
    """
    from datasets import Dataset

    parts = []
    for run in runs:
        for shard in run.shards:
            if not pq.read_metadata(shard).num_rows:
                continue
            rows = [r for r in pq.read_table(shard).to_pylist() if keep is None or keep(r["source_id"])]
            records = _view(run.kind, method).build(rows, tokenizer) if rows else []
            if records:
                parts.append(pa.Table.from_pylist(records))
    if not parts:
        kinds = ", ".join(sorted({r.kind for r in runs}))
        raise UserError(f"{what}: the {method} view of its {kinds} rows gives no examples (e.g. no row has the rejected side a pair needs)")
    # A shard whose optional column is all null gets a null type; promotion unifies it with the others.
    return Dataset(pa.concat_tables(parts, promote_options="default"))
