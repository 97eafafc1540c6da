"""Generation through any OpenAI-compatible HTTP server (vLLM serve, SGLang, TGI, llama.cpp, ``transformers serve``).

A build can then run on a model served elsewhere (a GPU box, a shared inference cluster) while keeping
the engine contract of :mod:`judgeforge.engines.base`. The contract needs things the OpenAI API does not
guarantee, so this engine bridges the gaps itself:

* **Assistant-prefix continuation.** A chat endpoint always opens a fresh assistant turn, so with a
  tokenizer the prompt is rendered locally by :func:`judgeforge.chat.render_prompt` (the same text every
  other engine sees) and sent to ``/v1/completions``. Without a tokenizer only prefix-free requests can
  run, through ``/v1/chat/completions``.
* **``n`` and ``logprobs`` are optional for servers.** ``transformers serve`` ignores both. Missing
  samples are fetched with further requests, each with its own derived seed; missing logprobs come back
  as ``Completion.logprobs = None`` and are counted, so the manifest says the server did not honour them.
* **Unreliable networks and busy servers.** Requests run concurrently under a bound, are retried with
  exponential backoff and jitter on 429, 5xx, timeouts and connection errors (honouring ``Retry-After``),
  and a request that still fails becomes completions with ``error`` set, never an exception for the batch.
* **A remote model has no weights hash.** Its identity (``weights_hash``, part of every request-cache key
  and of the run's fingerprint) is the URL, the served name and what ``GET /v1/models`` reports about it:
  the entry's ``id``, ``created``, ``owned_by``, ``root``, ``parent``, ``max_model_len`` and llama.cpp's
  ``meta``/``path``, where present; the local tokenizer and chat template, when there is one, are hashed
  as for the other engines. vLLM, SGLang and llama.cpp stamp ``created`` with the time of the
  request, so a ``created`` from the last day counts only if a second read a second later repeats it;
  ``transformers serve`` reports 0, or the Hub cache date. A server that does not list the served name
  (llama.cpp answers any name with its one model: pass the id it lists) is known by URL and name alone,
  and weights swapped behind identical metadata (vLLM reports the same name and path) go unnoticed.

The API key (argument or ``OPENAI_API_KEY``) only ever lives in the HTTP client's headers: it is not
stored on the engine, logged, or reported by :meth:`OpenAIEngine.describe`.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx

from judgeforge.chat import render_prompt
from judgeforge.engines.base import (
    NO_TOKENIZER,
    Completion,
    Engine,
    FinishReason,
    ProgressFn,
    Request,
    SamplingParams,
    TokenLogprob,
    derive_seed,
    truncate_at_stop,
)
from judgeforge.errors import UserError
from judgeforge.models import hash_tokenizer

_RETRIED_STATUS = frozenset({429}) | frozenset(range(500, 600))
_ERROR_BODY_CHARS = 200
_MODEL_FIELDS = ("id", "created", "owned_by", "root", "parent", "max_model_len", "meta", "path")
"""The fields of a ``/v1/models`` entry that describe the model (not ``status``, ``permission``...)."""
_RECENT_S = 86_400.0
_RECHECK_S = 1.1


class _RequestFailed(Exception):
    """One HTTP call that failed for good (retries exhausted, not retryable, or an unreadable answer)."""


@dataclass(frozen=True)
class _Call:
    """One HTTP call: ``n`` samples of request ``request``, filling sample slots from ``first_sample`` on."""

    request: int
    first_sample: int
    n: int
    seed: int


def _sample_seed(base: int, sample: int) -> int:
    """The seed of a sample sent on its own: the request's seed for the first, a derived one for the rest."""
    return base if sample == 0 else derive_seed(base, sample)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` as seconds or an HTTP date), if it said."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _short(text: str) -> str:
    """A server's error body as one short line, for ``Completion.error``."""
    line = " ".join(text.split())
    return line if len(line) <= _ERROR_BODY_CHARS else line[: _ERROR_BODY_CHARS - 3] + "..."


def _split(total: int, parts: int) -> list[int]:
    """Split a token count over ``parts`` choices as evenly as possible (the usage block is per call)."""
    share, extra = divmod(total, parts)
    return [share + (1 if i < extra else 0) for i in range(parts)]


def _model_entry(listing: Any, served: str) -> dict[str, Any] | None:
    """The ``/v1/models`` entry whose ``id`` is the served name, reduced to the fields that describe the model.

    Only an exact match counts: a server that loads models on demand lists a model only once loaded, so
    any other entry could stand for the served one today and not tomorrow.
    """
    entries = listing.get("data") if isinstance(listing, dict) else None
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("id") == served:
            return {k: entry[k] for k in _MODEL_FIELDS if entry.get(k) is not None}
    return None


def _recent(created: Any) -> bool:
    """Whether ``created`` could be the time of the request (within a day of now, for clock skew)."""
    return isinstance(created, int | float) and abs(created - time.time()) < _RECENT_S


def _remote_identity(base_url: str, model: str, server_model: dict[str, Any] | None) -> str:
    """The weights hash of a served model: URL, served name and what the server reports about it."""
    payload = {"base_url": base_url, "model": model, "server_model": server_model}
    return "remote:" + hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _completion_logprobs(block: Any) -> list[TokenLogprob] | None:
    """Logprobs of a ``/v1/completions`` choice (parallel ``tokens`` / ``token_logprobs`` / ``top_logprobs``)."""
    if not isinstance(block, dict) or not block.get("tokens"):
        return None
    tops = block.get("top_logprobs") or [None] * len(block["tokens"])
    return [
        TokenLogprob(token=token, logprob=float(logprob), top={str(k): float(v) for k, v in (top or {}).items()})
        for token, logprob, top in zip(block["tokens"], block["token_logprobs"], tops, strict=True)
    ]


def _chat_logprobs(block: Any) -> list[TokenLogprob] | None:
    """Logprobs of a ``/v1/chat/completions`` choice (a ``content`` list of token entries)."""
    if not isinstance(block, dict) or not block.get("content"):
        return None
    return [
        TokenLogprob(
            token=entry["token"],
            logprob=float(entry["logprob"]),
            top={str(t["token"]): float(t["logprob"]) for t in entry.get("top_logprobs") or []},
        )
        for entry in block["content"]
    ]


class OpenAIEngine(Engine):
    """Concurrent, retrying client of an OpenAI-compatible server that fills the gaps of partial servers.

    ``base_url`` includes the API version (``http://127.0.0.1:8000/v1``); ``model`` is the served model
    name. ``tokenizer`` (the served model's) is needed to continue assistant prefixes; with it every
    request goes through ``/v1/completions``. ``backoff_s`` is the first retry delay, doubled per attempt
    up to ``max_backoff_s`` (which also caps ``Retry-After``), each delay scaled by a random 50-100 %.
    The server's ``/v1/models`` is read once, here, for the engine's identity (see the module docs); a
    server that does not answer it is known by URL and served name alone, and ``describe`` says why.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        tokenizer: Any | None = None,
        api_key: str | None = None,
        max_concurrency: int = 8,
        max_retries: int = 5,
        timeout_s: float = 120.0,
        weights_hash: str | None = None,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokenizer = tokenizer
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        # What the server turned out to honour, for describe(): whether a call asking for n > 1 samples
        # got them all (None until one asked), how many extra calls fetched the samples it left out, and
        # how many completions that asked for logprobs came back with and without them.
        self.n_honoured: bool | None = None
        self.extra_requests = 0
        self.logprobs_returned = 0
        self.logprobs_missing = 0
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="judgeforge-openai")
        self._jitter = random.Random()
        self.server_model_error: str | None = None
        self.server_model = self._read_server_model(model)
        tokenizer_hash = hash_tokenizer(tokenizer) if tokenizer is not None else NO_TOKENIZER
        super().__init__(model, weights_hash or _remote_identity(self.base_url, model, self.server_model), tokenizer_hash)

    def describe(self) -> dict[str, object]:
        logprobs = None if self.logprobs_returned + self.logprobs_missing == 0 else self.logprobs_missing == 0
        return {
            **super().describe(),
            "base_url": self.base_url,
            "server_model": self.server_model,
            "server_model_error": self.server_model_error,
            "endpoint": "completions" if self.tokenizer is not None else "chat/completions",
            "max_concurrency": self.max_concurrency,
            "max_retries": self.max_retries,
            "n_honoured": self.n_honoured,
            "extra_requests": self.extra_requests,
            "logprobs_honoured": logprobs,
            "logprobs_missing": self.logprobs_missing,
        }

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def _read_server_model(self, served: str) -> dict[str, Any] | None:
        """What ``/v1/models`` reports about the served model, without a ``created`` that is a request stamp."""
        first = self._server_entry(served)
        if first is None or not _recent(first.get("created")):
            return first
        time.sleep(_RECHECK_S)
        second = self._server_entry(served)
        if second is None or second.get("created") != first["created"]:
            return {k: v for k, v in first.items() if k != "created"}
        return first

    def _server_entry(self, served: str) -> dict[str, Any] | None:
        """One read of ``/v1/models``: the served model's entry, or None with ``server_model_error`` set."""
        try:
            entry = _model_entry(self._send("GET", "/models"), served)
        except _RequestFailed as exc:
            self.server_model_error = f"GET /models: {exc}"
            return None
        except ValueError as exc:
            self.server_model_error = f"GET /models: unreadable response: {_short(str(exc))}"
            return None
        self.server_model_error = None if entry is not None else f"GET /models does not list '{served}'"
        return entry

    def _generate(self, requests: list[Request], params: SamplingParams, progress: ProgressFn | None) -> list[list[Completion]]:
        if self.tokenizer is None and any(r.prefix for r in requests):
            raise UserError("the openai engine needs the served model's tokenizer (--tokenizer) to continue an assistant prefix")
        prompts = [render_prompt(self.tokenizer, r.messages, r.prefix) if self.tokenizer is not None else None for r in requests]
        seeds = [r.effective_seed(params) for r in requests]
        slots: list[list[Completion | None]] = [[None] * params.n for _ in requests]
        calls: list[_Call] = []
        for i, seed in enumerate(seeds):
            if self.n_honoured is False:  # known to ignore n: ask for every sample separately right away
                calls.extend(_Call(i, s, 1, _sample_seed(seed, s)) for s in range(params.n))
            else:
                calls.append(_Call(i, 0, params.n, seed))
        self._run(calls, requests, prompts, params, slots, progress)
        missing = [_Call(i, s, 1, _sample_seed(seeds[i], s)) for i, row in enumerate(slots) for s, c in enumerate(row) if c is None]
        if params.n > 1 and self.n_honoured is not False:
            self.n_honoured = not missing
        if missing:
            self.extra_requests += len(missing)
            self._run(missing, requests, prompts, params, slots, progress)
        return [[c for c in row if c is not None] for row in slots]

    def _run(
        self,
        calls: list[_Call],
        requests: list[Request],
        prompts: list[str | None],
        params: SamplingParams,
        slots: list[list[Completion | None]],
        progress: ProgressFn | None,
    ) -> None:
        """Run calls concurrently (bounded by the pool); place each answer in its request's sample slots."""
        futures: dict[Future[list[Completion]], _Call] = {self._pool.submit(self._call, requests[c.request], prompts[c.request], c, params): c for c in calls}
        for future in as_completed(futures):
            call = futures[future]
            completions = future.result()
            for k, completion in enumerate(completions):
                slots[call.request][call.first_sample + k] = completion
                if params.logprobs and completion.ok:
                    if completion.logprobs is None:
                        self.logprobs_missing += 1
                    else:
                        self.logprobs_returned += 1
            if progress is not None:
                progress(sum(c.completion_tokens for c in completions))

    def _call(self, request: Request, prompt: str | None, call: _Call, params: SamplingParams) -> list[Completion]:
        """One HTTP call → up to ``call.n`` completions, or ``call.n`` error completions if it failed."""
        body: dict[str, Any] = {
            "model": self.model_id,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": call.n,
            "seed": call.seed,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if prompt is not None:
            body["prompt"] = prompt
            if params.logprobs:
                body["logprobs"] = params.top_logprobs or 1
        else:
            body["messages"] = list(request.messages)
            if params.logprobs:
                body["logprobs"] = True
                body["top_logprobs"] = params.top_logprobs
        try:
            data = self._send("POST", "/completions" if prompt is not None else "/chat/completions", body)
            return self._parse(data, prompt, call.n, params)
        except _RequestFailed as exc:
            error = str(exc)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            error = f"unreadable response from server: {type(exc).__name__}: {_short(str(exc))}"
        return [Completion(text="", finish_reason="error", error=error) for _ in range(call.n)]

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One HTTP call with retries on 429, 5xx, timeouts and connection errors; other 4xx fail at once."""
        attempt = 0
        while True:
            wait: float | None = None
            try:
                response = self._client.request(method, path, json=body)
            except httpx.TimeoutException:
                failure = f"timed out after {self.timeout_s:g}s"
            except httpx.TransportError as exc:
                failure = f"connection error: {type(exc).__name__}"
            else:
                if response.is_success:
                    data = response.json()
                    if not isinstance(data, dict):
                        raise ValueError("the response body is not a JSON object")
                    return data
                failure = f"HTTP {response.status_code}: {_short(response.text)}"
                if response.status_code not in _RETRIED_STATUS:
                    raise _RequestFailed(failure)
                wait = _retry_after(response)
            attempt += 1
            if attempt > self.max_retries:
                raise _RequestFailed(f"{failure} (gave up after {attempt} attempts)")
            delay = self.backoff_s * 2 ** (attempt - 1) * self._jitter.uniform(0.5, 1.0) if wait is None else wait
            time.sleep(min(delay, self.max_backoff_s))

    def _parse(self, data: dict[str, Any], prompt: str | None, n: int, params: SamplingParams) -> list[Completion]:
        """Turn a response body into completions: local stop truncation, finish reasons, token counts."""
        choices = sorted(data["choices"], key=lambda c: int(c.get("index", 0)))[:n]
        if not choices:
            raise ValueError("no choices")
        usage = data.get("usage") or {}
        if "prompt_tokens" in usage:
            prompt_tokens = int(usage["prompt_tokens"])
        elif prompt is not None and self.tokenizer is not None:
            prompt_tokens = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        else:
            prompt_tokens = 0
        shares = _split(int(usage["completion_tokens"]), len(choices)) if "completion_tokens" in usage else None
        completions: list[Completion] = []
        for k, choice in enumerate(choices):
            raw = choice["text"] if prompt is not None else (choice["message"].get("content") or "")
            text, cut = truncate_at_stop(raw, params.stop)
            logprobs = None
            if params.logprobs:
                logprobs = _completion_logprobs(choice.get("logprobs")) if prompt is not None else _chat_logprobs(choice.get("logprobs"))
            if logprobs is not None:
                tokens = len(logprobs)
            elif shares is not None:
                tokens = shares[k]
            elif self.tokenizer is not None:
                tokens = len(self.tokenizer(raw, add_special_tokens=False)["input_ids"])
            else:
                tokens = 0
            completions.append(
                Completion(
                    text=text,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=tokens,
                    finish_reason=self._finish_reason(choice, cut, params),
                    logprobs=logprobs,
                )
            )
        return completions

    @staticmethod
    def _finish_reason(choice: dict[str, Any], cut: bool, params: SamplingParams) -> FinishReason:
        """A stop string seen (locally, or as vLLM's ``stop_reason``) → stop; "length" → length; else eos."""
        if cut or choice.get("stop_reason") in params.stop:
            return "stop"
        if choice.get("finish_reason") == "length":
            return "length"
        return "eos"
