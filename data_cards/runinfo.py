"""What a run dir says about itself: its kind, shards, manifest, builder and the commands that made it.

Cards, publishing and review all start from a run dir — built, curated or reviewed — and need the same
facts about it. A derived run (curated, reviewed) carries its parent's build description in its own
manifest and links its input run (``parent``, or ``curation.input`` for a curated run); a reviewed run also
lists every ``judgeforge`` command that produced it in ``commands``. A freshly built run has only its own
``command``. :func:`reproduce_commands` puts the chain together.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
import pyarrow.parquet as pq

from judgeforge.builders import builder_names, load_builder
from judgeforge.builders.base import Builder
from judgeforge.errors import UserError
from judgeforge.runs import RunDir, open_run
from judgeforge.schemas.base import KIND_KEY


@dataclass
class RunInfo:
    """A checked run dir and its manifest."""

    run: RunDir
    manifest: dict[str, Any]

    @property
    def root(self) -> Path:
        return self.run.root

    @property
    def kind(self) -> str:
        return self.run.kind

    @property
    def shards(self) -> list[Path]:
        return self.run.shards()

    def dataset(self) -> pads.Dataset:
        """All shards as one Arrow dataset (read lazily, column by column)."""
        return pads.dataset([str(p) for p in self.shards], format="parquet")

    def num_rows(self) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.shards)

    @property
    def builder(self) -> type[Builder[Any]] | None:
        """The builder class that made the rows, when it is still registered under the manifest's name."""
        name = (self.manifest.get("builder") or {}).get("name")
        return load_builder(name) if name in builder_names() else None

    def builder_doc(self) -> str:
        """The builder module's docstring: the method, its paper and its parameters, in the builder's words."""
        builder = self.builder
        return (sys.modules[builder.__module__].__doc__ or "").strip() if builder else ""

    def schema_doc(self) -> str:
        """The row model's module docstring: what a row is and its TRL view."""
        builder = self.builder
        return (sys.modules[builder.row_model.__module__].__doc__ or "").strip() if builder else ""


def shard_kind(path: Path) -> str:
    """The kind stamped into a shard's Parquet metadata ('' if none)."""
    try:
        return (pq.read_schema(path).metadata or {}).get(KIND_KEY, b"").decode()
    except OSError as exc:
        raise UserError(f"{path}: not a Parquet file ({exc})") from exc


def load_run_info(root: Path) -> RunInfo:
    """Open ``root`` as a run dir of whatever kind its shards hold, with its manifest; one-line errors."""
    shards = sorted((root / "data").glob("shard-*.parquet"))
    if not shards:
        raise UserError(f"run dir '{root}' has no data/shard-*.parquet files")
    kind = shard_kind(shards[0])
    if not kind:
        raise UserError(f"{shards[0]}: not a judgeforge shard (no '{KIND_KEY.decode()}' in its metadata)")
    run = open_run(root, kind)
    path = root / "manifest.json"
    if not path.is_file():
        raise UserError(f"run dir '{root}' has no manifest.json")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if manifest.get("kind", kind) != kind:
        raise UserError(f"{path}: says kind '{manifest.get('kind')}', but the shards hold '{kind}' rows")
    return RunInfo(run, manifest)


def reproduce_commands(manifest: dict[str, Any], depth: int = 0) -> list[list[str]]:
    """Every ``judgeforge`` command that produced the run, in order (build first, then curate/review).

    A manifest's own ``commands`` list wins; otherwise its ``command``, preceded by the commands of the
    input run it links to (``curation.input.path`` or ``parent.path``) while that run dir still exists.
    """
    commands = manifest.get("commands")
    if commands:
        return [list(c) for c in commands]
    own = [list(manifest["command"])] if manifest.get("command") else []
    link = (manifest.get("curation") or {}).get("input") or manifest.get("parent") or {}
    parent = Path(str(link.get("path", ""))) / "manifest.json" if link.get("path") else None
    if parent is not None and parent.is_file() and depth < 16:
        return reproduce_commands(json.loads(parent.read_text()), depth + 1) + own
    return own
