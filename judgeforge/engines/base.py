"""The engine contract every generator backend implements.

Builders never talk to a model directly: they hand a whole batch of :class:`Request` objects and one
:class:`SamplingParams` to ``Engine.generate`` and get back, for every request, ``n`` :class:`Completion`
objects. A request is a chat (``messages``) plus an optional assistant ``prefix`` that the model
*continues* — step-wise search needs this, because the previous steps are the start of the assistant
turn. Keeping the contract this small is what lets the same builder run on the in-process transformers
engine on a laptop, vLLM on a GPU node, or any OpenAI-compatible server.
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FinishReason = Literal["stop", "eos", "length", "error"]


class SamplingParams(BaseModel):
    """How to sample. ``seed`` is the base seed; a request may carry its own seed that overrides it."""

    model_config = ConfigDict(frozen=True)

    n: int = Field(1, ge=1, description="completions per request")
    temperature: float = Field(1.0, ge=0.0, description="0 means greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)
    stop: tuple[str, ...] = Field((), description="generation stops before any of these strings")
    seed: int = 0
    logprobs: bool = Field(False, description="return the log-probability of every generated token")
    top_logprobs: int = Field(0, ge=0, le=20, description="also return the k most likely tokens per step")


class Request(BaseModel):
    """One prompt: chat messages, optionally with the start of the assistant turn to continue."""

    model_config = ConfigDict(frozen=True)

    messages: tuple[dict[str, str], ...]
    prefix: str = ""
    seed: int | None = None

    @classmethod
    def chat(cls, user: str, prefix: str = "", seed: int | None = None, system: str | None = None) -> Request:
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user})
        return cls(messages=tuple(messages), prefix=prefix, seed=seed)

    def effective_seed(self, params: SamplingParams) -> int:
        return params.seed if self.seed is None else self.seed


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    top: dict[str, float] = Field(default_factory=dict)


class Completion(BaseModel):
    """One sampled continuation. ``logprobs`` is ``None`` when the engine (or server) did not return them."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: FinishReason = "stop"
    logprobs: list[TokenLogprob] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class EngineStats(BaseModel):
    """Counters every engine keeps; they end up in the run manifest."""

    requests: int = 0
    completions: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failed_requests: int = 0
    cache_hits: int = 0
    generate_seconds: float = 0.0

    def add(self, other: EngineStats) -> None:
        for name in type(self).model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


ProgressFn = Callable[[int], None]
"""Called with the number of completion tokens just generated, so progress bars can show tokens/s."""


NO_TOKENIZER = "none"
"""The ``tokenizer_hash`` of an engine that renders no prompt itself (a chat endpoint, a scripted fake)."""


class Engine(ABC):
    """A text generator. Subclasses implement :meth:`_generate`; this class keeps the counters.

    ``weights_hash`` identifies the weights and ``tokenizer_hash`` the tokenizer and chat template that
    turn a request into the model's tokens (:func:`judgeforge.models.hash_tokenizer`); ``numerics`` is
    the floating-point format the engine computes in (``float32``, ``bfloat16``; empty for an engine that
    does not choose it, like a remote server): the same weights in another format sample other tokens.
    All three are part of every request-cache key.
    """

    name: str = "engine"

    def __init__(self, model_id: str, weights_hash: str, tokenizer_hash: str = NO_TOKENIZER, numerics: str = "") -> None:
        self.model_id = model_id
        self.weights_hash = weights_hash
        self.tokenizer_hash = tokenizer_hash
        self.numerics = numerics
        self.stats = EngineStats()

    def generate(
        self,
        requests: Sequence[Request],
        params: SamplingParams,
        progress: ProgressFn | None = None,
    ) -> list[list[Completion]]:
        """Return ``params.n`` completions for every request, in request order."""
        if not requests:
            return []
        start = time.perf_counter()
        results = self._generate(list(requests), params, progress)
        self.stats.generate_seconds += time.perf_counter() - start
        self._count(results)
        return results

    def _count(self, results: list[list[Completion]]) -> None:
        self.stats.requests += len(results)
        for completions in results:
            if any(not c.ok for c in completions):
                self.stats.failed_requests += 1
            for c in completions:
                self.stats.completions += 1
                self.stats.prompt_tokens += c.prompt_tokens
                self.stats.completion_tokens += c.completion_tokens

    @abstractmethod
    def _generate(self, requests: list[Request], params: SamplingParams, progress: ProgressFn | None) -> list[list[Completion]]: ...

    def describe(self) -> dict[str, object]:
        """What the manifest records about this engine."""
        described: dict[str, object] = {"engine": self.name, "model": self.model_id, "weights_hash": self.weights_hash, "tokenizer_hash": self.tokenizer_hash}
        if self.numerics:
            described["dtype"] = self.numerics
        return described

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release servers, GPU memory or sockets; the default has nothing to release."""


def request_key(engine: Engine, request: Request, params: SamplingParams) -> str:
    """The request-cache key: engine, model weights, tokenizer and chat template, numerics, exact prompt, sampling params and seed."""
    payload = {
        "engine": engine.name,
        "weights": engine.weights_hash,
        "tokenizer": engine.tokenizer_hash,
        "numerics": engine.numerics,
        "messages": list(request.messages),
        "prefix": request.prefix,
        "seed": request.effective_seed(params),
        "params": params.model_dump(exclude={"seed"}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any parts (run seed, problem id, step, attempt, role...)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string; report whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    if cut < 0:
        return text, False
    return text[:cut], True
