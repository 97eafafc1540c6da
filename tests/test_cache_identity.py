"""The request cache's identity of a prompt: the tokenizer, chat template and numerics are part of every key.

Two engines on the same weights whose chat templates differ send the model different text for the same
request, and two that compute in different dtypes sample different tokens from it, so they must never
share cached completions; two loads of the same tokenizer, in this process or another (a resumed run),
must. The remote side of the identity (what an OpenAI-compatible server reports about its model) is
tested against the fake server in ``test_engine_openai.py``.
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

from judgeforge.engines.base import Request, SamplingParams, request_key
from judgeforge.engines.transformers import TransformersEngine
from judgeforge.models import ModelRef, load_tokenizer

REQUEST = Request.chat("What is 3 + 4?", prefix="Step 1:", seed=7)
PARAMS = SamplingParams(n=2, temperature=0.5, max_tokens=16)


def _engine(ref: ModelRef, tokenizer: Any, dtype: str = "float32") -> TransformersEngine:
    """A transformers engine on ``tokenizer`` whose model is never called (keys need no forward pass)."""
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=tokenizer.eos_token_id))
    return TransformersEngine(ref, device="cpu", dtype=dtype, model=model, tokenizer=tokenizer)


def test_request_key_changes_when_only_the_chat_template_changes(smollm2: ModelRef) -> None:
    plain = load_tokenizer(smollm2)
    edited = load_tokenizer(smollm2)
    edited.chat_template = plain.chat_template.replace("helpful AI assistant", "careful AI assistant")
    assert edited.chat_template != plain.chat_template
    a, b = _engine(smollm2, plain), _engine(smollm2, edited)
    assert a.weights_hash == b.weights_hash
    assert request_key(a, REQUEST, PARAMS) != request_key(b, REQUEST, PARAMS)
    assert a.describe()["tokenizer_hash"] == a.tokenizer_hash != b.tokenizer_hash


def test_request_key_changes_when_only_the_vocabulary_changes(smollm2: ModelRef) -> None:
    extended = load_tokenizer(smollm2)
    extended.add_tokens(["<judgeforge-extra>"])
    a, b = _engine(smollm2, load_tokenizer(smollm2)), _engine(smollm2, extended)
    assert request_key(a, REQUEST, PARAMS) != request_key(b, REQUEST, PARAMS)


def test_request_key_changes_when_only_the_dtype_changes(smollm2: ModelRef) -> None:
    """The same weights in bfloat16 sample other tokens than in float32: a bf16 run never reuses fp32 generations."""
    tokenizer = load_tokenizer(smollm2)
    fp32, bf16 = _engine(smollm2, tokenizer, "float32"), _engine(smollm2, tokenizer, "bfloat16")
    assert (fp32.weights_hash, fp32.tokenizer_hash) == (bf16.weights_hash, bf16.tokenizer_hash)
    assert request_key(fp32, REQUEST, PARAMS) != request_key(bf16, REQUEST, PARAMS)
    assert request_key(fp32, REQUEST, PARAMS) == request_key(_engine(smollm2, tokenizer, "float32"), REQUEST, PARAMS)
    assert (fp32.describe()["dtype"], bf16.describe()["dtype"]) == ("float32", "bfloat16")


def test_every_load_of_a_tokenizer_in_any_process_keys_alike(smollm2: ModelRef) -> None:
    """What a resumed run (a new process) needs to answer every request from the cache."""
    first, second = _engine(smollm2, load_tokenizer(smollm2)), _engine(smollm2, load_tokenizer(smollm2))
    assert request_key(first, REQUEST, PARAMS) == request_key(second, REQUEST, PARAMS)
    first.tokenizer(["a padded batch", "of two"], padding=True, truncation=True, max_length=4)  # call state, not identity
    assert _engine(smollm2, first.tokenizer).tokenizer_hash == first.tokenizer_hash
    code = "from judgeforge.models import hash_tokenizer, load_tokenizer, resolve_model; print(hash_tokenizer(load_tokenizer(resolve_model('smollm2'))))"
    other_process = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert other_process == first.tokenizer_hash
