"""How much of the engine's speed survives the step-prefs builder: builder tok/s ÷ raw engine tok/s.

1. Build a small step-prefs dataset on the embedded model through the real framework (request cache,
   judge, shards, manifest), recording every engine call the builder makes.
2. Replay exactly those calls on the same engine, with no builder around it.
Both numbers come from this one run (the machine is noisy; compare ratios, not seconds).

    .venv/bin/python bench/engine_overhead.py [--limit 4] [--num-candidates 4] [--max-steps 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from judgeforge.builders.step_prefs import StepPrefsBuilder, StepPrefsConfig
from judgeforge.engines.base import Completion, Engine, ProgressFn, Request, SamplingParams
from judgeforge.engines.transformers import TransformersEngine
from judgeforge.executors.local import RunOptions, execute
from judgeforge.models import resolve_model
from judgeforge.sources import SourceConfig, load_problems


class Recorder(Engine):
    """Passes calls through to the real engine and remembers them for the replay."""

    def __init__(self, inner: Engine) -> None:
        super().__init__(inner.model_id, inner.weights_hash)
        self.name = inner.name
        self.inner = inner
        self.calls: list[tuple[list[Request], SamplingParams]] = []

    def _generate(self, requests: list[Request], params: SamplingParams, progress: ProgressFn | None) -> list[list[Completion]]:
        self.calls.append((list(requests), params))
        return self.inner.generate(requests, params, progress)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--num-candidates", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    engine = TransformersEngine(resolve_model("smollm2"), device="cpu", batch_size=args.batch_size)
    engine.generate([Request.chat("warm up")], SamplingParams(max_tokens=8))
    recorder = Recorder(engine)
    source = SourceConfig(source="gym:gsm_symbolic", limit=args.limit)
    problems = load_problems(source)
    config = StepPrefsConfig(num_candidates=args.num_candidates, max_steps=args.max_steps, max_step_tokens=64, judge_max_tokens=96)
    with tempfile.TemporaryDirectory() as out:
        tokens_before = engine.stats.completion_tokens
        start = time.perf_counter()
        manifest = execute(
            StepPrefsBuilder, config, source, problems, {"policy": recorder, "judge": recorder}, RunOptions(out=Path(out), chunk_size=args.limit)
        )
        builder_seconds = time.perf_counter() - start
        builder_tokens = engine.stats.completion_tokens - tokens_before

    tokens_before = engine.stats.completion_tokens
    start = time.perf_counter()
    for requests, params in recorder.calls:
        engine.generate(requests, params)
    raw_seconds = time.perf_counter() - start
    raw_tokens = engine.stats.completion_tokens - tokens_before

    builder_rate, raw_rate = builder_tokens / builder_seconds, raw_tokens / raw_seconds
    print(f"engine calls replayed        {len(recorder.calls)}")
    print(f"rows built                   {manifest.rows_out}")
    print(f"builder: {builder_tokens} tokens in {builder_seconds:.1f} s = {builder_rate:.1f} tok/s")
    print(f"raw engine: {raw_tokens} tokens in {raw_seconds:.1f} s = {raw_rate:.1f} tok/s")
    print(f"ratio builder/raw            {builder_rate / raw_rate:.3f}   (target >= 0.85)")


if __name__ == "__main__":
    main()
