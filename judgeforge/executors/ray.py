"""The Ray executor: one build spread over a pool of Ray actors, with the guarantees of a local run.

When one machine is not enough, the chunks of :mod:`judgeforge.executors.local` become Ray actor tasks.
Each actor (a :class:`ChunkWorker`) loads the engines of the builder's roles once — the transformers
engine on CPU, vLLM on the GPUs Ray gives it — and builds many chunks with them, so model loading and
prefix caching are paid once per worker; a chunk (so a problem's whole step search) stays on one actor.
Everything that makes a run a run stays with the driver: it fingerprints the build from what the
workers loaded, writes every finished chunk with the same atomic shard writer, and writes the
manifest. The request cache is the run dir's one SQLite file, owned by one actor pinned to the driver's
node (:class:`CacheStore`), so workers anywhere share it and a retried or resumed chunk answers the
calls already made from it. The per-request seeds make a sample independent of its batch-mates and
of its worker, so any number of workers writes exactly the rows a local build writes.

Faults: a worker that dies (killed, out of memory, its node lost) is restarted by Ray and its chunk
retried (``max_restarts``/``max_task_retries``); a chunk that raises fails the build with one line
naming the chunk (an exception is not retried: bad input fails the same way every time). A driver that
is stopped takes its workers with it; re-running the command resumes from the shards and the cache.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, Field
from rich.console import Console

from judgeforge.builders.base import BuildContext, Builder
from judgeforge.console import make_console
from judgeforge.engines import EngineSpec
from judgeforge.engines.base import Completion, Engine
from judgeforge.engines.cache import RequestCache
from judgeforge.errors import UserError
from judgeforge.executors.local import (
    BuildProgress,
    ChunkBuilt,
    RoleIdentity,
    RunOptions,
    build_chunk,
    cache_path,
    close_engines,
    distinct_engines,
    finish_run,
    identify,
    make_engines,
    marking_stops,
    plan_run,
    role_engines,
    torch_threads,
)
from judgeforge.runs import ExecutorRef, Manifest, WorkerTiming, redact_urls
from judgeforge.sources import SourceConfig

INSTALL = "pip install 'judgeforge[ray]'"
_RESTARTS = 3
"""How many times Ray restarts a dead worker (and retries the chunk it was building) before the build fails."""


class RayOptions(BaseModel):
    """Where the workers run and what each one gets."""

    address: str | None = Field(None, description="the cluster to join ('auto': the one `ray start` made here); none starts a local one")
    num_workers: int | None = Field(None, ge=1, description="workers (default: as many as the cluster's GPUs, or CPUs, allow)")
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(0.0, ge=0)


def import_ray() -> ModuleType:
    """``ray``, or one line saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise UserError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from exc
    return ray


class CacheStore:
    """The run's request cache as a Ray actor on the driver's node: one process writes the SQLite file."""

    def __init__(self, path: str) -> None:
        self.cache = RequestCache(Path(path))

    def get_many(self, keys: Sequence[str]) -> dict[str, list[Completion]]:
        return self.cache.get_many(keys)

    def put_many(self, items: dict[str, list[Completion]]) -> None:
        self.cache.put_many(items)

    def close(self) -> None:
        self.cache.close()


class RemoteCache:
    """A worker's view of the :class:`CacheStore`: the request cache's two calls, each one round trip."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def get_many(self, keys: Sequence[str]) -> dict[str, list[Completion]]:
        found: dict[str, list[Completion]] = import_ray().get(self.store.get_many.remote(list(keys)))
        return found

    def put_many(self, items: dict[str, list[Completion]]) -> None:
        if items:
            import_ray().get(self.store.put_many.remote(items))


class ChunkWorker:
    """A Ray actor: the builder's engines, loaded once, building the chunks the driver sends it."""

    def __init__(self, builder_cls: type[Builder[Any]], config: BaseModel, specs: dict[str, EngineSpec], store: str, threads: int | None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        start = time.perf_counter()
        self.builder_cls, self.config, self.specs = builder_cls, config, specs
        self.engines = make_engines(builder_cls.roles, specs)
        self.load_s = round(time.perf_counter() - start, 3)
        self.inner = distinct_engines(self.engines)
        cache = RemoteCache(import_ray().get_actor(store))  # by name: a restarted worker finds it again
        self.cached: dict[str, Engine] = dict(role_engines(self.engines, cache))

    def identity(self) -> tuple[dict[str, RoleIdentity], WorkerTiming]:
        """What this worker's engines are (every worker must agree) and where it runs."""
        timing = WorkerTiming(worker=-1, node=socket.gethostname(), pid=os.getpid(), threads=torch_threads(), load_models_s=self.load_s)
        return identify(self.engines, self.specs), timing

    def build(self, items: list[BaseModel], seed: int, run_id: str, test_fraction: float = 0.0) -> ChunkBuilt:
        return build_chunk(self.builder_cls, self.config, BuildContext(self.cached, seed, run_id), self.inner, items, test_fraction)

    def close(self) -> None:
        close_engines(self.engines.values())


def _connect(ray: ModuleType, options: RayOptions) -> None:
    if ray.is_initialized():
        return
    try:
        ray.init(address=options.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except ConnectionError as exc:
        raise UserError(f"--ray-address {options.address}: cannot join that Ray cluster: {exc}") from exc


def _worker_count(ray: ModuleType, options: RayOptions) -> int:
    if options.num_workers is not None:
        return options.num_workers
    resources = ray.cluster_resources()
    if options.gpus_per_worker > 0:
        return max(1, int(resources.get("GPU", 0) // options.gpus_per_worker))
    return max(1, int(resources.get("CPU", 1) // options.cpus_per_worker))


def _last_line(exc: BaseException) -> str:
    """The line of an error (a remote traceback's last) that says what went wrong."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _failure(chunk: int, exc: BaseException) -> UserError:
    """One line for a chunk that failed: the builder's own error, or the worker's death after its retries."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return UserError(f"chunk {chunk} failed: {_last_line(cause)}")
    return UserError(f"chunk {chunk} failed: its worker died {_RESTARTS + 1} times ({_last_line(exc)})")


def execute_ray(
    builder_cls: type[Builder[Any]],
    config: BaseModel,
    source: SourceConfig,
    items: Sequence[BaseModel],
    specs: dict[str, EngineSpec],
    opts: RunOptions,
    options: RayOptions,
    timings: dict[str, float] | None = None,
    console: Console | None = None,
) -> Manifest:
    """Build (or resume) the run over ``items`` on a pool of Ray workers; return its manifest."""
    ray = import_ray()
    console = console or make_console(stderr=True)
    _connect(ray, options)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    chunks = -(-len(items) // opts.chunk_size)  # at least as many as the plan has (a grown run may have one more)
    count = min(_worker_count(ray, options), max(1, len([c for c in range(chunks) if c % opts.shard.count == opts.shard.index])))
    kind = builder_cls.row_model.kind
    store_name = f"judgeforge-cache-{uuid.uuid4().hex}"
    store = (
        ray.remote(CacheStore)
        .options(name=store_name, num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False))
        .remote(str(cache_path(opts.out / kind, opts)))
    )
    actor = ray.remote(ChunkWorker).options(
        num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker, max_restarts=_RESTARTS, max_task_retries=_RESTARTS
    )
    threads = max(1, int(options.cpus_per_worker)) if options.gpus_per_worker == 0 else None
    start = time.perf_counter()
    workers = [actor.remote(builder_cls, config, specs, store_name, threads) for _ in range(count)]
    try:
        with console.status(f"starting {count} Ray worker{'s' if count > 1 else ''} (each loads its engines)"):
            try:
                found = ray.get([w.identity.remote() for w in workers])
            except ray.exceptions.RayError as exc:
                raise UserError(f"a Ray worker could not start: {_last_line(getattr(exc, 'cause', None) or exc)}") from exc
        identities = [identity for identity, _ in found]
        if any(i != identities[0] for i in identities[1:]):
            raise UserError("the Ray workers loaded different models (their weights or tokenizers differ): every node must see the same checkpoint")
        per_worker = [timing.model_copy(update={"worker": n}) for n, (_, timing) in enumerate(found)]
        timings = {**(timings or {}), "load_models_s": round(time.perf_counter() - start, 3)}
        plan = plan_run(builder_cls, config, source, items, identities[0], opts)
        run_id = plan.manifest.run_id or ""
        clock = time.perf_counter()
        with marking_stops(plan, opts), BuildProgress(builder_cls.name, plan, console) as progress:
            waiting = deque(plan.todo)
            idle = list(range(count))
            running: dict[Any, tuple[int, int]] = {}
            while waiting or running:
                while waiting and idle:
                    n, chunk = idle.pop(), waiting.popleft()
                    running[workers[n].build.remote(plan.chunks[chunk], opts.seed, run_id, opts.test_fraction)] = (chunk, n)
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    chunk, n = running.pop(ref)
                    try:
                        built: ChunkBuilt = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        raise _failure(chunk, exc) from exc
                    plan.write(chunk, built)
                    per_worker[n].chunks += 1
                    seconds = built.stats["seconds"] + (built.held_out.stats["seconds"] if built.held_out else 0.0)
                    per_worker[n].build_s = round(per_worker[n].build_s + seconds, 3)
                    progress.chunk_done(built, count_inputs=True, count_tokens=True)
                    idle.append(n)
        executor = ExecutorRef(name="ray", workers=count, address=redact_urls(options.address) if options.address else None, per_worker=per_worker)
        return finish_run(builder_cls, plan, opts, {**timings, "build_s_this_run": round(time.perf_counter() - clock, 3)}, executor)
    finally:
        _stop(ray, workers, store)


def _stop(ray: ModuleType, workers: list[Any], store: Any) -> None:
    """Close the workers' engines (a vLLM engine shuts its own processes down), then end the actors."""
    closing = [w.close.remote() for w in workers]
    ray.wait(closing, num_returns=len(closing), timeout=60)
    for worker in workers:
        ray.kill(worker)
    ray.get(store.close.remote())
    ray.kill(store)
