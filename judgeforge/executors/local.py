"""The local executor: a builder over its inputs, chunk by chunk, on this machine; resumable and shardable.

Every build runs through :func:`execute`, so every dataset gets the same guarantees: its inputs are cut
into fixed chunks, each chunk becomes one ``data/shard-NNNNN.parquet`` written atomically (a killed run
never leaves half a shard), each shard carries its own stats in its Parquet metadata, and re-running
the same command skips finished shards and answers already-made engine calls from the request cache —
so a resumed run equals an uninterrupted one. ``--shard i/N`` builds the chunks ``c`` with
``c % N == i``: N machines writing into one shared run dir produce the same files one machine would,
each with its own request cache, and the one that completes the run writes its manifest. The framework
owns the progress bar and the end-of-run table; the manifest is a :class:`judgeforge.runs.Manifest`.
The pieces here (:func:`plan_run`, :func:`build_chunk`, :func:`finish_run`) are shared with the Ray
executor (:mod:`judgeforge.executors.ray`), so a run is the same run whichever executor builds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from judgeforge import __version__
from judgeforge.builders.base import BuildContext, Builder
from judgeforge.engines import EngineSpec, make_engine
from judgeforge.engines.base import Engine, EngineStats
from judgeforge.engines.cache import CachedEngine, RequestCache
from judgeforge.errors import UserError
from judgeforge.files import utc_now
from judgeforge.runs import (
    TEST_SPLIT,
    BuilderRef,
    Chunks,
    ExecutorRef,
    Manifest,
    ModelRef,
    ParentLink,
    RunDir,
    SourceRef,
    SplitRef,
    Tokens,
    WorkerTiming,
    redact,
    redact_urls,
    write_manifest,
)
from judgeforge.schemas.base import rows_to_table
from judgeforge.sources import SourceConfig, resolve_source

POLICY = "policy"
"""The role every builder has: the model whose outputs the rows are made of."""

# Libraries whose versions decide what a build produces; recorded in the manifest.
_VERSIONED = ("judgeforge", "torch", "transformers", "vllm", "pyarrow", "reasoning-gym", "math-verify")
# Engine options the fingerprint leaves out: those that decide how fast a role runs, not what it generates
# (a resumed build may change them), and dtype, which counts as the engine resolved it (its numerics).
_NOT_IDENTITY = frozenset({"max_concurrency", "batch_size", "device", "trust_remote_code", "dtype"})


class ShardSpec(BaseModel):
    """This process builds the chunks ``c`` with ``c % count == index``."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise UserError(f"--shard '{text}': expected i/N, e.g. 0/4")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or index >= count:
            raise UserError(f"--shard '{text}': index must be in 0..N-1 and N >= 1")
        return cls(index=index, count=count)


class RunOptions(BaseModel):
    out: Path
    seed: int = 0
    shard: ShardSpec = ShardSpec()
    chunk_size: int = 16
    cache: Path | None = None
    command: list[str] = []
    engines: dict[str, EngineSpec] = {}
    """role → the spec its engine was made from (recorded in the manifest, credentials masked)."""
    test_fraction: float = 0.0
    """The share of inputs held out, by input id, as the run's test split (:func:`held_out`); 0: none."""


def held_out(item_id: str, fraction: float) -> bool:
    """Whether the input ``item_id`` belongs to the held-out test split of a run built with ``--test-fraction fraction``.

    A hash of the id alone decides, uniformly in [0, 1): the same problem is held out in every run of the
    same source (whatever the seed, the chunking or ``--limit``), a larger fraction holds out a superset,
    and no problem can be in both splits. The split's size is ``fraction`` of the inputs in expectation,
    not exactly (a run records what it got).
    """
    digest = hashlib.sha256(f"judgeforge-test-split\x1f{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def inputs_fingerprint(items: Sequence[BaseModel]) -> str:
    """sha256 over the builder inputs exactly as loaded: a changed problem or label changes the run."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.model_dump_json().encode())
        digest.update(b"\n")
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """The installed versions of the libraries that decide a build's rows (those that are installed)."""
    found = {}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _model_ref(engine: Engine, spec: dict[str, Any] | None) -> dict[str, Any]:
    """What the fingerprint knows of a role: its model, weights, engine and numerics, and the spec options that decide its outputs."""
    ref: dict[str, Any] = {"model": engine.model_id, "weights_hash": engine.weights_hash, "engine": engine.name}
    if engine.numerics:
        ref["numerics"] = engine.numerics
    if spec is not None:
        ref["spec"] = {k: v for k, v in spec.items() if k not in _NOT_IDENTITY}
    return ref


def distinct_engines(engines: Iterable[Engine] | dict[str, Engine]) -> list[Engine]:
    """Each engine once (roles with equal specs share one)."""
    seen: dict[int, Engine] = {}
    for engine in engines.values() if isinstance(engines, dict) else engines:
        seen.setdefault(id(engine), engine)
    return list(seen.values())


def role_specs(roles: tuple[str, ...], specs: dict[str, EngineSpec]) -> dict[str, EngineSpec]:
    """Every role's spec: its own, or the policy's for a role ``specs`` does not list; a spec for a role the builder lacks is an error."""
    if unknown := sorted(set(specs) - set(roles)):
        raise UserError(f"engines given for {', '.join(unknown)}, which this builder does not use (its roles: {', '.join(roles)})")
    policy = specs.get(POLICY, EngineSpec())
    return {role: specs.get(role, policy) for role in roles}


def make_engines(roles: tuple[str, ...], specs: dict[str, EngineSpec]) -> dict[str, Engine]:
    """One engine per role; roles with equal specs share one engine (self-rewarding: the model is loaded once)."""
    built: dict[str, Engine] = {}
    engines: dict[str, Engine] = {}
    try:
        for role, spec in role_specs(roles, specs).items():
            key = spec.model_dump_json()
            if key not in built:
                built[key] = make_engine(spec)
            engines[role] = built[key]
    except BaseException:
        close_engines(built.values())
        raise
    return engines


def close_engines(engines: Iterable[Engine]) -> None:
    """Close each distinct engine once."""
    for engine in distinct_engines(engines):
        engine.close()


def torch_threads() -> int | None:
    """This process's torch intra-op threads, when torch is loaded (an engine on it is)."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


class RoleIdentity(BaseModel):
    """What a run knows of one role's engine: its fingerprinted reference and what it reports of itself."""

    ref: dict[str, Any]
    describe: dict[str, Any]


def identify(engines: dict[str, Engine], specs: dict[str, EngineSpec]) -> dict[str, RoleIdentity]:
    """Each role's identity; a spec's URL credentials are masked before anything is recorded."""
    masked = {role: redact_urls(spec.model_dump(mode="json")) for role, spec in specs.items()}
    return {
        role: RoleIdentity(ref=_model_ref(e, masked.get(role)), describe=redact_urls({**e.describe(), **({"spec": masked[role]} if role in masked else {})}))
        for role, e in engines.items()
    }


def cache_path(root: Path, opts: RunOptions) -> Path:
    """The request cache of this process: ``--cache``, or the run dir's, one file per ``--shard`` process (SQLite is unsafe on network file systems)."""
    if opts.cache is not None:
        return opts.cache
    if opts.shard.count == 1:
        return root / "cache.sqlite"
    return root / f"cache.shard-{opts.shard.index}-of-{opts.shard.count}.sqlite"


@dataclass
class Plan:
    """A build about to run: its run dir, its manifest so far, its chunks, and which of them this process builds;
    with ``--test-fraction``, the run dir of its held-out test split too."""

    run: RunDir
    manifest: Manifest
    chunks: list[list[BaseModel]]
    mine: list[int]
    todo: list[int]
    test_run: RunDir | None = None
    test_fraction: float = 0.0

    def inputs(self, chunks: Iterable[int]) -> int:
        return sum(len(self.chunks[c]) for c in chunks)

    def write(self, chunk: int, built: ChunkBuilt) -> None:
        """Write chunk ``chunk``'s shards: the test split's first, so a chunk whose own shard exists is whole."""
        if self.test_run is not None:
            assert built.held_out is not None, "a run with a test split builds every chunk's held-out inputs"
            self.test_run.write_chunk(chunk, built.held_out.table, built.held_out.stats)
        self.run.write_chunk(chunk, built.table, built.stats)


def plan_run(
    builder_cls: type[Builder[Any]], config: BaseModel, source: SourceConfig, items: Sequence[BaseModel], roles: dict[str, RoleIdentity], opts: RunOptions
) -> Plan:
    """Fingerprint the build, check it against the run dir's manifest (a different build there is an error), and say what is left to build."""
    kind = builder_cls.row_model.kind
    run = RunDir(opts.out / kind, kind)
    test_run = RunDir(run.root / TEST_SPLIT, kind) if opts.test_fraction > 0 else None
    plan: dict[str, Any] = {
        "builder": {"name": builder_cls.name, "version": builder_cls.version},
        "config": config.model_dump(mode="json"),
        "source": {**source.model_dump(mode="json"), "fingerprint": inputs_fingerprint(items), "inputs": len(items)},
        "models": {role: identity.ref for role, identity in roles.items()},
        "seed": opts.seed,
        "chunk_size": opts.chunk_size,
    }
    if opts.test_fraction > 0:  # only then: the fingerprints of runs without a test split stay as they were
        plan["split"] = {"test_fraction": opts.test_fraction, "by": "input id"}
    fingerprint = _fingerprint(plan)
    previous = run.read_manifest()
    if previous is not None and previous.fingerprint != fingerprint:
        recorded = previous.dump()
        recorded.get("source", {}).pop("resolved", None)  # what the source named is recorded, not part of the run's identity
        changed = [k for k in plan if recorded.get(k) != json.loads(json.dumps(plan[k], default=str))]
        raise UserError(
            f"{run.root} holds a run built with a different {', '.join(changed) or 'configuration'}; "
            "re-run with the same options to resume, or choose another --out"
        )
    chunks = [list(items[i : i + opts.chunk_size]) for i in range(0, len(items), opts.chunk_size)]
    total = len(chunks)
    mine = [c for c in range(total) if c % opts.shard.count == opts.shard.index]
    done = run.done(total)
    manifest = Manifest(
        judgeforge_version=__version__,
        kind=kind,
        run_id=fingerprint[:16],
        fingerprint=fingerprint,
        builder=BuilderRef.model_validate(plan["builder"]),
        config=plan["config"],
        source=SourceRef.model_validate({**plan["source"], "resolved": resolve_source(source.source, source)}),
        models={role: ModelRef.model_validate(ref) for role, ref in plan["models"].items()},
        seed=opts.seed,
        chunk_size=opts.chunk_size,
        engines={role: identity.describe for role, identity in roles.items()},
        versions=library_versions(),
        command=redact(opts.command),
        status="running",
        started_at=(previous.started_at if previous else None) or utc_now(),
    )
    if opts.shard.count == 1:
        run.write_manifest(manifest)
    return Plan(run, manifest, chunks, mine, [c for c in mine if c not in done], test_run, opts.test_fraction)


class ChunkBuilt(BaseModel):
    """One chunk's rows (an Arrow table in the kind's schema) and the stats its shard carries; with a held-out
    split, the rows and stats its test split's shard carries (``held_out``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    table: pa.Table
    stats: dict[str, Any]
    held_out: ChunkBuilt | None = None


def build_chunk(
    builder_cls: type[Builder[Any]], config: BaseModel, ctx: BuildContext, inner: Sequence[Engine], items: list[BaseModel], test_fraction: float = 0.0
) -> ChunkBuilt:
    """Run a fresh builder over one chunk; its rows and stats (rows, inputs, seconds, the engines' counters for this chunk, the builder's).

    With a ``test_fraction``, the chunk's held-out inputs (:func:`held_out`) are built apart, by a builder of
    their own, into the test split's rows: nothing a builder does across a chunk (balancing, ties) mixes
    the two splits.
    """
    if test_fraction > 0:
        test = [item for item in items if held_out(str(getattr(item, "id")), test_fraction)]  # noqa: B009 - every input has an id
        train = [item for item in items if not held_out(str(getattr(item, "id")), test_fraction)]  # noqa: B009
        built = build_chunk(builder_cls, config, ctx, inner, train)
        return built.model_copy(update={"held_out": build_chunk(builder_cls, config, ctx, inner, test)})
    if not items:
        return ChunkBuilt(table=rows_to_table(builder_cls.row_model, []), stats={"rows": 0, "inputs": 0, "seconds": 0.0, "engine": {}, "builder": {}})
    before = {id(e): e.stats.model_copy() for e in inner}
    start = time.perf_counter()
    builder = builder_cls(config, ctx)
    rows = builder.build(items)
    seconds = time.perf_counter() - start
    delta = EngineStats()
    for e in inner:
        now, then = e.stats, before[id(e)]
        for name in EngineStats.model_fields:
            setattr(delta, name, getattr(delta, name) + getattr(now, name) - getattr(then, name))
    stats = {"rows": len(rows), "inputs": len(items), "seconds": round(seconds, 3), "engine": delta.model_dump(), "builder": dict(builder.stats)}
    return ChunkBuilt(table=rows_to_table(builder_cls.row_model, rows), stats=stats)


class BuildProgress:
    """The build's progress bar: inputs done, chunks, rows, rows/s and generated tok/s since this run started."""

    def __init__(self, name: str, plan: Plan, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("inputs · {task.fields[chunks]} chunks · {task.fields[rows]} rows · {task.fields[rows_s]:.2f} rows/s · {task.fields[tok_s]:.0f} tok/s"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.done = len(plan.mine) - len(plan.todo)
        self.total = len(plan.mine)
        self.rows = 0
        self.tokens = 0
        self.clock = time.perf_counter()
        self.task = self.progress.add_task(
            name,
            total=plan.inputs(plan.mine),
            completed=plan.inputs(c for c in plan.mine if c not in plan.todo),
            chunks=self._chunks(),
            rows=0,
            rows_s=0.0,
            tok_s=0.0,
        )

    def _chunks(self) -> str:
        return f"{self.done}/{self.total}"

    def _elapsed(self) -> float:
        return max(time.perf_counter() - self.clock, 1e-9)

    def __enter__(self) -> BuildProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def inputs_done(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def add_tokens(self, n: int) -> None:
        self.tokens += n
        self.progress.update(self.task, tok_s=self.tokens / self._elapsed())

    def chunk_done(self, built: ChunkBuilt, count_inputs: bool = False, count_tokens: bool = False) -> None:
        """A chunk is written; ``count_inputs``/``count_tokens`` when they were not reported as they happened (a remote worker's)."""
        self.done += 1
        self.rows += built.stats["rows"]
        parts = [built] if built.held_out is None else [built, built.held_out]
        if count_inputs:
            self.inputs_done(sum(part.stats["inputs"] for part in parts))
        if count_tokens:
            self.add_tokens(sum(int(part.stats["engine"].get("completion_tokens", 0)) for part in parts))
        self.progress.update(self.task, chunks=self._chunks(), rows=self.rows, rows_s=self.rows / self._elapsed())


def execute(
    builder_cls: type[Builder[Any]],
    config: BaseModel,
    source: SourceConfig,
    items: Sequence[BaseModel],
    engines: dict[str, Engine],
    opts: RunOptions,
    timings: dict[str, float] | None = None,
    console: Console | None = None,
) -> Manifest:
    """Build (or resume) the run over ``items`` (problems, or a builder's own inputs) in this process; return its manifest."""
    console = console or Console(stderr=True)
    plan = plan_run(builder_cls, config, source, items, identify(engines, opts.engines), opts)
    cache = RequestCache(cache_path(plan.run.root, opts))
    inner = distinct_engines(engines)
    wrapped = {id(e): CachedEngine(e, cache) for e in inner}
    cached: dict[str, Engine] = {role: wrapped[id(e)] for role, e in engines.items()}
    build_seconds = 0.0
    try:
        with BuildProgress(builder_cls.name, plan, console) as progress:
            for engine in wrapped.values():
                engine.on_tokens = progress.add_tokens
            ctx = BuildContext(cached, opts.seed, plan.manifest.run_id or "", progress.inputs_done)
            for chunk in plan.todo:
                built = build_chunk(builder_cls, config, ctx, inner, plan.chunks[chunk], opts.test_fraction)
                plan.write(chunk, built)
                build_seconds += built.stats["seconds"] + (built.held_out.stats["seconds"] if built.held_out else 0.0)
                progress.chunk_done(built)
    finally:
        cache.close()
    executor = ExecutorRef(
        name="local",
        workers=1,
        per_worker=[
            WorkerTiming(
                worker=0,
                node=socket.gethostname(),
                pid=os.getpid(),
                threads=torch_threads(),
                load_models_s=(timings or {}).get("load_models_s"),
                chunks=len(plan.todo),
                build_s=round(build_seconds, 3),
            )
        ],
    )
    return finish_run(builder_cls, plan, opts, {**(timings or {}), "build_s_this_run": round(build_seconds, 3)}, executor)


def finish_run(builder_cls: type[Builder[Any]], plan: Plan, opts: RunOptions, timings: dict[str, float], executor: ExecutorRef) -> Manifest:
    """Sum the shards' stats into the manifest and write it: always for a single process; for ``--shard`` processes each
    writes its own ``manifest.shard-i-of-N.json`` and ``manifest.json`` is written once, by the one that completes the run.
    A held-out test split gets its own manifest, written with the run's."""
    run, manifest, total = plan.run, plan.manifest, len(plan.chunks)
    done = run.done(total)
    totals = _sum_chunk_stats([run.chunk_stats(c) for c in sorted(done)])
    complete = len(done) == total
    manifest.status = "complete" if complete else "partial"
    manifest.finished_at = utc_now()
    manifest.chunks = Chunks(total=total, done=len(done), size=opts.chunk_size, built_this_run=len(plan.todo))
    manifest.rows_in = sum(len(c) for c in plan.chunks)
    manifest.rows_out = totals["rows"]
    manifest.tokens = Tokens(prompt=totals["engine"].get("prompt_tokens", 0), completion=totals["engine"].get("completion_tokens", 0))
    manifest.engine_stats = totals["engine"]
    manifest.builder_stats = totals["builder"]
    manifest.timings = {**timings, "build_s_total": round(totals["seconds"], 3)}
    manifest.shards = [p.name for p in run.shards()]
    manifest.executor = executor
    test = _test_manifest(plan, done) if plan.test_run is not None else None
    if test is not None:
        manifest.splits = {"train": SplitRef(inputs=int(totals["inputs"]), rows=totals["rows"]), TEST_SPLIT: test.splits[TEST_SPLIT]}
    writes = opts.shard.count == 1
    if not writes:
        write_manifest(run.root / f"manifest.shard-{opts.shard.index}-of-{opts.shard.count}.json", manifest)
        writes = complete and run.claim_final_manifest(manifest.fingerprint or "")
    if writes:
        if test is not None and plan.test_run is not None:
            plan.test_run.write_manifest(test)
        run.write_manifest(manifest)
    if complete:
        builder_cls.finish(run.root)
    return manifest


def _test_manifest(plan: Plan, done: set[int]) -> Manifest:
    """The held-out test split's manifest: the run's provenance, the split's own counts, a link to the run."""
    assert plan.test_run is not None
    main, test_run = plan.manifest, plan.test_run
    totals = _sum_chunk_stats([test_run.chunk_stats(c) for c in sorted(done)])
    fingerprint = _fingerprint({"run": main.fingerprint, "split": TEST_SPLIT})
    split = SplitRef(inputs=int(totals["inputs"]), rows=totals["rows"], path=TEST_SPLIT, fraction=plan.test_fraction)
    return main.model_copy(
        update={
            "run_id": fingerprint[:16],
            "fingerprint": fingerprint,
            "split": TEST_SPLIT,
            "splits": {TEST_SPLIT: split},
            "parent": ParentLink(path=str(plan.run.root.resolve()), run_id=main.run_id, fingerprint=main.fingerprint),
            "rows_in": int(totals["inputs"]),
            "rows_out": totals["rows"],
            "tokens": Tokens(prompt=totals["engine"].get("prompt_tokens", 0), completion=totals["engine"].get("completion_tokens", 0)),
            "engine_stats": totals["engine"],
            "builder_stats": totals["builder"],
            "shards": [p.name for p in test_run.shards()],
        }
    )


def _sum_chunk_stats(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    engine: Counter[str] = Counter()
    builder: Counter[str] = Counter()
    rows = inputs = 0
    seconds = 0.0
    for stats in chunks:
        rows += int(stats.get("rows", 0))
        inputs += int(stats.get("inputs", 0))
        seconds += float(stats.get("seconds", 0.0))
        engine.update(stats.get("engine", {}))
        builder.update(stats.get("builder", {}))
    return {"rows": rows, "inputs": inputs, "seconds": seconds, "engine": dict(engine), "builder": dict(builder)}


def summary_table(builder_cls: type[Builder[Any]], manifest: Manifest, where: Path) -> Table:
    """The end-of-run table: where the data went, how much, how fast, and the builder's own counters."""
    table = Table(title=f"{builder_cls.name} · {manifest.status}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    engine = manifest.engine_stats
    seconds = manifest.timings.get("build_s_total", 0.0)
    chunks = manifest.chunks or Chunks(total=0, done=0, size=0, built_this_run=0)
    table.add_row("dataset", str(where))
    table.add_row("inputs", str(manifest.rows_in))
    table.add_row("rows out", str(manifest.rows_out))
    test = manifest.splits.get(TEST_SPLIT)
    if test is not None:
        train = manifest.splits["train"]
        table.add_row(
            "held-out test split",
            f"{test.inputs} of {train.inputs + test.inputs} inputs (--test-fraction {test.fraction:g}, by id) → {test.rows} rows in {where / TEST_SPLIT}",
        )
    table.add_row("shards", f"{chunks.done}/{chunks.total} (built this run: {chunks.built_this_run})")
    table.add_row("tokens generated", str(engine.get("completion_tokens", 0)))
    table.add_row("generation tok/s", f"{engine.get('completion_tokens', 0) / seconds:.1f}" if seconds else "-")
    table.add_row("engine calls answered from cache", str(engine.get("cache_hits", 0)))
    table.add_row("failed requests", str(engine.get("failed_requests", 0)))
    for name, value in builder_cls.report(manifest.builder_stats):
        table.add_row(name, value)
    return table
