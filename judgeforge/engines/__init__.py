"""Generation backends behind one contract (see :mod:`judgeforge.engines.base`), and their factory.

An :class:`EngineSpec` says which backend runs one role (the policy, the judge...) and how; a builder
gets one engine per role it declares, so the policy can sample on local vLLM while the judge is a
larger model behind an OpenAI-compatible server. :func:`make_engine` is the only place that turns a
spec into a live engine.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from judgeforge.engines.base import Completion, Engine, EngineStats, Request, SamplingParams, TokenLogprob
from judgeforge.errors import UserError

EngineKind = Literal["transformers", "vllm", "openai"]
ENGINE_KINDS: tuple[str, ...] = ("transformers", "vllm", "openai")
DType = Literal["auto", "float32", "bfloat16"]
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16")


class EngineSpec(BaseModel):
    """One role's engine: the backend, the model, and the options of that backend.

    Options a backend does not use are ignored by it (``base_url`` means nothing to transformers).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: EngineKind = Field("transformers", description="generation backend: transformers or vllm (in-process), openai (a server at --base-url)")
    model: str = Field("smollm2", description="'smollm2', a local checkpoint, a Hub id, or (openai) the served model name")
    base_url: str | None = Field(None, description="openai: the server's URL, e.g. http://127.0.0.1:8000/v1")
    tokenizer: str | None = Field(None, description="openai: tokenizer/chat template (default: the model)")
    max_concurrency: int = Field(8, ge=1, description="openai: requests in flight")
    batch_size: int = Field(32, ge=1, description="transformers: sequences decoded together")
    device: str | None = Field(None, description="transformers: cuda if available, else cpu")
    dtype: DType = Field("auto", description="transformers and vllm: auto = bfloat16 on GPU or a CPU with native bf16 matmul, else float32")
    trust_remote_code: bool = Field(False, description="allow custom model code from the checkpoint")
    vllm_args: dict[str, Any] = Field(default_factory=dict, description="vllm: extra vllm.LLM engine arguments, passed through")


def make_engine(spec: EngineSpec) -> Engine:
    """Build the engine ``spec`` describes."""
    from judgeforge.models import load_tokenizer, resolve_model

    if spec.engine == "transformers":
        from judgeforge.engines.transformers import TransformersEngine

        return TransformersEngine(
            resolve_model(spec.model), device=spec.device, batch_size=spec.batch_size, dtype=spec.dtype, trust_remote_code=spec.trust_remote_code
        )
    if spec.engine == "vllm":
        from judgeforge.engines.vllm import VLLMEngine

        return VLLMEngine(resolve_model(spec.model), dtype=spec.dtype, trust_remote_code=spec.trust_remote_code, **spec.vllm_args)
    if spec.engine == "openai":
        from judgeforge.engines.openai import OpenAIEngine

        if not spec.base_url:
            raise UserError("--engine openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        tokenizer = load_tokenizer(resolve_model(spec.tokenizer or spec.model), spec.trust_remote_code)
        return OpenAIEngine(base_url=spec.base_url, model=spec.model, tokenizer=tokenizer, max_concurrency=spec.max_concurrency)
    raise UserError(f"unknown engine '{spec.engine}': choose one of {', '.join(ENGINE_KINDS)}")


__all__ = [
    "DTYPES",
    "ENGINE_KINDS",
    "Completion",
    "DType",
    "Engine",
    "EngineSpec",
    "EngineStats",
    "Request",
    "SamplingParams",
    "TokenLogprob",
    "make_engine",
]
