"""``run_build``: one build as a library call, from typed options to a finished (or resumed) run dir.

``judgeforge build <builder>``, ``judgeforge score rprm`` and anything else that builds a dataset hand
:func:`run_build` a :class:`BuildOptions` — the builder's name and its own config, the source, the
engines per role, where the run goes, the seed, sharding and the cache — and get back the run dir and
its manifest. Each role gets the engine its :class:`~judgeforge.engines.EngineSpec` describes, and roles
with equal specs share one (a self-rewarding policy judges itself on the model it loaded once); the
specs go to the executor, which records them in the manifest. Nothing here knows about click: the
command line turns its options into a :class:`BuildOptions` (:func:`judgeforge.options.build_options`),
and a test or a script can build one directly.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from rich.console import Console

from judgeforge.builders import diagnose_build, load_builder
from judgeforge.builders.base import Builder, check_needs
from judgeforge.console import make_console
from judgeforge.engines import EngineSpec
from judgeforge.errors import Interrupted, UserError
from judgeforge.executors.local import POLICY, RunOptions, ShardSpec, Terminated, close_engines, execute, make_engines, role_specs, stop_signals, summary_table
from judgeforge.executors.ray import RayOptions, execute_ray, import_ray
from judgeforge.runs import Manifest
from judgeforge.sources import SourceConfig


class BuildOptions(BaseModel):
    """Everything one build needs: the builder and its config, the inputs, the engines, the run dir."""

    builder: str
    config: dict[str, Any] = Field(default_factory=dict, description="the builder's own options, checked by its Config")
    source: SourceConfig
    engines: dict[str, EngineSpec] = Field(
        default_factory=lambda: {POLICY: EngineSpec()}, description="role → its engine; a role not listed runs on the policy's"
    )
    out: Path = Path("runs")
    seed: int = 0
    shard: ShardSpec = ShardSpec()
    chunk_size: int = 16
    cache: Path | None = None
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="share of the inputs held out, by id, as the run's test split (builders with held_out_split)")
    command: list[str] = Field(default_factory=list, description="the command line recorded in the manifest (redacted there)")
    executor: Literal["local", "ray"] = "local"
    ray: RayOptions = Field(default_factory=RayOptions, description="the Ray workers, for executor='ray'")


@dataclass(frozen=True)
class Built:
    """A build's run dir and its manifest."""

    root: Path
    manifest: Manifest


def prepare_out(out: Path) -> None:
    """Fail early, with one line, when ``--out`` cannot be created or written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to --out '{out}': {exc.strerror or exc}") from exc


def validate_config(builder_cls: type[Builder[Any]], opts: BuildOptions) -> BaseModel:
    """The builder's own options, checked by its ``Config``; a one-line error naming the option."""
    if opts.test_fraction > 0 and not builder_cls.held_out_split:
        raise UserError(f"{opts.builder}: --test-fraction holds out judge pairs for eval judge; this builder's rows are not split")
    try:
        return builder_cls.Config.model_validate(opts.config)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"{opts.builder}: option '{'.'.join(str(p) for p in err['loc'])}': {err['msg']}") from exc


def run_build(opts: BuildOptions, console: Console | None = None) -> Built:
    """Build (or resume, or grow) ``opts.builder``'s run under ``opts.out``; print its progress and end-of-run table.

    SIGINT and SIGTERM stop it with its run marked ``interrupted`` and its shards kept
    (:class:`~judgeforge.errors.Interrupted` says how many and how to resume)."""
    builder_cls = load_builder(opts.builder)
    console = console or make_console(stderr=True)
    config = validate_config(builder_cls, opts)
    specs = role_specs(builder_cls.roles, opts.engines)
    if opts.executor == "ray":
        import_ray()  # before anything is loaded: a missing extra is one line
    prepare_out(opts.out)
    run_opts = RunOptions(
        out=opts.out,
        seed=opts.seed,
        shard=opts.shard,
        chunk_size=opts.chunk_size,
        cache=opts.cache,
        command=opts.command,
        engines=specs,
        test_fraction=opts.test_fraction,
    )
    with stop_signals():
        try:
            items = builder_cls.load_inputs(opts.source)
            check_needs(builder_cls, config, opts.source, items)  # before any model is loaded: a source that cannot work is one line
            manifest = _execute(builder_cls, config, opts, items, specs, run_opts, console)
        except (KeyboardInterrupt, Terminated) as stop:  # while loading, or once the chunks were built
            signum = signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT
            raise Interrupted(
                f"interrupted by {signum.name} outside the chunk loop; re-run the same command (shards already written are kept)", int(signum)
            ) from None
    where = opts.out / builder_cls.row_model.kind
    make_console().print(summary_table(builder_cls, manifest, where))
    if lines := diagnose_build(manifest):
        rows, inputs = manifest.rows_out or 0, manifest.rows_in or 0
        console.print(f"[yellow]warning:[/] the run kept {rows} row{'' if rows == 1 else 's'} of {inputs} input{'' if inputs == 1 else 's'}:")
        for line in lines:
            console.print(f"  {line}", markup=False, highlight=False)
    return Built(where, manifest)


def _execute(
    builder_cls: type[Builder[Any]],
    config: BaseModel,
    opts: BuildOptions,
    items: list[BaseModel],
    specs: dict[str, EngineSpec],
    run_opts: RunOptions,
    console: Console,
) -> Manifest:
    if opts.executor == "ray":
        return execute_ray(builder_cls, config, opts.source, items, specs, run_opts, opts.ray, console=console)
    start = time.perf_counter()
    engines = make_engines(builder_cls.roles, specs)
    timings = {"load_models_s": round(time.perf_counter() - start, 3)}
    try:
        return execute(builder_cls, config, opts.source, items, engines, run_opts, timings, console)
    finally:
        close_engines(engines.values())
