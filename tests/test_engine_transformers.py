"""The transformers engine against the real embedded model: correctness of its own decoding loop.

A request's samples must not depend on its batch-mates (resumable, shardable builds need it), in float32
and in bfloat16, where any change in the order of the arithmetic shows up as other tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from judgeforge.chat import render_prompt
from judgeforge.engines.base import Request, SamplingParams
from judgeforge.engines.hardware import cpu_flags, resolve_dtype
from judgeforge.engines.transformers import _NUCLEUS_CANDIDATES, TransformersEngine, _block_ends, _common_prefix, _nucleus
from judgeforge.errors import UserError
from judgeforge.models import ModelRef

QUESTIONS = ["What is 3 + 4?", "Name a colour of the sky on a clear day, and explain briefly why it looks that way."]
TUTOR = "You are a patient mathematics tutor. Explain every step of a solution in plain words, check each result, " * 6


@pytest.fixture(scope="module", params=["float32", "bfloat16"])
def engine_in(request: pytest.FixtureRequest, smollm2: ModelRef) -> Iterator[TransformersEngine]:
    """The engine in each dtype, with room for only 4 rows: a crowded call refills finished rows' slots."""
    eng = TransformersEngine(smollm2, device="cpu", batch_size=4, dtype=request.param)
    yield eng
    eng.close()


def test_greedy_matches_hf_generate(smollm2: ModelRef) -> None:
    """Our loop (per-prompt prefill, slots, masked attention span) must pick the same tokens as generate().

    In float32: in bfloat16 the loop deliberately orders the attention arithmetic differently from
    generate() (so that it does not depend on batch-mates), and bf16 rounding makes that visible.
    """
    engine = TransformersEngine(smollm2, device="cpu", batch_size=16, dtype="float32")
    requests = [Request.chat(q) for q in QUESTIONS]
    ours = engine.generate(requests, SamplingParams(temperature=0.0, max_tokens=20))
    for request, completions in zip(requests, ours, strict=True):
        ids = torch.tensor([engine.encode(request)])
        with torch.inference_mode():
            ref = engine.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False, pad_token_id=engine.pad_id)
        expected = engine.tokenizer.decode(ref[0, ids.shape[1] :], skip_special_tokens=True)
        assert completions[0].text == expected
        assert completions[0].completion_tokens == ref.shape[1] - ids.shape[1]


def test_sample_does_not_depend_on_batch_mates(engine_in: TransformersEngine) -> None:
    params = SamplingParams(n=2, temperature=0.8, top_p=0.95, max_tokens=16, seed=7)
    target = Request.chat("Write one short sentence about rivers.", seed=123)
    alone = engine_in.generate([target], params)[0]
    crowded = engine_in.generate([Request.chat(q, seed=5) for q in QUESTIONS] + [target], params)[-1]
    assert [c.text for c in alone] == [c.text for c in crowded]
    assert alone[0].text != alone[1].text or alone[0].completion_tokens == 0  # two samples, two streams


def test_sample_does_not_depend_on_prompts_sharing_its_start(engine_in: TransformersEngine) -> None:
    """Prompts sharing long instructions reuse each other's prefilled blocks, have other lengths, and
    finish unevenly (a stop string) so that rows join the batch as others leave it: no sample may move."""
    params = SamplingParams(n=2, temperature=0.7, max_tokens=20, stop=(".",), seed=11)
    target = Request.chat("What is 12 times 7?", system=TUTOR, prefix="Step 1:", seed=1)
    mates = [
        Request.chat("What is 12 times 7?", system=TUTOR, prefix="Step 1: 12 times 7 is", seed=2),
        Request.chat("What is 12 times 8?", system=TUTOR, seed=3),
        Request.chat("Why do we carry digits when adding?", system=TUTOR, prefix="When", seed=4),
        Request.chat("What is 3 + 4?", seed=5),
    ]
    shared = _common_prefix(engine_in.encode(target), engine_in.encode(mates[1]))
    assert sum(end <= shared for end in _block_ends(shared)) >= 3  # the shared instructions span whole blocks
    alone = engine_in.generate([target], params)[0]
    for crowd in (mates + [target], [target, *mates[:2]], [mates[3], target, mates[2]]):
        together = engine_in.generate(crowd, params)[crowd.index(target)]
        assert [c.text for c in together] == [c.text for c in alone]
    greedy = SamplingParams(temperature=0.0, max_tokens=24, seed=0)
    assert engine_in.generate([target], greedy)[0][0].text == engine_in.generate([*mates, target], greedy)[-1][0].text


def test_dtype_is_resolved_loaded_and_described(engine_in: TransformersEngine) -> None:
    described = engine_in.describe()
    assert described["dtype"] == engine_in.dtype == engine_in.numerics
    assert all(p.dtype == getattr(torch, engine_in.dtype) for p in engine_in.model.parameters())


def test_auto_dtype_is_bfloat16_only_where_the_hardware_has_it(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_tile amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f amx_tile amx_bf16\n"
    )
    assert {"avx2", "amx_bf16"} <= cpu_flags(cpuinfo)
    assert cpu_flags(tmp_path / "absent") == frozenset()
    assert resolve_dtype("auto", "cpu", cpu_flags(cpuinfo)) == "bfloat16"
    assert resolve_dtype("auto", "cpu", frozenset({"avx2", "avx512f", "avx512_bf16"})) == "bfloat16"
    assert resolve_dtype("auto", "cpu", frozenset({"avx2", "avx512f", "avx512bw"})) == "float32"  # bf16 emulated: slower
    assert resolve_dtype("auto", "mps") == "float32"
    assert resolve_dtype("float32", "cpu", frozenset({"amx_bf16"})) == "float32"
    assert resolve_dtype("bfloat16", "cpu", frozenset()) == "bfloat16"
    with pytest.raises(UserError, match="float16"):
        resolve_dtype("float16", "cpu")


def test_nucleus_keeps_what_sorting_the_whole_vocabulary_keeps(engine: TransformersEngine) -> None:
    """top-p on real next-token distributions, sharp and flat (a nucleus beyond the top-k candidates)."""
    ids = torch.tensor([engine.encode(Request.chat(q)) for q in QUESTIONS[:1]])
    with torch.inference_mode():
        logits = engine.model(input_ids=ids).logits[0, -4:].float()
    probs = torch.cat([torch.softmax(logits / t, dim=-1) for t in (0.5, 1.0, 3.0)])
    for top_p in (0.5, 0.9, 0.95, 0.999):
        kept = _nucleus(probs, top_p) > 0
        ranked = probs.sort(dim=-1, descending=True).values
        last = ((ranked.cumsum(dim=-1) - ranked) <= top_p).sum(dim=-1, keepdim=True) - 1
        assert torch.equal(kept, probs >= ranked.gather(-1, last)), top_p
        assert torch.equal(_nucleus(probs, top_p)[kept], probs[kept])
    assert (kept.sum(dim=-1) > _NUCLEUS_CANDIDATES).any()  # the flat rows took the full sort


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
