"""The local executor: a builder over its inputs, chunk by chunk, on this machine; resumable and shardable.

Every build runs through :func:`execute`, so every dataset gets the same guarantees: its inputs are cut
into fixed chunks, each chunk becomes one ``data/shard-NNNNN.parquet`` written atomically (a killed run
never leaves half a shard), each shard carries its own stats in its Parquet metadata, and re-running
the same command skips finished shards and answers already-made engine calls from the request cache —
so a resumed run equals an uninterrupted one. ``--shard i/N`` builds the chunks ``c`` with
``c % N == i``: N machines writing into one shared run dir produce the same files one machine would,
each with its own request cache, and the one that completes the run writes its manifest. The framework
owns the progress bar and the end-of-run table; the manifest is a :class:`judgeforge.runs.Manifest`.
A run grows when the same command is given more inputs that start with the ones it was built from (a
larger ``--limit``, rows added at the end of a file): its shards are kept and the new inputs get new
chunks; any other change is refused, naming every option that differs. SIGINT and SIGTERM stop a build
with its run marked ``interrupted`` and its shards kept.
The pieces here (:func:`plan_run`, :func:`build_chunk`, :func:`finish_run`) are shared with the Ray
executor (:mod:`judgeforge.executors.ray`), so a run is the same run whichever executor builds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
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
from judgeforge.console import make_console
from judgeforge.engines import EngineSpec, make_engine
from judgeforge.engines.base import Engine, EngineStats
from judgeforge.engines.cache import CachedEngine, CompletionStore, RequestCache
from judgeforge.errors import Interrupted, UserError
from judgeforge.files import process_gone, process_started, this_host, utc_now
from judgeforge.runs import (
    MANIFEST,
    TEST_SPLIT,
    BuilderRef,
    Chunks,
    ExecutorRef,
    Growth,
    Manifest,
    ModelRef,
    ParentLink,
    RoleCalls,
    RunDir,
    SourceRef,
    SplitRef,
    Tokens,
    WorkerTiming,
    WriterRef,
    read_manifest,
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


def spec_identity(spec: EngineSpec) -> dict[str, Any]:
    """The options of a role's spec that decide what it generates (not how fast), URL credentials masked."""
    return {k: v for k, v in redact_urls(spec.model_dump(mode="json")).items() if k not in _NOT_IDENTITY}


def _model_ref(engine: Engine, spec: EngineSpec | None) -> dict[str, Any]:
    """What the fingerprint knows of a role: its model, weights, engine and numerics, and the spec options that decide its outputs."""
    ref: dict[str, Any] = {"model": engine.model_id, "weights_hash": engine.weights_hash, "engine": engine.name}
    if engine.numerics:
        ref["numerics"] = engine.numerics
    if spec is not None:
        ref["spec"] = spec_identity(spec)
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
        role: RoleIdentity(ref=_model_ref(e, specs.get(role)), describe=redact_urls({**e.describe(), **({"spec": masked[role]} if role in masked else {})}))
        for role, e in engines.items()
    }


def cache_path(root: Path, opts: RunOptions) -> Path:
    """The request cache of this process: ``--cache``, or the run dir's, one file per ``--shard`` process (SQLite is unsafe on network file systems)."""
    if opts.cache is not None:
        return opts.cache
    if opts.shard.count == 1:
        return root / "cache.sqlite"
    return root / f"cache.shard-{opts.shard.index}-of-{opts.shard.count}.sqlite"


REPEATED_FLAGS = {"vllm_args": "vllm-arg"}
"""A dict-valued spec field is a repeatable KEY=VALUE option, named in the singular."""


def role_flag(role: str, name: str) -> str:
    """The command-line option of engine-spec field ``name`` for ``role``: ``--dtype`` for the policy, ``--judge-dtype`` for the judge."""
    flag = REPEATED_FLAGS.get(name, name.replace("_", "-"))
    return f"--{flag}" if role == POLICY else f"--{role}-{flag}"


# --- the plan: which run, which chunks, and whether the run dir holds it (to resume or grow) ------------


def chunk_bounds(inputs: int, size: int, growth: Sequence[Growth] = ()) -> list[tuple[int, int]]:
    """The inputs ``[start, end)`` of each chunk: chunks of ``size`` over the inputs a run was first built on,
    then over each growth's new inputs, so a grown run keeps every chunk it had (a partial last chunk stays
    as it was) and its new inputs go into new chunks."""
    cuts = sorted({g.inputs_before for g in growth if 0 < g.inputs_before < inputs})
    bounds: list[tuple[int, int]] = []
    start = 0
    for end in [*cuts, inputs]:
        bounds += [(i, min(i + size, end)) for i in range(start, end, size)]
        start = end
    return bounds


def recipe_of(plan: dict[str, Any]) -> dict[str, Any]:
    """What decides a run's rows apart from how many inputs it has: a run resumes or grows only while this is unchanged.

    The source counts by its options (which file or task, which columns, split, seed), not by ``--limit``
    or by what it holds, which the inputs check covers."""
    source = plan.get("source") or {}
    recipe = {
        "builder": plan.get("builder"),
        "config": plan.get("config") or {},
        "source": {k: source.get(k) for k in SourceConfig.model_fields if k != "limit"},
        "models": plan.get("models") or {},
        "seed": plan.get("seed"),
        "chunk_size": plan.get("chunk_size"),
        "held_out": plan.get("held_out"),
    }
    normal: dict[str, Any] = json.loads(json.dumps(recipe, default=str))
    return normal


def _changes(old: Any, new: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any, Any]]:
    """Every leaf that differs between two JSON values, by path."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for key in sorted(set(old) | set(new)) for c in _changes(old.get(key), new.get(key), (*path, key))]
    return [] if old == new else [(path, old, new)]


def _option(path: tuple[str, ...], builder_cls: type[Builder[Any]]) -> str:
    """The option (or what else) a recipe path stands for: ``config.temperature`` → ``--temperature``."""
    head, rest = path[0], path[1:]
    if head == "config" and rest:
        field = builder_cls.Config.model_fields.get(rest[0])
        return f"--{((field.alias if field is not None else None) or rest[0]).replace('_', '-')}"
    if head == "source" and rest:
        return f"--{rest[0].replace('_', '-')}"
    if head in ("seed", "chunk_size"):
        return f"--{head.replace('_', '-')}"
    if head == "held_out":
        return "--test-fraction"
    if head == "builder":
        return f"{builder_cls.name} builder {'.'.join(rest)}"
    if head == "models" and rest:
        role, what = rest[0], rest[1:]
        if what[:1] == ("spec",) and len(what) > 1:
            return role_flag(role, what[1])
        if what == ("numerics",):
            return f"{role_flag(role, 'dtype')} (as the engine resolved it)"
        if what in (("model",), ("engine",)):
            return role_flag(role, what[0])
        return f"{role} {'.'.join(what) or 'model'}"
    return ".".join(path)


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 48 else text[:20] + "…"


def _reuse_hint(root: Path) -> str:
    caches = sorted(p.name for p in root.glob("cache*.sqlite"))
    where = ", ".join(str(root / c) for c in caches) if caches else str(root / "cache.sqlite")
    return (
        f"To build the new run and reuse every engine call the two have in common, give it another --out and the old "
        f"run's request cache: --out NEW_DIR --cache {where}"
    )


def _refuse(root: Path, reason: str) -> UserError:
    return UserError(f"{root} holds another run: {reason}\n{_reuse_hint(root)}")


def _growth_refusal(source: SourceConfig, previous: int, now: int) -> str:
    why = f"the first {previous} inputs the source gives now are not the {previous} the run was built from (a row was edited, inserted, removed or reordered"
    if source.source.startswith("gym:"):
        why += (
            "; reasoning-gym draws a task's problems for a dataset of max(--limit, 1000) problems, and some tasks (acre, "
            "list_functions) draw other first problems for another dataset size, so a gym run grows only within its first 1000 problems"
        )
    elif now > previous:
        why += "; or the builder marks each input using all of them, as rprm-*'s Yes/No-balanced subset does"
    return why + ")"


@dataclass
class Plan:
    """A build about to run: its run dir, its manifest so far, its chunks, and which of them this process builds;
    with ``--test-fraction``, the run dir of its held-out test split too."""

    run: RunDir
    manifest: Manifest
    chunks: list[list[BaseModel]]
    mine: list[int]
    todo: list[int]
    own_manifest: Path
    """Where this process records its run: ``manifest.json``, or its ``--shard`` process's own manifest."""
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


def this_writer() -> WriterRef:
    """This process as a run's writer: host, pid and start time."""
    return WriterRef(host=this_host(), pid=os.getpid(), started=process_started(os.getpid()))


def _busy(manifest: Manifest | None, path: Path) -> None:
    """Refuse to build a run another live process on this machine is building now."""
    writer = manifest.writer if manifest is not None else None
    if manifest is None or manifest.status != "running" or writer is None or writer.pid == os.getpid():
        return
    if writer.host == this_host() and not process_gone(writer.host, writer.pid, writer.started):
        raise UserError(f"{path.parent} is being built right now by process {writer.pid} (see {path.name}); wait for it to finish, or stop it and re-run")


def plan_run(
    builder_cls: type[Builder[Any]], config: BaseModel, source: SourceConfig, items: Sequence[BaseModel], roles: dict[str, RoleIdentity], opts: RunOptions
) -> Plan:
    """Fingerprint the build, check it against the run dir's manifest, and say what is left to build.

    The run dir may hold the same run (it resumes), the same run over fewer inputs that are exactly the first
    of these (it grows: its shards are kept and the new inputs get new chunks), or another run: an error
    that lists every option that differs and how to reuse the old run's engine calls in a new one.
    """
    kind = builder_cls.row_model.kind
    run = RunDir(opts.out / kind, kind)
    test_run = RunDir(run.root / TEST_SPLIT, kind) if opts.test_fraction > 0 else None
    fingerprint_items = inputs_fingerprint(items)
    plan: dict[str, Any] = {
        "builder": {"name": builder_cls.name, "version": builder_cls.version},
        "config": config.model_dump(mode="json"),
        "source": {**source.model_dump(mode="json"), "fingerprint": fingerprint_items, "inputs": len(items)},
        "models": {role: identity.ref for role, identity in roles.items()},
        "seed": opts.seed,
        "chunk_size": opts.chunk_size,
    }
    if opts.test_fraction > 0:  # only then: the fingerprints of runs without a test split stay as they were
        plan["held_out"] = {"test_fraction": opts.test_fraction, "by": "input id"}
    fingerprint = _fingerprint(plan)
    recipe = recipe_of(plan)
    own = run.root / (MANIFEST if opts.shard.count == 1 else f"manifest.shard-{opts.shard.index}-of-{opts.shard.count}.json")
    previous = run.read_manifest()
    _busy(read_manifest(own), own)
    growth = list(previous.growth) if previous is not None else []
    if previous is not None and previous.fingerprint != fingerprint:
        growth = check_previous(builder_cls, run.root, previous, recipe, source, items)
    bounds = chunk_bounds(len(items), opts.chunk_size, growth)
    chunks = [list(items[a:b]) for a, b in bounds]
    _check_shards(run, bounds, growth)
    total = len(chunks)
    mine = [c for c in range(total) if c % opts.shard.count == opts.shard.index]
    done = run.done(total)
    manifest = Manifest(
        judgeforge_version=__version__,
        kind=kind,
        # The run id names the recipe, not the number of inputs: a grown run's rows share one id with a run built at that size.
        run_id=(previous.run_id if previous is not None and previous.run_id else None) or _fingerprint(recipe)[:16],
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
        writer=this_writer(),
        **({"growth": growth} if growth else {}),
        **({"held_out": plan["held_out"]} if "held_out" in plan else {}),
    )
    if opts.shard.count > 1 and (previous is None or previous.fingerprint != fingerprint):
        # The run's manifest says what is being built (and any growth) before any new chunk is written; each
        # --shard process's own state (running, its writer) is in its own manifest.
        shared = manifest.model_copy(update={"status": "partial"})
        shared.writer = None
        shared.model_fields_set.discard("writer")
        run.write_manifest(shared)
    write_manifest(own, manifest)
    return Plan(run, manifest, chunks, mine, [c for c in mine if c not in done], own, test_run, opts.test_fraction)


def check_previous(
    builder_cls: type[Builder[Any]],
    root: Path,
    previous: Manifest,
    recipe: dict[str, Any],
    source: SourceConfig,
    items: Sequence[BaseModel],
    models_by_spec: bool = False,
) -> list[Growth]:
    """The run dir at ``root`` holds a run with another fingerprint: its growth history, with a new growth when these
    inputs extend it; an error naming what differs when they do not.

    ``models_by_spec`` compares each role by its options alone (``--dry-run``, which loads no engine to ask it).
    """
    growth = list(previous.growth)
    recorded = recipe_of(previous.dump())
    if models_by_spec:
        recorded, recipe = ({**r, "models": {role: {"spec": m.get("spec")} for role, m in r["models"].items()}} for r in (recorded, recipe))
    changes = _changes(recorded, recipe)
    if changes:
        lines = "\n".join(f"  {_option(path, builder_cls)}: {_shown(old)} → {_shown(new)}" for path, old, new in changes)
        raise _refuse(root, f"it was built with other options (recorded → now):\n{lines}\nRe-run with the recorded options to resume or grow it.")
    built_from = previous.source
    before, fingerprint = (built_from.inputs, built_from.fingerprint) if built_from is not None else (None, None)
    if before is None or fingerprint is None:
        raise _refuse(root, "its manifest does not record the inputs it was built from, so it cannot be resumed or grown")
    if len(items) < before:
        raise _refuse(root, f"it was built from {before} inputs and the source now gives {len(items)}; give --limit {before} (or more) to resume or grow it")
    if inputs_fingerprint(items[:before]) != fingerprint:
        raise _refuse(root, _growth_refusal(source, before, len(items)))
    if len(items) == before:
        return growth  # the same inputs (e.g. --limit given or dropped where it cut nothing): a resume
    size = previous.chunk_size or 1
    chunks_before = len(chunk_bounds(before, size, growth))
    if builder_cls.chunk_scoped and before % size:
        raise _refuse(
            root,
            f"{builder_cls.name} draws each chunk's rows from all of the chunk's inputs ({builder_cls.chunk_scoped}), and its last chunk holds "
            f"{before % size} of {size}: grown, it would hold other rows than a run built over {len(items)} inputs at once",
        )
    return [*growth, Growth(inputs_before=before, inputs_after=len(items), chunks_before=chunks_before, at=utc_now())]


def _check_shards(run: RunDir, bounds: list[tuple[int, int]], growth: Sequence[Growth]) -> None:
    """The shards a growth touches (the old last chunk and every new one) hold the inputs the plan puts in them."""
    first = min((g.chunks_before for g in growth), default=len(bounds)) - 1
    for c in range(max(first, 0), len(bounds)):
        if not run.chunk_path(c).exists():
            continue
        held = run.chunk_stats(c).get("inputs")
        start, end = bounds[c]
        if held is not None and held != end - start:
            raise UserError(
                f"{run.chunk_path(c)} holds {held} inputs where this run puts {end - start} (inputs {start}..{end - 1}): its manifest "
                "no longer describes its shards; build in another --out"
            )


class ChunkBuilt(BaseModel):
    """One chunk's rows (an Arrow table in the kind's schema) and the stats its shard carries; with a held-out
    split, the rows and stats its test split's shard carries (``held_out``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    table: pa.Table
    stats: dict[str, Any]
    held_out: ChunkBuilt | None = None


def role_engines(engines: dict[str, Engine], cache: CompletionStore) -> dict[str, CachedEngine]:
    """Each role's engine behind the request cache, one wrapper per role (so each role's calls are counted apart)."""
    return {role: CachedEngine(e, cache) for role, e in engines.items()}


def build_chunk(
    builder_cls: type[Builder[Any]], config: BaseModel, ctx: BuildContext, inner: Sequence[Engine], items: list[BaseModel], test_fraction: float = 0.0
) -> ChunkBuilt:
    """Run a fresh builder over one chunk; its rows and stats (rows, inputs, seconds, the engines' counters for
    this chunk, each role's calls, the builder's counters).

    With a ``test_fraction``, the chunk's held-out inputs (:func:`held_out`) are built apart, by a builder of
    their own, into the test split's rows and stats (``held_out``): nothing a builder does across a chunk
    (balancing, ties) mixes the two splits. The chunk's own stats count all its ``inputs`` (what the chunk
    holds) and how many of them were ``held_out_inputs``; every other counter is its own rows'.
    """
    if test_fraction > 0:
        test = [item for item in items if held_out(str(getattr(item, "id")), test_fraction)]  # noqa: B009 - every input has an id
        train = [item for item in items if not held_out(str(getattr(item, "id")), test_fraction)]  # noqa: B009
        built = build_chunk(builder_cls, config, ctx, inner, train)
        stats = {**built.stats, "inputs": len(items), "held_out_inputs": len(test)}
        return ChunkBuilt(table=built.table, stats=stats, held_out=build_chunk(builder_cls, config, ctx, inner, test))
    if not items:
        empty = {"rows": 0, "inputs": 0, "seconds": 0.0, "engine": {}, "calls": {}, "builder": {}}
        return ChunkBuilt(table=rows_to_table(builder_cls.row_model, []), stats=empty)
    before = {id(e): e.stats.model_copy() for e in inner}
    calls_before = {role: e.calls.model_copy() for role, e in ctx.engines.items() if isinstance(e, CachedEngine)}
    start = time.perf_counter()
    builder = builder_cls(config, ctx)
    rows = builder.build(items)
    seconds = time.perf_counter() - start
    delta = EngineStats()
    for e in inner:
        now, then = e.stats, before[id(e)]
        for name in EngineStats.model_fields:
            setattr(delta, name, getattr(delta, name) + getattr(now, name) - getattr(then, name))
    calls = {}
    for role, then in calls_before.items():
        now = ctx.engines[role].calls  # type: ignore[attr-defined]
        calls[role] = {name: getattr(now, name) - getattr(then, name) for name in RoleCalls.model_fields}
    stats = {
        "rows": len(rows),
        "inputs": len(items),
        "seconds": round(seconds, 3),
        "engine": delta.model_dump(),
        "calls": calls,
        "builder": dict(builder.stats),
    }
    return ChunkBuilt(table=rows_to_table(builder_cls.row_model, rows), stats=stats)


class BuildProgress:
    """The build's progress bar: inputs done, chunks, rows, rows/s, and prompt and generated tok/s since this run started."""

    def __init__(self, name: str, plan: Plan, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "inputs · {task.fields[chunks]} chunks · {task.fields[rows]} rows · {task.fields[rows_s]:.2f} rows/s · "
                "prompt {task.fields[prompt_s]:.1f} tok/s · generated {task.fields[tok_s]:.1f} tok/s"
            ),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.done = len(plan.mine) - len(plan.todo)
        self.total = len(plan.mine)
        self.rows = 0
        self.tokens = 0
        self.prompt_tokens = 0
        self.clock = time.perf_counter()
        self.task = self.progress.add_task(
            name,
            total=plan.inputs(plan.mine),
            completed=plan.inputs(c for c in plan.mine if c not in plan.todo),
            chunks=self._chunks(),
            rows=0,
            rows_s=0.0,
            tok_s=0.0,
            prompt_s=0.0,
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
        """``n`` tokens generated."""
        self.tokens += n
        self.progress.update(self.task, tok_s=self.tokens / self._elapsed())

    def add_prompt_tokens(self, n: int) -> None:
        """``n`` prompt tokens the engine read (prefilled)."""
        self.prompt_tokens += n
        self.progress.update(self.task, prompt_s=self.prompt_tokens / self._elapsed())

    def watch(self, engines: Iterable[CachedEngine]) -> None:
        """Count the tokens these engines read and generate as they go."""
        for engine in engines:
            engine.on_tokens = self.add_tokens
            engine.on_prompt_tokens = self.add_prompt_tokens

    def chunk_done(self, built: ChunkBuilt, count_inputs: bool = False, count_tokens: bool = False) -> None:
        """A chunk is written; ``count_inputs``/``count_tokens`` when they were not reported as they happened (a remote worker's)."""
        self.done += 1
        self.rows += built.stats["rows"]
        parts = [built] if built.held_out is None else [built, built.held_out]
        if count_inputs:
            self.inputs_done(sum(part.stats["inputs"] for part in parts))
        if count_tokens:
            self.add_tokens(sum(int(part.stats["engine"].get("completion_tokens", 0)) for part in parts))
            self.add_prompt_tokens(sum(int(part.stats["engine"].get("prompt_tokens", 0)) for part in parts))
        self.progress.update(self.task, chunks=self._chunks(), rows=self.rows, rows_s=self.rows / self._elapsed())


# --- stopping: SIGINT and SIGTERM mark the run interrupted ---------------------------------------------


class Terminated(BaseException):
    """SIGTERM, raised where the build is (as SIGINT raises KeyboardInterrupt) so the run can be marked before the process ends."""


@contextmanager
def stop_signals() -> Iterator[None]:
    """While a build runs in the main thread, SIGTERM raises :class:`Terminated` (restored afterwards)."""
    if not _main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    before = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def interrupt_run(plan: Plan, opts: RunOptions, stop: BaseException) -> Interrupted:
    """Record that the build was stopped (``interrupted``, with the shards kept) and say how to resume."""
    signum = signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT
    total = len(plan.chunks)
    done = len(plan.run.done(total))
    manifest = plan.manifest.model_copy(deep=True)
    manifest.status = "interrupted"
    manifest.finished_at = utc_now()
    manifest.chunks = Chunks(total=total, done=done, size=opts.chunk_size, built_this_run=len([c for c in plan.todo if plan.run.chunk_path(c).exists()]))
    manifest.shards = [p.name for p in plan.run.shards()]
    write_manifest(plan.own_manifest, manifest)
    return Interrupted(
        f"interrupted by {signal.Signals(signum).name}: {done}/{total} shards kept; re-run the same command to resume", int(signum), plan.run.root
    )


def mark_failed(plan: Plan) -> None:
    """Record that the build stopped on an error (the error itself is what the user reads); its shards are kept."""
    manifest = plan.manifest.model_copy(update={"status": "failed", "finished_at": utc_now()})
    manifest.shards = [p.name for p in plan.run.shards()]
    write_manifest(plan.own_manifest, manifest)


@contextmanager
def marking_stops(plan: Plan, opts: RunOptions) -> Iterator[None]:
    """Around a build's chunk loop: a build stopped by SIGINT or SIGTERM is recorded ``interrupted`` (and raises
    :class:`Interrupted`), one stopped by an error ``failed``."""
    try:
        yield
    except (KeyboardInterrupt, Terminated) as stop:
        raise interrupt_run(plan, opts, stop) from None
    except BaseException:
        mark_failed(plan)
        raise


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
    """Build (or resume, or grow) the run over ``items`` (problems, or a builder's own inputs) in this process; return its manifest."""
    console = console or make_console(stderr=True)
    plan = plan_run(builder_cls, config, source, items, identify(engines, opts.engines), opts)
    cache = RequestCache(cache_path(plan.run.root, opts))
    inner = distinct_engines(engines)
    cached = role_engines(engines, cache)
    build_seconds = 0.0
    try:
        with marking_stops(plan, opts), BuildProgress(builder_cls.name, plan, console) as progress:
            progress.watch(cached.values())
            ctx = BuildContext(dict(cached), opts.seed, plan.manifest.run_id or "", progress.inputs_done)
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
    manifest.calls = {role: RoleCalls.model_validate(calls) for role, calls in totals["calls"].items()}
    manifest.engine_stats = totals["engine"]
    manifest.builder_stats = totals["builder"]
    manifest.timings = {**timings, "build_s_total": round(totals["seconds"], 3)}
    manifest.shards = [p.name for p in run.shards()]
    manifest.executor = executor
    test = _test_manifest(plan, done) if plan.test_run is not None else None
    if test is not None:
        held = int(totals["held_out_inputs"])
        manifest.splits = {"train": SplitRef(inputs=int(totals["inputs"]) - held, rows=totals["rows"]), TEST_SPLIT: test.splits[TEST_SPLIT]}
    final = opts.shard.count > 1 and complete and run.claim_final_manifest(manifest.fingerprint or "")
    if test is not None and plan.test_run is not None and (opts.shard.count == 1 or final):
        plan.test_run.write_manifest(test)  # with the run's manifest, by the process that writes it
    write_manifest(plan.own_manifest, manifest)
    if final:
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
            "calls": {role: RoleCalls.model_validate(calls) for role, calls in totals["calls"].items()},
            "builder_stats": totals["builder"],
            "shards": [p.name for p in test_run.shards()],
            "writer": None,
        }
    )


def _sum_chunk_stats(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    engine: Counter[str] = Counter()
    builder: Counter[str] = Counter()
    calls: dict[str, Counter[str]] = {}
    rows = inputs = held = 0
    seconds = 0.0
    for stats in chunks:
        rows += int(stats.get("rows", 0))
        inputs += int(stats.get("inputs", 0))
        seconds += float(stats.get("seconds", 0.0))
        engine.update(stats.get("engine", {}))
        builder.update(stats.get("builder", {}))
        for role, counts in stats.get("calls", {}).items():
            calls.setdefault(role, Counter()).update(counts)
        held += int(stats.get("held_out_inputs", 0))
    summed = {"rows": rows, "inputs": inputs, "held_out_inputs": held, "seconds": seconds, "engine": dict(engine), "builder": dict(builder)}
    return {**summed, "calls": {r: dict(c) for r, c in calls.items()}}


def _rate(tokens: float, seconds: float) -> str:
    return f"{tokens / seconds:,.1f}" if seconds else "-"


def summary_table(builder_cls: type[Builder[Any]], manifest: Manifest, where: Path) -> Table:
    """The end-of-run table: where the data went, how much, how fast (prompt and generated tokens apart, per role), and the builder's own counters."""
    table = Table(title=f"{builder_cls.name} · {manifest.status}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    engine = manifest.engine_stats
    seconds = manifest.timings.get("build_s_total", 0.0)
    chunks = manifest.chunks or Chunks(total=0, done=0, size=0, built_this_run=0)
    prompt, generated = engine.get("prompt_tokens", 0), engine.get("completion_tokens", 0)
    table.add_row("dataset", str(where))
    table.add_row("inputs", str(manifest.rows_in) + (f" (grown from {manifest.growth[-1].inputs_before})" if manifest.growth else ""))
    table.add_row("rows out", str(manifest.rows_out))
    test = manifest.splits.get(TEST_SPLIT)
    if test is not None:
        train = manifest.splits["train"]
        table.add_row(
            "held-out test split",
            f"{test.inputs} of {train.inputs + test.inputs} inputs (--test-fraction {test.fraction:g}, by id) → {test.rows} rows in {where / TEST_SPLIT}",
        )
    table.add_row("shards", f"{chunks.done}/{chunks.total} (built this run: {chunks.built_this_run})")
    table.add_row("tokens: prompt / generated", f"{prompt:,} / {generated:,}")
    table.add_row("tok/s: prompt / generated", f"{_rate(prompt, seconds)} / {_rate(generated, seconds)}")
    for role, calls in manifest.calls.items():
        table.add_row(
            f"  {role}",
            f"{calls.requests:,} requests ({calls.cache_hits:,} from cache) · prompt {calls.prompt_tokens:,} · generated {calls.completion_tokens:,} tokens",
        )
    table.add_row("engine calls answered from cache", str(engine.get("cache_hits", 0)))
    table.add_row("failed requests", str(engine.get("failed_requests", 0)))
    for name, value in builder_cls.report(manifest.builder_stats):
        table.add_row(name, value)
    return table
