"""Generation backends behind one contract (see :mod:`judgeforge.engines.base`), and their factory."""

from __future__ import annotations

from typing import Any, Literal

from judgeforge.engines.base import Completion, Engine, EngineStats, Request, SamplingParams, TokenLogprob
from judgeforge.errors import UserError

EngineKind = Literal["transformers", "vllm", "openai"]
ENGINE_KINDS: tuple[str, ...] = ("transformers", "vllm", "openai")


def make_engine(kind: str, model: str, **options: Any) -> Engine:
    """Build an engine for ``model`` (``smollm2``, a checkpoint path or Hub id; for openai the served name).

    Options: ``device``, ``batch_size``, ``trust_remote_code`` (transformers, vllm); ``base_url``,
    ``tokenizer``, ``max_concurrency`` (openai); ``gpu_memory_utilization`` (vllm).
    """
    from judgeforge.models import load_tokenizer, resolve_model

    trust = bool(options.get("trust_remote_code", False))
    if kind == "transformers":
        from judgeforge.engines.transformers import TransformersEngine

        return TransformersEngine(resolve_model(model), device=options.get("device"), batch_size=options.get("batch_size", 32), trust_remote_code=trust)
    if kind == "vllm":
        from judgeforge.engines.vllm import VLLMEngine

        return VLLMEngine(resolve_model(model), trust_remote_code=trust, gpu_memory_utilization=options.get("gpu_memory_utilization", 0.85))
    if kind == "openai":
        from judgeforge.engines.openai import OpenAIEngine

        base_url = options.get("base_url")
        if not base_url:
            raise UserError("--engine openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        tokenizer_spec = options.get("tokenizer") or model
        tokenizer = load_tokenizer(resolve_model(tokenizer_spec), trust)
        return OpenAIEngine(base_url=base_url, model=model, tokenizer=tokenizer, max_concurrency=options.get("max_concurrency", 8))
    raise UserError(f"unknown engine '{kind}': choose one of {', '.join(ENGINE_KINDS)}")


__all__ = ["ENGINE_KINDS", "Completion", "Engine", "EngineStats", "Request", "SamplingParams", "TokenLogprob", "make_engine"]
