"""What only a CUDA machine can test: vLLM's tensor parallelism. Skipped without two GPUs."""

from __future__ import annotations

import pytest

from judgeforge.engines import EngineSpec, make_engine
from judgeforge.engines.base import Request, SamplingParams
from judgeforge.engines.vllm import VLLMEngine

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(torch.cuda.device_count() < 2, reason="tensor parallelism needs two CUDA GPUs")]


def test_tensor_parallel_engine_samples_what_one_gpu_samples(vllm_engine: VLLMEngine) -> None:
    wide = make_engine(EngineSpec(engine="vllm", dtype="float32", vllm_args={"tensor_parallel_size": 2, "gpu_memory_utilization": 0.3}))
    try:
        requests = [Request.chat("Name three rivers.", seed=5), Request.chat("What is 7 * 6?", seed=6)]
        params = SamplingParams(temperature=0.0, max_tokens=16)
        assert [c[0].text for c in wide.generate(requests, params)] == [c[0].text for c in vllm_engine.generate(requests, params)]
    finally:
        wide.close()
