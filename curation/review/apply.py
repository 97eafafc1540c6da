"""``review apply``: write a new run from a run and its pulled answers, reviewed rows kept, relabelled or dropped.

The rows are written by curation's shard writer (:func:`judgeforge.curation.pipeline.write_shards`), so a
reviewed run has exactly a curated run's layout: one shard per input shard, the kind's schema and
Parquet metadata. Dropped rows are named by their ``_rid`` (shard index × 2^32 + row in shard);
relabelled rows are rewritten in place, shard by shard, with the kind's ``relabel``. Only the id column
is read to place the decisions, so the run is never loaded whole. The new run is built under a temp
name beside ``OUT/<kind>`` and renamed into place; its manifest links the input run and records the
review: where the answers came from, what happened to the rows, and per question the agreement
statistics the card shows.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from judgeforge import __version__
from judgeforge.curation.pipeline import write_shards
from judgeforge.curation.review.sidecar import SIDECAR, read_sidecar
from judgeforge.curation.review.votes import decide
from judgeforge.errors import UserError
from judgeforge.files import replace_dir, utc_now
from judgeforge.runs import TEST_SPLIT, Manifest, Run, RunDir, argv, redact, reproduce_commands
from judgeforge.schemas.kind import Outcome, Row

FATES = ("unreviewed", "keep", "relabel", "drop", "split")


def default_out(root: Path) -> Path:
    """``runs/demo/step_prefs`` → ``runs/demo-reviewed`` (the new run lands in ``runs/demo-reviewed/step_prefs``)."""
    parent = root.resolve().parent
    return parent.with_name(f"{parent.name}-reviewed")


def _place(run: Run, decisions: dict[str, Outcome | None]) -> tuple[Counter[str], np.ndarray, dict[int, list[int]]]:
    """Every row's fate (one of :data:`FATES`), the ``_rid`` s to drop (sorted) and, per shard, the rows to relabel."""
    fates: Counter[str] = Counter()
    dropped: list[int] = []
    relabelled: dict[int, list[int]] = {}
    for index, shard in enumerate(run.shards):
        for position, row_id in enumerate(pq.read_table(shard, columns=["id"]).column("id").to_pylist()):
            fate = (decisions[row_id] or "split") if row_id in decisions else "unreviewed"
            fates[fate] += 1
            if fate == "drop":
                dropped.append((index << 32) + position)
            elif fate == "relabel":
                relabelled.setdefault(index, []).append(position)
    return fates, np.asarray(dropped, dtype=np.int64), relabelled


def _relabeller(relabel: Callable[[Row], Row], relabelled: dict[int, list[int]]) -> Callable[[int, pa.Table], pa.Table]:
    """The shard edit that replaces each row to relabel by ``relabel(row)``, in its place."""

    def edit(index: int, table: pa.Table) -> pa.Table:
        positions = relabelled.get(index)
        if not positions:
            return table
        new = pa.Table.from_pylist([relabel(row) for row in table.take(positions).to_pylist()], schema=table.schema)
        order = np.arange(table.num_rows)
        order[positions] = table.num_rows + np.arange(len(positions))
        return pa.concat_tables([table, new]).take(order)

    return edit


def apply(run: Run, out: Path) -> Manifest:
    """Write ``out/<kind>/``: the run with reviewed rows kept, relabelled or dropped; return its manifest."""
    parent = run.require_manifest()
    answers, source = read_sidecar(run)
    kind, spec = run.kind.name, run.kind.review
    if [q.name for q in spec.questions] != source.questions:
        raise UserError(f"{run.root / SIDECAR}: answers questions {source.questions}, but '{kind}' asks {[q.name for q in spec.questions]}")
    decisions, stats = decide(spec, answers)
    final = out / kind
    if final.exists():
        raise UserError(f"{final} already exists: choose another --out or remove it")
    fates, dropped, relabelled = _place(run, decisions)
    edit = None
    if relabelled:
        assert spec.relabel is not None, "ReviewSpec checks that an answer relabels only where the spec can"
        edit = _relabeller(spec.relabel, relabelled)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to --out '{out}': {exc.strerror or exc}") from exc
    started = utc_now()
    staging = out / f".{kind}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        target = RunDir(staging, kind)
        shards = write_shards(run, target, dropped, edit)
        shutil.copy2(run.root / SIDECAR, staging / SIDECAR)
        if run.test_split() is not None:  # a review covers the run's own rows; its held-out split goes along as it is
            shutil.copytree(run.root / TEST_SPLIT, staging / TEST_SPLIT, ignore=shutil.ignore_patterns("cache*.sqlite"))
        command = redact(argv())
        fingerprint = hashlib.sha256(str(parent.fingerprint).encode() + b"\n" + (run.root / SIDECAR).read_bytes()).hexdigest()
        finished = utc_now()
        review = {
            "argilla_dataset": source.dataset,
            "workspace": source.workspace,
            "pulled_at": source.pulled_at,
            "records_pushed": source.records,
            "records_completed": source.records_completed,
            "reviewers": len({a["reviewer"] for a in answers}),
            "answers": len(answers),
            "rows": {fate: fates.get(fate, 0) for fate in FATES},
            "questions": {name: s.report() for name, s in stats.items()},
        }
        manifest = Manifest.model_validate(
            {
                **parent.dump(),
                "judgeforge_version": __version__,
                "kind": kind,
                "run_id": fingerprint[:16],
                "fingerprint": fingerprint,
                "status": "complete",
                "command": command,
                "commands": [*reproduce_commands(parent), command],
                "parent": {"path": str(run.root.resolve()), "run_id": parent.run_id, "fingerprint": parent.fingerprint},
                "review": review,
                "rows_in": sum(fates.values()),
                "rows_out": sum(fates.values()) - len(dropped),
                "shards": shards,
                "started_at": started,
                "finished_at": finished,
                "timeline": parent.then("review", started, finished, __version__),
            }
        )
        if "train" in manifest.splits:
            manifest.splits["train"] = manifest.splits["train"].model_copy(update={"rows": manifest.rows_out})
        target.write_manifest(manifest)
        replace_dir(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest
