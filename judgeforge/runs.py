"""The run layer: a run dir's shards, its kind, its schema and its typed manifest, opened in one place.

A run dir is ``<out>/<kind>/``: ``data/shard-NNNNN.parquet`` (each written atomically, each carrying its
chunk's stats in its Parquet metadata) and ``manifest.json``. Builds write it through :class:`RunDir`;
curation, review, cards, publishing, training and the loop read it through :func:`open_run`, which checks
what every reader needs — the shards exist, hold a registered kind (stamped in their metadata) and were
written with that kind's current schema — and returns a :class:`Run` with the kind's declaration and the
manifest as a :class:`Manifest` model. The manifest records everything needed to reproduce the run, and
never a secret: :func:`redact` masks secret-looking options of the recorded command and
:func:`redact_urls` the credentials of URLs (a role's base URL), and
:func:`reproduce_commands` follows a derived run's links back to the build that started it. What a run
is now — complete, running, interrupted, failed, or stale when the process building it died — is
:func:`run_status`, from the manifest's recorded writer; :func:`find_runs` finds every run under a folder.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from judgeforge.errors import UserError
from judgeforge.files import atomic_write, claim, clear_stale, process_gone, write_json
from judgeforge.schemas.base import KIND_KEY, SCHEMA_VERSION_KEY, arrow_schema
from judgeforge.schemas.kind import Kind
from judgeforge.schemas.registry import get_kind
from judgeforge.sources import ResolvedSource

MANIFEST = "manifest.json"
TEST_SPLIT = "test"
"""The folder, inside a run dir, of the held-out test split (``--test-fraction``): a run dir of its own."""
STATS_KEY = b"judgeforge.chunk_stats"
_SECRET_OPTION = re.compile(r"(?i)^--([\w-]*-)?(api-key|key|token|hf-token|secret|password)(=|$)")
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


# --- the manifest ------------------------------------------------------------------------------------


class _Record(BaseModel):
    """A manifest part: typed fields, and any other keys an older or newer judgeforge wrote kept as they are."""

    model_config = ConfigDict(extra="allow")


class BuilderRef(_Record):
    name: str
    version: str


class ModelRef(_Record):
    """A model a role ran on: its id, the sha256 of its weights, the engine."""

    model: str
    weights_hash: str | None = None
    engine: str | None = None


class SourceRef(_Record):
    """Where the inputs came from (the source options, ``source`` as given) and a hash of them exactly as loaded;
    ``resolved``: what the source named (a file's absolute path and byte hash, a reasoning-gym task's seed), not
    part of the run's identity, so a run resumes from another folder."""

    source: str
    split: str | None = None
    limit: int | None = None
    fingerprint: str | None = None
    inputs: int | None = None
    resolved: ResolvedSource | None = None


class Chunks(_Record):
    total: int
    done: int
    size: int
    built_this_run: int


class WorkerTiming(_Record):
    """One worker of a build: where it ran, how long its engines took to load, what it built."""

    worker: int
    node: str | None = None
    pid: int | None = None
    threads: int | None = None
    """torch's intra-op threads on CPU: float32 matmuls reduce in an order that follows it (see ``--cpus-per-worker``)."""
    load_models_s: float | None = None
    chunks: int = 0
    build_s: float = 0.0


class ExecutorRef(_Record):
    """What ran the build: ``local`` (this process) or ``ray`` (a pool of workers), and each worker's timings."""

    name: str = "local"
    workers: int = 1
    address: str | None = None
    per_worker: list[WorkerTiming] = Field(default_factory=list)


class SplitRef(_Record):
    """One split of a run held out by problem (``--test-fraction``): its inputs and rows, and where it lives."""

    inputs: int
    rows: int
    path: str | None = None
    """The split's run dir, relative to the run's own (``test``); None for the run's own rows."""
    fraction: float | None = None


class Tokens(_Record):
    prompt: int = 0
    completion: int = 0


class RoleCalls(_Record):
    """One role's engine calls over a build: prompts sent, those answered from the request cache, and the
    prompt and generated tokens of the rest (what the engine computed; a prompt counts once per sample)."""

    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class WriterRef(_Record):
    """The process building a run: its host, pid and start time (seconds since boot), so a reader can tell a
    live build from one whose process died (:func:`run_status`)."""

    host: str
    pid: int
    started: float | None = None


class Growth(_Record):
    """The run grew: built over ``inputs_before`` inputs (``chunks_before`` chunks), then extended to ``inputs_after``."""

    inputs_before: int
    inputs_after: int
    chunks_before: int
    at: str


class FunnelStep(_Record):
    """One curation filter's line of the funnel: rows in and out, drops or flags, examples, counters."""

    name: str
    filter: str | None = None
    action: Literal["drop", "flag"] = "drop"
    rows_in: int | None = None
    rows_out: int | None = None
    dropped: int | None = None
    flagged: int | None = None
    examples: list[dict[str, Any]] = Field(default_factory=list)
    stats: dict[str, Any] = Field(default_factory=dict)
    report: dict[str, Any] | None = None
    seconds: float | None = None
    cpu_seconds: float | None = None


class InputLink(_Record):
    """The run a curated run was made from (its ``curation`` too, when it was itself curated)."""

    path: str | None = None
    run_id: str | None = None
    fingerprint: str | None = None
    rows: int | None = None
    curation: Curation | None = None


class Curation(_Record):
    """What ``judgeforge curate`` did: the input run, the spec, the funnel, the log of dropped rows, and, when it
    kept no rows or fewer than a tenth of them, why (``diagnosis``: the filters that took them, what to change)."""

    input: InputLink | None = None
    spec_path: str | None = None
    spec: dict[str, Any] | None = None
    funnel: list[FunnelStep] = Field(default_factory=list)
    rows_in: int | None = None
    rows_out: int | None = None
    log: str | None = None
    diagnosis: list[str] = Field(default_factory=list)


InputLink.model_rebuild()


class ParentLink(_Record):
    """The run a reviewed run was made from."""

    path: str
    run_id: str | None = None
    fingerprint: str | None = None


class Review(_Record):
    """What ``judgeforge review apply`` did: the Argilla dataset, the answers and the agreement per question."""

    argilla_dataset: str | None = None
    workspace: str | None = None
    pulled_at: str | None = None
    records_pushed: int | None = None
    records_completed: int | None = None
    reviewers: int | None = None
    answers: int | None = None
    rows: dict[str, int] = Field(default_factory=dict)
    questions: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Stage(_Record):
    """When one stage of a run's making ran (``build``, ``curate``, ``review``), and with which judgeforge."""

    stage: Literal["build", "curate", "review"]
    started_at: str | None = None
    finished_at: str | None = None
    judgeforge_version: str | None = None


Status = Literal["running", "partial", "complete", "interrupted", "failed"]
"""What a run's writer last recorded: building (``running``), stopped by SIGINT/SIGTERM (``interrupted``) or by
an error (``failed``) with its shards kept, this ``--shard`` process's share done but not the run (``partial``),
or ``complete``."""


class Manifest(_Record):
    """``manifest.json`` of a built, curated or reviewed run.

    Only the fields a writer sets are written (:meth:`dump`), so a manifest read and written back keeps
    its shape; keys this model does not know are kept too, so manifests of other versions still read.
    """

    judgeforge_version: str | None = None
    kind: str | None = None
    run_id: str | None = None
    fingerprint: str | None = None
    builder: BuilderRef | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    source: SourceRef | None = None
    models: dict[str, ModelRef] = Field(default_factory=dict)
    seed: int | None = None
    chunk_size: int | None = None
    engines: dict[str, dict[str, Any]] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    command: list[str] = Field(default_factory=list)
    commands: list[list[str]] = Field(default_factory=list)
    status: Status | None = None
    started_at: str | None = None
    finished_at: str | None = None
    chunks: Chunks | None = None
    rows_in: int | None = None
    rows_out: int | None = None
    tokens: Tokens | None = None
    calls: dict[str, RoleCalls] = Field(default_factory=dict)
    engine_stats: dict[str, int | float] = Field(default_factory=dict)
    builder_stats: dict[str, int | float] = Field(default_factory=dict)
    timings: dict[str, int | float] = Field(default_factory=dict)
    shards: list[str] = Field(default_factory=list)
    executor: ExecutorRef | None = None
    writer: WriterRef | None = None
    growth: list[Growth] = Field(default_factory=list)
    curation: Curation | None = None
    parent: ParentLink | None = None
    review: Review | None = None
    split: str | None = None
    """Which split of its run this run dir holds (``test`` for the held-out split); None: the run itself."""
    splits: dict[str, SplitRef] = Field(default_factory=dict)
    """A run built with ``--test-fraction``: its own rows (``train``) and the held-out ``test`` split, by problem."""
    timeline: list[Stage] = Field(default_factory=list)
    """Every stage that made the run, in order, its own last: written by curate and review apply (a curated run: its
    build, then the curation); a build's one stage is its own times (:meth:`stages`)."""

    def dump(self) -> dict[str, Any]:
        """The manifest as JSON data: the fields that were set, in declaration order, then the unknown keys."""
        return self.model_dump(mode="json", exclude_unset=True)

    def stages(self) -> list[Stage]:
        """Every stage that made the run, its own last (:attr:`timeline`; a manifest without one made the run in one stage)."""
        if self.timeline:
            return list(self.timeline)
        own = "review" if self.review is not None and self.parent is not None else "curate" if self.curation is not None else "build"
        return [Stage(stage=own, started_at=self.started_at, finished_at=self.finished_at, judgeforge_version=self.judgeforge_version)]

    def then(self, stage: Literal["curate", "review"], started_at: str, finished_at: str, version: str) -> list[Stage]:
        """The timeline of a run made from this one by ``stage``: this run's stages, then that one."""
        return [*self.stages(), Stage(stage=stage, started_at=started_at, finished_at=finished_at, judgeforge_version=version)]

    def provenance(self) -> dict[str, Any]:
        """The fields that say how the rows were made (builder, config, source, models, seed, stats...), not
        the run's own identity and life (id, status, times, command, shards, counts): what a derived run copies."""
        return self.model_dump(mode="json", exclude_unset=True, exclude=_RUN_FIELDS)


# Manifest fields that describe a run's own files and life, not how its rows were made.
_RUN_FIELDS = {
    "judgeforge_version",
    "kind",
    "run_id",
    "fingerprint",
    "status",
    "started_at",
    "finished_at",
    "command",
    "commands",
    "shards",
    "chunks",
    "rows_in",
    "rows_out",
    "timings",
    "executor",
    "writer",
    "growth",
    "curation",
    "split",
    "splits",
    "timeline",
}


def read_manifest(path: Path) -> Manifest | None:
    """The manifest at ``path`` (None when there is none); one-line errors for a file that is not one."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a judgeforge manifest (expected a JSON object, got {type(data).__name__})")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"{path}: field '{'.'.join(str(p) for p in err['loc'])}': {err['msg']}") from exc


def write_manifest(path: Path, manifest: Manifest) -> Path:
    """Write ``manifest`` to ``path`` atomically."""
    return write_json(path, manifest.dump())


# --- the command chain -------------------------------------------------------------------------------


def redact(argv: Sequence[str]) -> list[str]:
    """The command line with secret-looking option values and URL credentials masked."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        if arg.startswith("--") and _SECRET_OPTION.search(arg):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=***")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(redact_urls(arg))
    return out


def redact_urls(value: Any) -> Any:
    """``value`` (JSON data: a string, or lists and dicts of them) with every URL's credentials masked
    (``https://user:token@host`` → ``https://***@host``)."""
    if isinstance(value, str):
        return _URL_USERINFO.sub("***@", value)
    if isinstance(value, dict):
        return {k: redact_urls(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_urls(v) for v in value]
    return value


def argv() -> list[str]:
    """This process's command line as a ``judgeforge`` command (not yet redacted)."""
    return ["judgeforge", *sys.argv[1:]]


def reproduce_commands(manifest: Manifest, depth: int = 0) -> list[list[str]]:
    """Every ``judgeforge`` command that produced the run, in order (build first, then curate/review).

    A manifest's own ``commands`` list wins; otherwise its ``command``, preceded by the commands of the
    input run it links to (``curation.input.path`` or ``parent.path``) while that run dir still exists.
    """
    if manifest.commands:
        return [list(c) for c in manifest.commands]
    own = [list(manifest.command)] if manifest.command else []
    link = manifest.curation.input if manifest.curation and manifest.curation.input else manifest.parent
    parent = read_manifest(Path(link.path) / MANIFEST) if link is not None and link.path and depth < 16 else None
    return (reproduce_commands(parent, depth + 1) if parent is not None else []) + own


# --- writing a run dir -------------------------------------------------------------------------------


def shard_path(root: Path, chunk: int) -> Path:
    """Where chunk ``chunk`` of the run at ``root`` is stored."""
    return root / "data" / f"shard-{chunk:05d}.parquet"


class RunDir:
    """``<out>/<kind>/`` being written: ``data/`` shards (atomically, with their stats) and ``manifest.json``.

    Opening one for writing removes the temp files killed writers on this machine left; several processes
    (``--shard i/N``) writing into one run dir never touch each other's files.
    """

    def __init__(self, root: Path, kind: str) -> None:
        self.root = root
        self.kind = kind
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        clear_stale(self.data)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def chunk_path(self, chunk: int) -> Path:
        return shard_path(self.root, chunk)

    def done(self, total: int) -> set[int]:
        return {c for c in range(total) if self.chunk_path(c).exists()}

    def write_chunk(self, chunk: int, table: pa.Table, stats: dict[str, Any]) -> None:
        """Write shard ``chunk`` atomically, its ``stats`` in its Parquet metadata."""
        metadata = dict(table.schema.metadata or {})
        metadata[STATS_KEY] = json.dumps(stats, sort_keys=True).encode()
        table = table.replace_schema_metadata(metadata)
        atomic_write(self.chunk_path(chunk), lambda tmp: write_parquet(table, tmp))

    def chunk_stats(self, chunk: int) -> dict[str, Any]:
        return chunk_stats(self.chunk_path(chunk))

    def shards(self) -> list[Path]:
        return sorted(self.data.glob("shard-*.parquet"))

    def read_manifest(self) -> Manifest | None:
        return read_manifest(self.manifest_path)

    def write_manifest(self, manifest: Manifest) -> None:
        write_manifest(self.manifest_path, manifest)

    def claim_final_manifest(self, fingerprint: str) -> bool:
        """Whether this process writes the finished run's manifest, when several (``--shard i/N``) may finish it.

        The first to claim it does; none does when ``manifest.json`` already says this run is complete.
        """
        previous = self.read_manifest()
        if previous is not None and previous.fingerprint == fingerprint and previous.status == "complete":
            return False
        return claim(self.root / f".manifest-{fingerprint[:16]}.claim")


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` as Parquet; a table with no rows gets no row group at all: ``datasets.load_dataset`` (and
    so the Hub's viewer) fails on a file holding a row group of 0 rows, which ``pq.write_table`` would write."""
    if table.num_rows:
        pq.write_table(table, path)
    else:
        pq.ParquetWriter(path, table.schema).close()


def chunk_stats(shard: Path) -> dict[str, Any]:
    """The stats a shard's writer stored in its Parquet metadata."""
    metadata = pq.read_schema(shard).metadata or {}
    stats: dict[str, Any] = json.loads(metadata.get(STATS_KEY, b"{}"))
    return stats


# --- reading a run dir -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A run dir, checked: every shard holds ``kind`` with the kind's current ``schema``."""

    root: Path
    kind: Kind
    schema: pa.Schema
    shards: tuple[Path, ...]
    manifest: Manifest | None

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def require_manifest(self) -> Manifest:
        """The manifest; a one-line error when the run has none."""
        if self.manifest is None:
            raise UserError(f"run dir '{self.root}' has no {MANIFEST}")
        return self.manifest

    def dataset(self) -> pads.Dataset:
        """All shards as one Arrow dataset (read lazily, column by column)."""
        return pads.dataset([str(p) for p in self.shards], format="parquet")

    def tables(self, columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
        """The shards' rows, one Arrow table per shard, in shard order."""
        for shard in self.shards:
            yield pq.read_table(shard, columns=None if columns is None else list(columns))

    def num_rows(self) -> int:
        return sum(pq.read_metadata(p).num_rows for p in self.shards)

    def test_split(self) -> Run | None:
        """The held-out test split built beside this run (``--test-fraction``), opened; None when it has none."""
        root = self.root / TEST_SPLIT
        return open_run(root, self.kind.name) if (root / "data").is_dir() else None


def _stamp(shard: Path) -> tuple[pa.Schema, str]:
    try:
        schema = pq.read_schema(shard)
    except (OSError, pa.ArrowInvalid) as exc:
        raise UserError(f"{shard}: not a Parquet file ({exc})") from exc
    kind = (schema.metadata or {}).get(KIND_KEY, b"").decode()
    if not kind:
        raise UserError(f"{shard}: not a judgeforge shard (no '{KIND_KEY.decode()}' in its metadata)")
    return schema, kind


def open_run(root: Path, kind: str | None = None) -> Run:
    """Open ``root`` as a run dir of the kind its shards hold (``kind``: the one it must hold); one-line errors.

    Checks that the shards exist, are stamped with one registered kind, and were written with that kind's
    current schema; reads ``manifest.json`` when there is one and checks it names the same kind.
    """
    shards = sorted((root / "data").glob("shard-*.parquet")) if (root / "data").is_dir() else []
    if not shards:
        raise UserError(f"run dir '{root}' has no data/shard-*.parquet files")
    _, name = _stamp(shards[0])
    if kind is not None and name != kind:
        raise UserError(f"{shards[0]}: holds '{name}' rows, expected '{kind}'")
    try:
        declared = get_kind(name)
    except UserError as exc:
        raise UserError(f"{shards[0]}: {exc}") from exc
    model = declared.row
    schema = arrow_schema(model)
    for shard in shards:
        found, stamped = _stamp(shard)
        if stamped != name:
            raise UserError(f"{shard}: holds '{stamped}' rows, expected '{name}'")
        version = (found.metadata or {}).get(SCHEMA_VERSION_KEY, b"").decode()
        if version != model.schema_version or not found.remove_metadata().equals(schema.remove_metadata()):
            raise UserError(
                f"{shard}: written with schema version '{version}' of kind '{name}', this judgeforge reads version '{model.schema_version}'; rebuild the run"
            )
    manifest = read_manifest(root / MANIFEST)
    if manifest is not None and manifest.kind not in (None, name):
        raise UserError(f"{root / MANIFEST}: says kind '{manifest.kind}', but the shards hold '{name}' rows")
    return Run(root, declared, schema, tuple(shards), manifest)


# --- what a run is now, and finding runs -------------------------------------------------------------

RunState = Literal["running", "partial", "complete", "interrupted", "failed", "stale", "no manifest"]
_PRECEDENCE: tuple[RunState, ...] = ("running", "interrupted", "failed", "stale", "partial", "complete")


def _state(manifest: Manifest) -> RunState:
    """One manifest's word on its run, its writer checked: a ``running`` run whose writer process has died is ``stale``."""
    status = manifest.status or "complete"
    if status == "running" and manifest.writer is not None and process_gone(manifest.writer.host, manifest.writer.pid, manifest.writer.started):
        return "stale"
    return status


def run_status(root: Path, manifest: Manifest | None = None) -> RunState:
    """What the run at ``root`` is now, from ``manifest.json`` and the ``--shard`` processes' own manifests.

    ``complete``; ``running`` while a writer builds it (a writer on another machine is presumed alive);
    ``interrupted`` (stopped by SIGINT or SIGTERM) or ``failed`` (stopped by an error), its shards kept;
    ``stale`` when the process that said it was building has died without a word (killed, out of memory,
    its machine restarted); ``partial`` when ``--shard`` processes built some shares and others are still
    to come. Re-running the build command resumes all but ``complete``.
    """
    manifest = manifest if manifest is not None else read_manifest(root / MANIFEST)
    if manifest is not None and manifest.status == "complete":
        return "complete"
    records = [m for m in (manifest, *(read_manifest(p) for p in sorted(root.glob("manifest.shard-*.json")))) if m is not None]
    if not records:
        return "no manifest"
    states = {_state(m) for m in records}
    return next(s for s in _PRECEDENCE if s in states)


class RunInfo(BaseModel):
    """One run found under a folder: what ``judgeforge runs`` lists."""

    path: Path
    kind: str | None
    rows: int
    status: RunState
    made_by: str
    created: str | None
    source: str | None


def _made_by(manifest: Manifest | None) -> str:
    if manifest is None:
        return "-"
    if manifest.curation is not None:
        return "curate"
    if manifest.review is not None:
        return "review apply"
    return f"{manifest.builder.name} {manifest.builder.version}" if manifest.builder is not None else "-"


def _source(manifest: Manifest | None) -> str | None:
    if manifest is None:
        return None
    if manifest.curation is not None and manifest.curation.input is not None:
        return f"curated from {manifest.curation.input.path}"
    if manifest.parent is not None:
        return f"reviewed from {manifest.parent.path}"
    if manifest.source is None:
        return None
    limit = f" (first {manifest.source.limit})" if manifest.source.limit else ""
    return f"{manifest.source.source}{limit}"


def run_info(root: Path) -> RunInfo:
    """What ``runs`` shows of the run at ``root``: its rows are counted from the shards' footers (a run being built has no total yet)."""
    manifest = read_manifest(root / MANIFEST)
    shards = sorted((root / "data").glob("shard-*.parquet"))
    rows = sum(pq.read_metadata(p).num_rows for p in shards)
    kind = manifest.kind if manifest is not None and manifest.kind else (_stamp(shards[0])[1] if shards else None)
    created = manifest.started_at or manifest.finished_at if manifest is not None else None
    return RunInfo(path=root, kind=kind, rows=rows, status=run_status(root, manifest), made_by=_made_by(manifest), created=created, source=_source(manifest))


def is_run_dir(folder: Path) -> bool:
    """Whether ``folder`` is a run dir: it holds ``manifest.json`` or Parquet shards under ``data/``."""
    return (folder / MANIFEST).is_file() or any((folder / "data").glob("shard-*.parquet"))


def find_runs(folder: Path) -> list[Path]:
    """Every run dir at or under ``folder``, sorted (a run's own ``data/`` and hidden temp folders are not searched)."""
    found = []
    for here, dirs, _ in os.walk(folder):
        path = Path(here)
        if is_run_dir(path):
            found.append(path)
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)
