"""The request cache: every engine call of a build goes through it.

A build that is killed mid-shard, or re-run after a later stage's prompt changed, must only recompute
the requests that actually changed. The cache lives in the run dir (SQLite: one transaction per engine
call, so a SIGKILL leaves either the whole call or none of it) and is keyed by engine, model weights
hash, tokenizer/chat-template hash, numerics (float32, bfloat16), exact prompt, sampling params and
seed (:func:`judgeforge.engines.base.request_key`). Failed requests are never cached, so a later run retries
them. The key is only as good as the engine's identity: a remote server is known by what it reports
about its model (see :mod:`judgeforge.engines.openai`), so weights swapped behind identical metadata
go unnoticed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from judgeforge.engines.base import Completion, Engine, EngineStats, ProgressFn, Request, SamplingParams, request_key


class CompletionStore(Protocol):
    """What :class:`CachedEngine` needs of a cache: look keys up, store completions."""

    def get_many(self, keys: Sequence[str]) -> dict[str, list[Completion]]: ...

    def put_many(self, items: dict[str, list[Completion]]) -> None: ...


class RequestCache:
    """A key → completions store in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get_many(self, keys: Sequence[str]) -> dict[str, list[Completion]]:
        found: dict[str, list[Completion]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self._db.execute(f"SELECT key, value FROM completions WHERE key IN ({marks})", chunk):
                found[key] = [Completion.model_validate(c) for c in json.loads(value)]
        return found

    def put_many(self, items: dict[str, list[Completion]]) -> None:
        rows = [(k, json.dumps([c.model_dump(mode="json") for c in v])) for k, v in items.items()]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO completions (key, value) VALUES (?, ?)", rows)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def close(self) -> None:
        self._db.close()


class CachedEngine(Engine):
    """Wraps an engine: answers from the cache where it can, asks the engine for the rest in one call."""

    def __init__(self, inner: Engine, cache: CompletionStore) -> None:
        super().__init__(inner.model_id, inner.weights_hash, inner.tokenizer_hash, inner.numerics)
        self.inner = inner
        self.cache = cache
        self.name = inner.name
        self.stats = inner.stats
        self.calls = EngineStats()
        """This wrapper's own calls (one wrapper per role): requests, cache hits, and the tokens of the completions the engine computed."""
        self.on_tokens: ProgressFn | None = None
        self.on_prompt_tokens: ProgressFn | None = None

    def describe(self) -> dict[str, object]:
        return self.inner.describe()

    def generate(self, requests: Sequence[Request], params: SamplingParams, progress: ProgressFn | None = None) -> list[list[Completion]]:
        keys = [request_key(self.inner, r, params) for r in requests]
        found = self.cache.get_many(keys)
        hits = sum(1 for k in keys if k in found)
        self.stats.cache_hits += hits
        missing = [i for i, k in enumerate(keys) if k not in found]
        fresh = self.inner.generate([requests[i] for i in missing], params, progress or self.on_tokens)
        prompt_tokens = sum(c.prompt_tokens for completions in fresh for c in completions)
        self.calls.requests += len(keys)
        self.calls.cache_hits += hits
        self.calls.prompt_tokens += prompt_tokens
        self.calls.completion_tokens += sum(c.completion_tokens for completions in fresh for c in completions)
        if self.on_prompt_tokens is not None and prompt_tokens:
            self.on_prompt_tokens(prompt_tokens)
        computed = {keys[i]: c for i, c in zip(missing, fresh, strict=True)}
        self.cache.put_many({k: c for k, c in computed.items() if all(x.ok for x in c)})
        return [found[k] if k in found else computed[k] for k in keys]

    def _generate(self, requests: list[Request], params: SamplingParams, progress: ProgressFn | None) -> list[list[Completion]]:
        return self.generate(requests, params, progress)
