"""What the Ray executor costs and gives: one step-prefs build, local, on 1 Ray worker and on 2, in one run.

The same build (the embedded model, float32, one problem per chunk) runs three times into fresh run dirs:
the local executor; ``--executor ray`` with one worker given every CPU (the local run's threads); and two
workers sharing the CPUs. Each figure is the build's generated tokens ÷ its wall time, model loading
included (each Ray worker loads its own engines; that is part of the cost). Printed: each figure and
the ratios Ray ÷ local. On this project's 2-core machine expect ~1× for two workers (the cores are the
limit, not the executor); the point is the overhead, Ray with one worker ≥ 0.9× local. The rows are
compared with the local run's: the one-worker run has the local run's threads and must be identical;
two workers have one thread each, and a float32 matmul's reduction order follows the thread count, so
there the texts must be identical and the largest difference of a float (a probability, a score) is
printed.

The Ray cluster is a local one started here (``ray.init(num_cpus=...)``); the machine is shared and
noisy, so compare the ratios, not the seconds.

    .venv/bin/python bench/scale.py [--limit 4] [--cpus N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from judgeforge.engines import EngineSpec
from judgeforge.executors.build import BuildOptions, run_build
from judgeforge.executors.ray import RayOptions
from judgeforge.sources import SourceConfig


def rows(run: Path) -> list[list[dict[str, object]]]:
    return [pq.read_table(shard).to_pylist() for shard in sorted((run / "data").glob("shard-*.parquet"))]


def float_gap(a: object, b: object) -> float | None:
    """The largest difference between the floats of ``a`` and ``b``, or None when anything else differs."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b)
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return None
        gaps = [float_gap(a[k], b[k]) for k in a]
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return None
        gaps = [float_gap(x, y) for x, y in zip(a, b, strict=True)]
    else:
        return 0.0 if a == b else None
    return None if any(g is None for g in gaps) else max((g for g in gaps if g is not None), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=4, help="problems (one chunk each)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the local Ray cluster and of the local run")
    parser.add_argument("--num-candidates", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=2)
    args = parser.parse_args()

    import ray
    import torch

    torch.set_num_threads(args.cpus)
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    quiet = Console(stderr=True, quiet=True)
    config = {"num_candidates": args.num_candidates, "max_steps": args.max_steps, "max_step_tokens": 32, "judge_max_tokens": 24, "tie_epsilon": 0.0}
    base = BuildOptions(
        builder="step-prefs",
        config=config,
        source=SourceConfig(source="gym:gsm_symbolic", limit=args.limit),
        engines={"policy": EngineSpec(dtype="float32")},
        chunk_size=1,
        seed=3,
    )
    setups = {
        "local": base,
        "ray, 1 worker": base.model_copy(update={"executor": "ray", "ray": RayOptions(num_workers=1, cpus_per_worker=args.cpus)}),
        "ray, 2 workers": base.model_copy(update={"executor": "ray", "ray": RayOptions(num_workers=2, cpus_per_worker=args.cpus / 2)}),
    }
    figures: dict[str, tuple[int, float]] = {}
    outputs: dict[str, list[list[dict[str, object]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, opts in setups.items():
            start = time.perf_counter()
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):  # not the end-of-run tables
                built = run_build(opts.model_copy(update={"out": Path(tmp) / name.replace(" ", "").replace(",", "-")}), console=quiet)
            seconds = time.perf_counter() - start
            tokens = built.manifest.tokens.completion if built.manifest.tokens else 0
            figures[name] = (tokens, seconds)
            outputs[name] = rows(built.root)
    ray.shutdown()

    console = Console()
    table = Table(title=f"step-prefs, {args.limit} problems × {args.num_candidates} candidates × {args.max_steps} steps, {args.cpus} CPUs")
    for column in ("executor", "tokens", "seconds", "tok/s"):
        table.add_column(column, justify="left" if column == "executor" else "right")
    for name, (tokens, seconds) in figures.items():
        table.add_row(name, str(tokens), f"{seconds:.1f}", f"{tokens / seconds:.1f}")
    console.print(table)
    rate = {name: tokens / seconds for name, (tokens, seconds) in figures.items()}
    ratios = Table(title="ratios (this run)")
    ratios.add_column("ratio")
    ratios.add_column("value", justify="right")
    ratios.add_column("target", justify="right")
    one = rate["ray, 1 worker"] / rate["local"]
    ratios.add_row("ray, 1 worker ÷ local", f"{one:.2f}", f"≥ 0.9 {'met' if one >= 0.9 else 'missed'}")
    ratios.add_row("ray, 2 workers ÷ local", f"{rate['ray, 2 workers'] / rate['local']:.2f}", "~1 on 2 cores")
    console.print(ratios)
    console.print(f"ray, 1 worker: rows identical to the local run's: {'yes' if outputs['ray, 1 worker'] == outputs['local'] else 'NO'}")
    gap = float_gap(outputs["ray, 2 workers"], outputs["local"])
    verdict = "NO: texts or counts differ" if gap is None else ("identical" if gap == 0 else f"texts identical, floats within {gap:.1e}")
    console.print(f"ray, 2 workers (1 thread each): rows against the local run's: {verdict}")


if __name__ == "__main__":
    main()
