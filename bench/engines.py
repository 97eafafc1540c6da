"""Engine throughput on one workload, and how much of it the step-prefs builder keeps.

1. The workload: 32 short chat questions × n=4 samples × at most 64 tokens, T=0.7, on the embedded model,
   through judgeforge's transformers engine and through ``model.generate`` (do_sample, full vocabulary,
   one global random stream, ``num_return_sequences=n``, the same batches: as many rows decoded together
   as the engine's ``--batch-size``, from the same prompt tokens), each in float32 and bfloat16; and
   through judgeforge's vLLM engine in each dtype when ``import vllm`` works (run this script from
   ``.venv-vllm``; the main environment has no vLLM and skips it with a note). Printed: completion
   tokens/s of each (EOS counted, padding after it not), transformers engine ÷ ``model.generate`` per
   dtype, and transformers engine ÷ vLLM per dtype.
2. The builder ratio, for each judgeforge engine: a small step-prefs build through the real framework
   (request cache, judge, shards, manifest) with every engine call recorded (and the engine warmed up
   on their shapes), then exactly those calls replayed on the bare engine, then the build again in a
   fresh run dir: builder tokens/s (completion tokens ÷ the second build's wall time) ÷ raw tokens/s
   (the same calls' tokens ÷ the replay's wall time). vLLM's prefix cache is emptied before the replay
   and before each build, so no side starts with prompts cached by another.

Everything comes from this one run. The machine is shared and noisy: compare the ratios, not the
seconds; the load average and torch's thread count are printed with the figures. On an oversubscribed
machine, OpenMP's spinning threads can slow small matmuls a hundredfold (bf16 more than fp32);
``OMP_WAIT_POLICY=PASSIVE`` in the environment avoids that (both sides of every ratio run alike).
The default run takes about 4 minutes on 2 idle CPU cores (longer when other processes share them).

    .venv/bin/python bench/engines.py [--prompts 32] [--n 4] [--max-tokens 64] [--batch-size 32] [--threads N]
    .venv-vllm/bin/python bench/engines.py --vllm-args '{"max_model_len": 4096}'
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from judgeforge.builders.step_prefs import StepPrefsBuilder, StepPrefsConfig
from judgeforge.engines import EngineSpec, make_engine
from judgeforge.engines.base import Completion, Engine, ProgressFn, Request, SamplingParams
from judgeforge.engines.transformers import TransformersEngine
from judgeforge.executors.local import RunOptions, execute
from judgeforge.models import resolve_model
from judgeforge.sources import SourceConfig, load_problems

QUESTIONS = (
    "What is the capital of France?",
    "How do plants make their food?",
    "Give me one tip for sleeping better.",
    "Why is the sea salty?",
    "What is 12 times 7?",
    "Explain what a prime number is.",
    "Name three fruits that are red.",
    "How does a bicycle stay upright?",
    "What causes the seasons on Earth?",
    "Write a haiku about autumn leaves.",
    "Why do cats purr?",
    "What is the difference between weather and climate?",
    "How can I make my tea less bitter?",
    "Suggest a name for a small bakery.",
    "What does a compiler do?",
    "How many legs does a spider have?",
    "Why is the sky blue?",
    "Describe a rainbow to a child.",
    "What is a good way to learn a new language?",
    "How do vaccines work, in two sentences?",
    "What is the boiling point of water at sea level?",
    "Tell me a fun fact about octopuses.",
    "What should I pack for a day hike?",
    "Why do we have leap years?",
    "How does a refrigerator keep food cold?",
    "What is photosynthesis, briefly?",
    "Give me a simple recipe for pancakes.",
    "What is the tallest mountain in the world?",
    "How do bees make honey?",
    "What is an easy houseplant to care for?",
    "Why does ice float on water?",
    "What is the Pythagorean theorem?",
)


@dataclass
class Figure:
    """Completion tokens produced by one system in some wall time."""

    system: str
    dtype: str
    tokens: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


@dataclass
class Build:
    """The builder ratio of one engine: the build's figure, the replay's, and what the build asked."""

    engine: str
    built: Figure
    replayed: Figure
    calls: int
    in_engine_seconds: float


class Recorder(Engine):
    """Passes every call through to the real engine, remembering it and the time spent in it for the replay."""

    def __init__(self, inner: Engine) -> None:
        super().__init__(inner.model_id, inner.weights_hash, inner.tokenizer_hash, inner.numerics)
        self.name = inner.name
        self.inner = inner
        self.calls: list[tuple[list[Request], SamplingParams]] = []
        self.seconds = 0.0

    def describe(self) -> dict[str, object]:
        return self.inner.describe()

    def _generate(self, requests: list[Request], params: SamplingParams, progress: ProgressFn | None) -> list[list[Completion]]:
        self.calls.append((list(requests), params))
        start = time.perf_counter()
        results = self.inner.generate(requests, params, progress)
        self.seconds += time.perf_counter() - start
        return results


def workload(args: argparse.Namespace) -> tuple[list[Request], SamplingParams]:
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.prompts)]
    return [Request.chat(q, seed=i) for i, q in enumerate(questions)], SamplingParams(n=args.n, temperature=0.7, max_tokens=args.max_tokens, seed=0)


def run_engine(engine: Engine, dtype: str, requests: list[Request], params: SamplingParams) -> Figure:
    """The workload in one ``generate`` call, after a small warm-up call."""
    engine.generate(requests[:2], params.model_copy(update={"max_tokens": 4}))
    before = engine.stats.completion_tokens
    start = time.perf_counter()
    engine.generate(requests, params)
    return Figure(engine.name, dtype, engine.stats.completion_tokens - before, time.perf_counter() - start)


@torch.inference_mode()
def run_hf_generate(engine: TransformersEngine, requests: list[Request], params: SamplingParams) -> Figure:
    """The workload through ``model.generate`` on the engine's model and prompt tokens, in the engine's batches."""
    per_call = max(1, engine.batch_size // params.n)
    prompts = [engine.encode(r) for r in requests]

    def generate(group: list[list[int]], max_new_tokens: int) -> int:
        width = max(map(len, group))
        ids = torch.full((len(group), width), engine.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(group):  # left padding, as generate() expects
            ids[i, width - len(p) :], mask[i, width - len(p) :] = torch.tensor(p), 1
        out = engine.model.generate(
            input_ids=ids.to(engine.device),
            attention_mask=mask.to(engine.device),
            do_sample=True,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=0,
            max_new_tokens=max_new_tokens,
            num_return_sequences=params.n,
            pad_token_id=engine.pad_id,
        )
        tokens = 0
        for row in out[:, width:].tolist():
            ends = [i for i, t in enumerate(row) if t in engine.eos_ids]
            tokens += ends[0] + 1 if ends else len(row)
        return tokens

    generate(prompts[:2], 4)
    torch.manual_seed(params.seed)
    start = time.perf_counter()
    tokens = sum(generate(prompts[i : i + per_call], params.max_tokens) for i in range(0, len(prompts), per_call))
    return Figure("model.generate", engine.dtype, tokens, time.perf_counter() - start)


def builder_ratio(engine: Engine, dtype: str, args: argparse.Namespace) -> Build:
    """Build a small step-prefs run through a :class:`Recorder`, replay its calls on the bare engine, then build it again.

    The first build records the calls and warms the engine up on their shapes (vLLM compiles for the
    batch sizes it meets), so neither timed side pays a one-off cost the other does not: the replay and
    the second build (a fresh run dir, so nothing comes from the request cache) each start with vLLM's
    prefix cache emptied.
    """
    recorder = Recorder(engine)
    source = SourceConfig(source="gym:gsm_symbolic", limit=args.limit)
    problems = load_problems(source)
    config = StepPrefsConfig(
        num_candidates=args.num_candidates,
        max_steps=args.max_steps,
        max_step_tokens=args.max_step_tokens,
        judge_max_tokens=args.judge_max_tokens,
        max_rollbacks=args.max_rollbacks,
    )
    quiet = Console(stderr=True, quiet=True)
    reset_prefix_cache = getattr(getattr(engine, "llm", None), "reset_prefix_cache", None)

    def build() -> Figure:
        if callable(reset_prefix_cache):
            reset_prefix_cache()
        with tempfile.TemporaryDirectory() as out:
            before = engine.stats.completion_tokens
            start = time.perf_counter()
            roles: dict[str, Engine] = {"policy": recorder, "judge": recorder}
            execute(StepPrefsBuilder, config, source, problems, roles, RunOptions(out=Path(out), chunk_size=args.limit), console=quiet)
            return Figure("step-prefs builder", dtype, engine.stats.completion_tokens - before, time.perf_counter() - start)

    build()
    calls = list(recorder.calls)
    if callable(reset_prefix_cache):
        reset_prefix_cache()
    before = engine.stats.completion_tokens
    start = time.perf_counter()
    for requests, params in calls:
        engine.generate(requests, params)
    replayed = Figure(engine.name, dtype, engine.stats.completion_tokens - before, time.perf_counter() - start)
    recorder.calls, recorder.seconds = [], 0.0
    built = build()
    return Build(engine.name, built, replayed, len(recorder.calls), recorder.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32, help="workload prompts (short chat questions)")
    parser.add_argument("--n", type=int, default=4, help="samples per prompt")
    parser.add_argument("--max-tokens", type=int, default=64, help="completion budget per sample")
    parser.add_argument("--batch-size", type=int, default=32, help="rows decoded together, by the engine and by model.generate")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated dtypes to measure")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--vllm-args", type=json.loads, default={}, help="JSON object of extra vllm.LLM arguments")
    parser.add_argument("--limit", type=int, default=2, help="builder ratio: problems (one chunk)")
    parser.add_argument("--num-candidates", type=int, default=4, help="builder ratio: candidate steps per step")
    parser.add_argument("--max-steps", type=int, default=2, help="builder ratio: steps per problem")
    parser.add_argument("--max-step-tokens", type=int, default=32, help="builder ratio: tokens per candidate step")
    parser.add_argument("--judge-max-tokens", type=int, default=48, help="builder ratio: tokens per judgment")
    parser.add_argument("--max-rollbacks", type=int, default=0, help="builder ratio: tie rollbacks per problem (each one is another round)")
    parser.add_argument("--skip-builder", action="store_true", help="measure the workload only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(width=150)
    console.print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    requests, params = workload(args)
    dtypes = args.dtypes.split(",")
    if unknown := [d for d in dtypes if d not in ("float32", "bfloat16")]:
        parser.error(f"--dtypes: unknown {', '.join(unknown)} (float32, bfloat16)")
    ref = resolve_model("smollm2")
    figures: dict[tuple[str, str], Figure] = {}
    builds: list[Build] = []
    for dtype in dtypes:
        engine = TransformersEngine(ref, batch_size=args.batch_size, dtype=dtype)
        figures["engine", dtype] = run_engine(engine, dtype, requests, params)
        figures["generate", dtype] = run_hf_generate(engine, requests, params)
        if not args.skip_builder:
            builds.append(builder_ratio(engine, dtype, args))
        del engine
    if importlib.util.find_spec("vllm") is None:
        console.print("[yellow]vLLM is not installed here: its figures are skipped (run this script from .venv-vllm).[/]")
    else:
        for dtype in dtypes:
            try:
                vllm_engine = make_engine(EngineSpec.model_validate({"engine": "vllm", "dtype": dtype, "vllm_args": args.vllm_args}))
            except Exception as exc:  # noqa: BLE001 - a dtype vLLM cannot run is reported, the rest still measured
                console.print(f"[yellow]vLLM in {dtype} did not start: {type(exc).__name__}: {str(exc)[:200]}[/]")
                continue
            figures["vllm", dtype] = run_engine(vllm_engine, dtype, requests, params)
            if not args.skip_builder:
                builds.append(builder_ratio(vllm_engine, dtype, args))
            vllm_engine.close()
    console.print(f"load average after: {os.getloadavg()[0]:.2f}")

    table = Table(title=f"workload: {args.prompts} prompts × n={args.n} × ≤{args.max_tokens} tokens, T={params.temperature}, batch {args.batch_size}")
    for column in ("system", "dtype", "tokens", "seconds", "tok/s"):
        table.add_column(column, justify="left" if column in ("system", "dtype") else "right")
    for figure in figures.values():
        table.add_row(figure.system, figure.dtype, str(figure.tokens), f"{figure.seconds:.1f}", f"{figure.rate:.1f}")
    console.print(table)

    ratios = Table(title="ratios (this run)")
    for column in ("ratio", "value", "target"):
        ratios.add_column(column, justify="left" if column == "ratio" else "right")

    def ratio(name: str, top: Figure, bottom: Figure, target: float | None) -> None:
        value = top.rate / bottom.rate
        mark = "" if target is None else (" [green]met[/]" if value >= target else " [red]missed[/]")
        ratios.add_row(name, f"{value:.2f}", ("" if target is None else f"≥ {target}") + mark)

    for dtype in dtypes:
        if ("engine", dtype) in figures:
            ratio(f"transformers engine ÷ model.generate, {dtype}", figures["engine", dtype], figures["generate", dtype], 1.3)
    if ("engine", "bfloat16") in figures and ("engine", "float32") in figures:
        ratio("transformers engine bfloat16 ÷ float32", figures["engine", "bfloat16"], figures["engine", "float32"], None)
    for dtype in dtypes:
        if ("vllm", dtype) in figures:
            ratio(f"transformers engine ÷ vLLM, {dtype}", figures["engine", dtype], figures["vllm", dtype], 1.2 if dtype == "bfloat16" else None)
    for build in builds:
        ratio(f"step-prefs builder ÷ raw {build.engine} engine, {build.built.dtype}", build.built, build.replayed, 0.9)
    console.print(ratios)

    if builds:
        detail = Table(
            title=f"builder ratio: step-prefs, {args.limit} problems × {args.num_candidates} candidates × {args.max_steps} steps, then the same calls replayed"
        )
        for column in ("engine", "dtype", "calls", "build tokens", "build s", "in engine s", "replay tokens", "replay s"):
            detail.add_column(column, justify="left" if column in ("engine", "dtype") else "right")
        for b in builds:
            detail.add_row(
                b.engine,
                b.built.dtype,
                str(b.calls),
                str(b.built.tokens),
                f"{b.built.seconds:.1f}",
                f"{b.in_engine_seconds:.1f}",
                str(b.replayed.tokens),
                f"{b.replayed.seconds:.1f}",
            )
        console.print(detail)


if __name__ == "__main__":
    main()
