"""Built runs as training data: which kinds each recipe trains on, and the TRL view of each kind.

A recipe never reads Parquet itself. It names its method (``sft``, ``dpo``, ``grpo``) and gets back the
records of every ``--data`` run in the format TRL takes, built by the kind's view in ``schemas/`` — or a
one-line error when a run is unfinished, is of a kind the method cannot train on, or mixes formats one
trainer cannot take together. Each run's identity (run id, kind, rows, a hash of its manifest) goes
into the training manifest, so a checkpoint always says which data made it.

Every SFT view says which tokens are targets, as the papers train: a conversational ``prompt`` /
``completion`` (TRL trains on the completion only) or pre-tokenised ``input_ids`` with ``labels`` that
carry -100 where nothing is learnt. None is a chat ``messages`` record, which TRL trains on whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from judgeforge.errors import UserError
from judgeforge.schemas import eft, ift, rprm, s2r, self_taught, step_prefs

Method = Literal["sft", "dpo", "grpo"]


@dataclass(frozen=True)
class View:
    """How one kind trains under one method: its TRL records and the record format's name."""

    build: Callable[[list[dict[str, Any]], Any], list[dict[str, Any]]]
    format: str


def _no_tokenizer(view: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> Callable[[list[dict[str, Any]], Any], list[dict[str, Any]]]:
    return lambda rows, tokenizer: view(rows)


VIEWS: dict[Method, dict[str, View]] = {
    "sft": {
        "ift": View(_no_tokenizer(ift.sft_view), "prompt+completion"),
        "eft": View(_no_tokenizer(eft.sft_view), "prompt+completion"),
        "rprm_sft": View(_no_tokenizer(rprm.sft_view), "prompt+completion"),
        "ste_judgments": View(_no_tokenizer(self_taught.sft_view), "prompt+completion"),
        "s2r_trajectories": View(s2r.sft_view, "input_ids+labels"),
    },
    "dpo": {
        "step_prefs": View(step_prefs.dpo_view, "stepwise"),
        "rprm_prefs": View(_no_tokenizer(rprm.dpo_view), "conversational"),
    },
    "grpo": {
        "s2r_rl_prompts": View(_no_tokenizer(s2r.grpo_view), "prompt+reward columns"),
    },
}


def method_for(kind: str) -> Method | None:
    """The method that trains on ``kind``, if any."""
    return next((m for m, views in VIEWS.items() if kind in views), None)


@dataclass(frozen=True)
class DataRun:
    """One finished run given with ``--data``."""

    path: Path
    kind: str
    run_id: str
    rows: int
    manifest_sha256: str
    shards: tuple[Path, ...]

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind, "run_id": self.run_id, "rows": self.rows, "manifest_sha256": self.manifest_sha256}



def open_data(paths: Sequence[Path], method: Method) -> list[DataRun]:
    """Check every ``--data`` run: finished, of a kind ``method`` trains on, in one record format."""
    from judgeforge.curation.pipeline import RunInput

    if not paths:
        raise UserError(f"give at least one --data RUN_DIR for 'judgeforge train {method}'")
    runs = []
    for path in paths:
        run = RunInput.open(Path(path))
        if run.manifest is None or run.manifest.get("status") != "complete":
            raise UserError(f"run dir '{path}' is unfinished (its manifest.json is missing or not 'complete'): finish the build first by re-running its command")
        views = VIEWS[method]
        if run.kind not in views:
            other = method_for(run.kind)
            hint = f"; train it with 'judgeforge train {other}'" if other else "; no recipe trains on it directly"
            raise UserError(f"run dir '{path}' holds '{run.kind}' rows: 'judgeforge train {method}' trains on {', '.join(views)}{hint}")
        digest = hashlib.sha256((run.root / "manifest.json").read_bytes()).hexdigest()
        rows = sum(pq.read_metadata(s).num_rows for s in run.shards)
        runs.append(DataRun(run.root, run.kind, str(run.manifest.get("run_id", "")), rows, digest, tuple(run.shards)))
    formats = {VIEWS[method][r.kind].format for r in runs}
    if len(formats) > 1:
        kinds = ", ".join(sorted({r.kind for r in runs}))
        raise UserError(f"--data mixes kinds one {method} trainer cannot take together ({kinds}: formats {', '.join(sorted(formats))}); train them separately")
    if sum(r.rows for r in runs) == 0:
        raise UserError(f"--data holds no rows ({', '.join(str(r.path) for r in runs)}): nothing to train on")
    return runs


def training_dataset(runs: Sequence[DataRun], method: Method, tokenizer: Any) -> Any:
    """The TRL records of every run, in ``--data`` order, as one ``datasets.Dataset``.

    One shard at a time goes through Python (the views are functions of rows); its records go straight
    into Arrow, so peak Python memory is one shard's rows, not the whole training set's.
    """
    from datasets import Dataset

    parts = [
        pa.Table.from_pylist(VIEWS[method][run.kind].build(pq.read_table(shard).to_pylist(), tokenizer))
        for run in runs
        for shard in run.shards
        if pq.read_metadata(shard).num_rows
    ]
    # A shard whose optional column is all null gets a null type; promotion unifies it with the others.
    return Dataset(pa.concat_tables(parts, promote_options="default"))
