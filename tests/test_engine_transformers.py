"""The transformers engine against the real embedded model: correctness of its own decoding loop."""

from __future__ import annotations

import torch

from judgeforge.chat import render_prompt
from judgeforge.engines.base import Request, SamplingParams
from judgeforge.engines.transformers import TransformersEngine

QUESTIONS = ["What is 3 + 4?", "Name a colour of the sky on a clear day, and explain briefly why it looks that way."]


def test_greedy_matches_hf_generate(engine: TransformersEngine) -> None:
    """Our loop (bucketing, left padding, KV-cache compaction) must pick the same tokens as generate()."""
    requests = [Request.chat(q) for q in QUESTIONS]
    ours = engine.generate(requests, SamplingParams(temperature=0.0, max_tokens=20))
    for request, completions in zip(requests, ours, strict=True):
        ids = torch.tensor([engine.encode(request)])
        with torch.inference_mode():
            ref = engine.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False, pad_token_id=engine.pad_id)
        expected = engine.tokenizer.decode(ref[0, ids.shape[1] :], skip_special_tokens=True)
        assert completions[0].text == expected
        assert completions[0].completion_tokens == ref.shape[1] - ids.shape[1]


def test_sample_does_not_depend_on_batch_mates(engine: TransformersEngine) -> None:
    params = SamplingParams(n=2, temperature=0.8, top_p=0.95, max_tokens=16, seed=7)
    target = Request.chat("Write one short sentence about rivers.", seed=123)
    alone = engine.generate([target], params)[0]
    crowded = engine.generate([Request.chat(q, seed=5) for q in QUESTIONS] + [target], params)[-1]
    assert [c.text for c in alone] == [c.text for c in crowded]
    assert alone[0].text != alone[1].text or alone[0].completion_tokens == 0  # two samples, two streams


def test_stop_strings_prefix_and_logprobs(engine: TransformersEngine) -> None:
    request = Request.chat("List the numbers from one to ten, one per line.", prefix="1\n2\n3\n")
    params = SamplingParams(temperature=0.0, max_tokens=24, stop=("\n",), logprobs=True, top_logprobs=3)
    completion = engine.generate([request], params)[0][0]
    assert "\n" not in completion.text
    assert completion.finish_reason == "stop"
    assert completion.logprobs is not None and len(completion.logprobs) == completion.completion_tokens
    first = completion.logprobs[0]
    assert len(first.top) == 3 and max(first.top.values()) == first.logprob  # greedy picks the top token
    rendered = render_prompt(engine.tokenizer, request.messages, request.prefix)
    assert rendered.endswith("assistant\n1\n2\n3\n")


def test_eos_and_length_finish_reasons(engine: TransformersEngine) -> None:
    out = engine.generate([Request.chat("Say only the word: yes")], SamplingParams(temperature=0.0, max_tokens=40))[0][0]
    assert out.finish_reason == "eos"
    short = engine.generate([Request.chat("Tell me a long story about a dragon.")], SamplingParams(temperature=0.0, max_tokens=5))[0][0]
    assert short.finish_reason == "length" and short.completion_tokens == 5
    assert engine.stats.completion_tokens > 0 and engine.stats.requests >= 2
