"""LoRA against full-weight DPO on the embedded model: seconds per optimiser step and peak memory (CPU or GPU).

One synthetic run of R-PRM preference pairs (conversational DPO: an analysis prompt, a right and a
wrong analysis of ~100 tokens each) is trained with ``judgeforge train dpo`` for the same steps, batch and
data three ways, each in its own process: full weights (a second copy of the model as the reference),
LoRA (``--lora-r``; the reference is the same model with its adapter disabled), and LoRA with
``--merge``. Printed: seconds per step (TRL's ``train_runtime`` ÷ steps, which leaves out loading and
saving), the LoRA ÷ full ratio, each process's peak resident memory, and the wall time of the whole
command (so the merge's cost shows). The machine is shared and noisy: compare the ratios; the load
average is printed with the figures.

    .venv/bin/python bench/lora.py [--steps 6] [--pairs 12] [--lora-r 16] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from judgeforge.files import write_json
from judgeforge.runs import RunDir
from judgeforge.schemas.base import RowMeta, rows_to_table
from judgeforge.schemas.rprm import RprmPrefsRow

WORDS = "the step adds the two numbers it was given and carries the ten into the next column before it states the total".split()


def prefs_run(root: Path, pairs: int) -> Path:
    """A finished rprm_prefs run of ``pairs`` analysis pairs, one problem each."""
    meta = RowMeta(builder="bench", builder_version="0", run_id="bench", model="bench")
    rows = []
    for i in range(pairs):
        analysis = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(80))
        rows.append(
            RprmPrefsRow(
                id=f"r{i}",
                source_id=f"p{i}",
                meta=meta,
                question=f"Tom has {i} apples and buys 4 more. How many apples does he have?",
                previous_steps=[f"Step 1: He starts with {i} apples."],
                now_step=f"Step 2: {i} + 4 = {i + 4}.",
                step_index=1,
                label="Yes",
                gold_answer=str(i + 4),
                num_analyses=2,
                num_matching=1,
                num_mismatching=1,
                num_malformed=0,
                chosen=f"{analysis} Verification: Is the step correct (Yes/No)? Yes",
                rejected=f"{analysis} Verification: Is the step correct (Yes/No)? No",
                chosen_verdict="Yes",
                rejected_verdict="No",
                chosen_forced_verdict=False,
                rejected_forced_verdict=False,
                chosen_index=0,
                rejected_index=1,
            )
        )
    RunDir(root, "rprm_prefs").write_chunk(0, rows_to_table(RprmPrefsRow, rows), {})
    write_json(root / "manifest.json", {"status": "complete", "kind": "rprm_prefs", "run_id": "bench"})
    return root


def train(run: Path, out: Path, steps: int, device: str, *options: str) -> dict[str, float]:
    """One ``judgeforge train dpo`` in its own process: seconds per step, peak memory (MiB), wall seconds."""
    args = ["train", "dpo", "--data", str(run), "--out", str(out), "--max-steps", str(steps), "--batch-size", "2", "--micro-batch-size", "2"]
    args += ["--max-length", "512", "--logging-steps", "1", "--device", device, *options]
    script = (
        "import resource, runpy, sys; sys.argv = ['judgeforge', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('judgeforge.cli', run_name='__main__')\n"
        "finally:\n    print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
    )
    clock = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    wall = time.perf_counter() - clock
    if done.returncode != 0:
        raise SystemExit(f"judgeforge {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    peak = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK_RSS_KIB"))
    manifest = json.loads((out / "training_manifest.json").read_text())
    runtime = next(h["train_runtime"] for h in manifest["log_history"] if "train_runtime" in h)
    return {"s_per_step": runtime / manifest["steps"], "peak_mib": peak / 1024, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = prefs_run(Path(tmp) / "rprm_prefs", opts.pairs)
        lora = ["--lora-r", str(opts.lora_r), "--lora-target-modules", "all-linear"]
        results = {
            "full": train(run, Path(tmp) / "full", opts.steps, opts.device),
            f"LoRA r={opts.lora_r}": train(run, Path(tmp) / "lora", opts.steps, opts.device, *lora),
            f"LoRA r={opts.lora_r} --merge": train(run, Path(tmp) / "merged", opts.steps, opts.device, *lora, "--merge"),
        }
    table = Table(title=f"DPO on smollm2 · {opts.steps} steps × 2 pairs · {opts.device} · load average {os.getloadavg()[0]:.1f}")
    for name in ("training", "s / step", "÷ full", "peak memory (MiB)", "wall s (load, train, save)"):
        table.add_column(name, justify="left" if name == "training" else "right")
    full = results["full"]["s_per_step"]
    for name, r in results.items():
        table.add_row(name, f"{r['s_per_step']:.2f}", f"{r['s_per_step'] / full:.2f}", f"{r['peak_mib']:.0f}", f"{r['wall']:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
