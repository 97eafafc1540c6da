"""The local executor: a builder over its inputs, chunk by chunk, on this machine; resumable and shardable.

Every build runs through :func:`execute`, so every dataset gets the same guarantees: its inputs are cut
into fixed chunks, each chunk becomes one ``data/shard-NNNNN.parquet`` written atomically (a killed run
never leaves half a shard), each shard carries its own stats in its Parquet metadata, and re-running
the same command skips finished shards and answers already-made engine calls from the request cache —
so a resumed run equals an uninterrupted one. ``--shard i/N`` builds the chunks ``c`` with
``c % N == i``: N machines writing into one shared run dir produce the same files one machine would.
The framework owns the progress bar and the end-of-run table; the manifest is a
:class:`judgeforge.runs.Manifest`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from judgeforge import __version__
from judgeforge.builders.base import BuildContext, Builder
from judgeforge.engines import EngineSpec
from judgeforge.engines.base import Engine, EngineStats
from judgeforge.engines.cache import CachedEngine, RequestCache
from judgeforge.errors import UserError
from judgeforge.files import utc_now
from judgeforge.runs import BuilderRef, Chunks, Manifest, ModelRef, RunDir, SourceRef, Tokens, redact, redact_urls, write_manifest
from judgeforge.schemas.base import rows_to_table
from judgeforge.sources import SourceConfig

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


def _distinct(engines: dict[str, Engine]) -> list[Engine]:
    seen: dict[int, Engine] = {}
    for engine in engines.values():
        seen.setdefault(id(engine), engine)
    return list(seen.values())


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("inputs · {task.fields[rows]} rows · {task.fields[rows_s]:.2f} rows/s · {task.fields[tok_s]:.0f} tok/s"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


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
    """Build (or resume) the run over ``items`` (problems, or a builder's own inputs); return its manifest."""
    console = console or Console(stderr=True)
    kind = builder_cls.row_model.kind
    run = RunDir(opts.out / kind, kind)
    specs = {role: redact_urls(spec.model_dump(mode="json")) for role, spec in opts.engines.items()}
    plan: dict[str, Any] = {
        "builder": {"name": builder_cls.name, "version": builder_cls.version},
        "config": config.model_dump(mode="json"),
        "source": {**source.model_dump(mode="json"), "fingerprint": inputs_fingerprint(items), "inputs": len(items)},
        "models": {role: _model_ref(e, specs.get(role)) for role, e in engines.items()},
        "seed": opts.seed,
        "chunk_size": opts.chunk_size,
    }
    fingerprint = _fingerprint(plan)
    previous = run.read_manifest()
    if previous is not None and previous.fingerprint != fingerprint:
        recorded = previous.dump()
        changed = [k for k in plan if recorded.get(k) != json.loads(json.dumps(plan[k], default=str))]
        raise UserError(
            f"{run.root} holds a run built with a different {', '.join(changed) or 'configuration'}; "
            "re-run with the same options to resume, or choose another --out"
        )
    chunks = [list(items[i : i + opts.chunk_size]) for i in range(0, len(items), opts.chunk_size)]
    total = len(chunks)
    mine = [c for c in range(total) if c % opts.shard.count == opts.shard.index]
    todo = [c for c in mine if c not in run.done(total)]
    manifest = Manifest(
        judgeforge_version=__version__,
        kind=kind,
        run_id=fingerprint[:16],
        fingerprint=fingerprint,
        builder=BuilderRef.model_validate(plan["builder"]),
        config=plan["config"],
        source=SourceRef.model_validate(plan["source"]),
        models={role: ModelRef.model_validate(ref) for role, ref in plan["models"].items()},
        seed=opts.seed,
        chunk_size=opts.chunk_size,
        engines={role: redact_urls({**e.describe(), **({"spec": specs[role]} if role in specs else {})}) for role, e in engines.items()},
        versions=library_versions(),
        command=redact(opts.command),
        status="running",
        started_at=(previous.started_at if previous else None) or utc_now(),
    )
    if opts.shard.count == 1:
        run.write_manifest(manifest)

    cache = RequestCache(opts.cache or run.root / "cache.sqlite")
    inner = _distinct(engines)
    wrapped = {id(e): CachedEngine(e, cache) for e in inner}
    cached: dict[str, Engine] = {role: wrapped[id(e)] for role, e in engines.items()}
    build_seconds = 0.0
    with _progress(console) as progress:
        finished = sum(len(chunks[c]) for c in mine if c not in todo)
        task = progress.add_task(builder_cls.name, total=sum(len(chunks[c]) for c in mine), completed=finished, rows=0, rows_s=0.0, tok_s=0.0)
        tokens = 0
        rows_written = 0
        clock = time.perf_counter()

        def on_tokens(n: int) -> None:
            nonlocal tokens
            tokens += n
            elapsed = max(time.perf_counter() - clock, 1e-9)
            progress.update(task, tok_s=tokens / elapsed)

        for engine in wrapped.values():
            engine.on_tokens = on_tokens
        ctx = BuildContext(cached, opts.seed, manifest.run_id or "", lambda n: progress.advance(task, n))
        for chunk in todo:
            before = {id(e): e.stats.model_copy() for e in inner}
            chunk_start = time.perf_counter()
            builder = builder_cls(config, ctx)
            rows = builder.build(chunks[chunk])
            seconds = time.perf_counter() - chunk_start
            build_seconds += seconds
            delta = EngineStats()
            for e in inner:
                now, then = e.stats, before[id(e)]
                for name in EngineStats.model_fields:
                    setattr(delta, name, getattr(delta, name) + getattr(now, name) - getattr(then, name))
            stats = {
                "rows": len(rows),
                "inputs": len(chunks[chunk]),
                "seconds": round(seconds, 3),
                "engine": delta.model_dump(),
                "builder": dict(builder.stats),
            }
            run.write_chunk(chunk, rows_to_table(builder_cls.row_model, rows), stats)
            rows_written += len(rows)
            elapsed = max(time.perf_counter() - clock, 1e-9)
            progress.update(task, rows=rows_written, rows_s=rows_written / elapsed)
    cache.close()

    done = run.done(total)
    totals = _sum_chunk_stats([run.chunk_stats(c) for c in sorted(done)])
    complete = len(done) == total
    manifest.status = "complete" if complete else "partial"
    manifest.finished_at = utc_now()
    manifest.chunks = Chunks(total=total, done=len(done), size=opts.chunk_size, built_this_run=len(todo))
    manifest.rows_in = len(items)
    manifest.rows_out = totals["rows"]
    manifest.tokens = Tokens(prompt=totals["engine"].get("prompt_tokens", 0), completion=totals["engine"].get("completion_tokens", 0))
    manifest.engine_stats = totals["engine"]
    manifest.builder_stats = totals["builder"]
    manifest.timings = {**(timings or {}), "build_s_this_run": round(build_seconds, 3), "build_s_total": round(totals["seconds"], 3)}
    manifest.shards = [p.name for p in run.shards()]
    if opts.shard.count > 1:
        write_manifest(run.root / f"manifest.shard-{opts.shard.index}-of-{opts.shard.count}.json", manifest)
    if complete or opts.shard.count == 1:
        run.write_manifest(manifest)
    if complete:
        builder_cls.finish(run.root)
    return manifest


def _sum_chunk_stats(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    engine: Counter[str] = Counter()
    builder: Counter[str] = Counter()
    rows = 0
    seconds = 0.0
    for stats in chunks:
        rows += int(stats.get("rows", 0))
        seconds += float(stats.get("seconds", 0.0))
        engine.update(stats.get("engine", {}))
        builder.update(stats.get("builder", {}))
    return {"rows": rows, "seconds": seconds, "engine": dict(engine), "builder": dict(builder)}


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
    table.add_row("shards", f"{chunks.done}/{chunks.total} (built this run: {chunks.built_this_run})")
    table.add_row("tokens generated", str(engine.get("completion_tokens", 0)))
    table.add_row("generation tok/s", f"{engine.get('completion_tokens', 0) / seconds:.1f}" if seconds else "-")
    table.add_row("engine calls answered from cache", str(engine.get("cache_hits", 0)))
    table.add_row("failed requests", str(engine.get("failed_requests", 0)))
    for name, value in builder_cls.report(manifest.builder_stats):
        table.add_row(name, value)
    return table
