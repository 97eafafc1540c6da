"""The vLLM engine on the embedded model. Needs a CUDA GPU and `judgeforge[vllm]`; skipped otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from judgeforge.engines.base import Request, SamplingParams
from judgeforge.models import ModelRef

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="vLLM engine needs a CUDA GPU")]


@pytest.fixture(scope="module")
def vllm_engine(smollm2: ModelRef) -> Iterator[Any]:
    pytest.importorskip("vllm", reason="pip install 'judgeforge[vllm]'")
    from judgeforge.engines.vllm import VLLMEngine

    engine = VLLMEngine(smollm2, gpu_memory_utilization=0.3)
    yield engine
    engine.close()


def test_prefix_continuation_stop_and_n(vllm_engine: Any) -> None:
    request = Request.chat("List the numbers from one to ten, one per line.", prefix="1\n2\n3\n", seed=1)
    params = SamplingParams(n=3, temperature=0.8, max_tokens=16, stop=("\n",))
    [completions] = vllm_engine.generate([request], params)
    assert len(completions) == 3
    assert all("\n" not in c.text and c.finish_reason in ("stop", "eos", "length") for c in completions)


def test_per_request_seed_is_reproducible_and_logprobs_come_back(vllm_engine: Any) -> None:
    params = SamplingParams(n=2, temperature=1.0, max_tokens=12, logprobs=True, top_logprobs=2)
    target = Request.chat("Write one short sentence about rivers.", seed=42)
    alone = vllm_engine.generate([target], params)[0]
    crowded = vllm_engine.generate([Request.chat("Say hi.", seed=3), target], params)[1]
    assert [c.text for c in alone] == [c.text for c in crowded]
    assert alone[0].logprobs is not None and len(alone[0].logprobs) == alone[0].completion_tokens
