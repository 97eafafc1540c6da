"""In-process generation with transformers: the default engine, on CPU or one GPU.

``model.generate`` samples a whole batch from one global random stream and computes every row with its
batch-mates' padding, so a request's output would depend on which other requests shared its batch —
fatal for resumable, shardable builds. This engine runs its own decoding loop instead, laid out so that
a row's tokens are a function of its own prompt and seed:

- every (request, sample) row owns a seeded ``torch.Generator`` and is sampled with row-wise ops;
- every prompt is prefilled on its own, cut at fixed positions (:func:`_block_ends`), so its KV cache
  is computed the same way whatever else the call holds; prompts that start alike (same instructions,
  same problem) reuse the whole blocks they share, and the samples of one prompt share its prefill;
- while decoding, a row's KV cache sits at positions ``0..length`` of its own slot (nothing to its left)
  and attention spans a multiple of :data:`_SPAN` positions, masked past the row's length, so neither a
  batch-mate's length nor the padding changes the order of the row's arithmetic.

In float32 this only removes noise (batching changes logits by ~5e-5 and almost never a token). In
bfloat16 it is what makes samples batch-invariant at all: bf16 rounding turns any change in the order of
operations into other tokens (measured on SmolLM2: prefilling a prompt in two parts, or left-padding
it, changes most logits by up to 0.75, and a sample alone differs from the same sample in a batch).
What the loop cannot control is the matmul kernel: on the AMX CPU this was measured on, oneDNN's bf16
matmul gives a row the same result for up to 32 rows per call and not beyond, so keep ``batch_size`` at
most 32 in bf16 (the default is 32); on a GPU, bf16 batch invariance has not been measured.

Rows are decoded with continuous batching: when a row finishes (EOS, a stop string, its token budget)
its slot is refilled from the requests still waiting, so the batch stays full — step-wise search stops
early and unevenly. Per-token log-probabilities on request.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicCache

from judgeforge.chat import render_prompt
from judgeforge.engines.base import (
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
from judgeforge.engines.hardware import resolve_dtype
from judgeforge.models import ModelRef, hash_tokenizer, load_causal_lm, load_tokenizer

_BLOCK = 64
_LONG_BLOCK = 256
_LONG_FROM = 512
"""Prefill cuts (:func:`_block_ends`): every ``_BLOCK`` tokens up to ``_LONG_FROM``, then every ``_LONG_BLOCK``."""

_SPAN = 32
"""Decoding attends over a multiple of this many cache positions (a multiple of every SIMD width)."""

_NUCLEUS_CANDIDATES = 256
"""top-p looks for the nucleus among this many most likely tokens, and sorts the vocabulary only when it is larger."""

KV = list[tuple[torch.Tensor, torch.Tensor]]
"""A KV cache: (keys, values) per layer, each ``[batch, kv_heads, positions, head_dim]``."""


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass
class _Row:
    """One sample being decoded: which request/sample it is, its prompt ids and its own RNG."""

    request: int
    sample: int
    prompt_ids: list[int]
    generator: torch.Generator
    tokens: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish: FinishReason | None = None


@dataclass
class _Prompt:
    """A prefilled prompt: its ids, its KV cache (batch 1) and the logits of its first generated token."""

    ids: list[int]
    kv: KV
    logits: torch.Tensor


class _SlotLayer(CacheLayerMixin):
    """One layer's KV cache for the decode batch (see :class:`_Batch`): the model's hook into it."""

    keys: torch.Tensor
    values: torch.Tensor

    def __init__(self, batch: _Batch, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()
        self.batch = batch
        self.keys, self.values = keys, values
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        raise RuntimeError("the decode cache is allocated by its batch, never lazily")

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Write each row's new key and value at that row's own length; return the span every live row attends over."""
        at, live, span = self.batch.flat_positions(self.keys), self.batch.live, self.batch.span
        self.keys.view(-1, self.keys.shape[-1]).index_copy_(0, at, key_states.reshape(-1, key_states.shape[-1]))
        self.values.view(-1, self.values.shape[-1]).index_copy_(0, at, value_states.reshape(-1, value_states.shape[-1]))
        return self.keys[:live, :, :span], self.values[:live, :, :span]

    def get_seq_length(self) -> int:
        return self.batch.span - 1

    def get_mask_sizes(self, *args: Any, **kwargs: Any) -> tuple[int, int]:
        return self.batch.span, 0

    def get_max_length(self) -> int:
        return -1


class _Batch:
    """The KV cache of the rows being decoded: one slot per row, the row's cache at positions ``0..length``.

    Slots ``0..live`` are in use; a finished row's slot is filled by moving a later row into it, and new
    rows are placed after the last live slot. Capacity (positions per slot) grows on demand.
    """

    def __init__(self, like: KV, slots: int, device: str) -> None:
        self.device = device
        self.live = 0
        self.lengths: list[int] = []
        self.span = 0
        self.capacity = 0
        self.rows = torch.zeros(0, dtype=torch.long, device=device)
        self.positions = torch.zeros(0, dtype=torch.long, device=device)
        self._flat: dict[int, torch.Tensor] = {}  # per head count: where this step's new keys go (flat_positions)
        self.layers = [_SlotLayer(self, k.new_zeros((slots, k.shape[1], 0, k.shape[3])), v.new_zeros((slots, v.shape[1], 0, v.shape[3]))) for k, v in like]
        self.cache = Cache(layers=list(self.layers))

    def _reserve(self, positions: int) -> None:
        if positions <= self.capacity:
            return
        capacity = _round_up(positions, _SPAN) + 4 * _SPAN  # a few spans at once: one copy per 128 tokens, not per span
        for layer in self.layers:
            keys, values = layer.keys, layer.values
            layer.keys = keys.new_zeros((keys.shape[0], keys.shape[1], capacity, keys.shape[3]))
            layer.values = values.new_zeros((values.shape[0], values.shape[1], capacity, values.shape[3]))
            layer.keys[:, :, : self.capacity] = keys
            layer.values[:, :, : self.capacity] = values
        self.capacity = capacity

    def admit(self, prompt: _Prompt, count: int) -> None:
        """Give ``count`` new rows the prompt's KV cache, in the slots after the last live one."""
        length = len(prompt.ids)
        self._reserve(length + 1)
        for layer, (keys, values) in zip(self.layers, prompt.kv, strict=True):
            layer.keys[self.live : self.live + count, :, :length] = keys
            layer.values[self.live : self.live + count, :, :length] = values
        self.lengths.extend([length] * count)
        self.live += count

    def remove(self, finished: Sequence[int]) -> list[int]:
        """Free the slots of ``finished`` rows; return which old slot each remaining slot now holds."""
        dead = set(finished)
        keep = self.live - len(dead)
        holes = sorted(i for i in dead if i < keep)
        movers = [i for i in range(keep, self.live) if i not in dead]
        if holes:
            into = torch.tensor(holes, device=self.device)
            source = torch.tensor(movers, device=self.device)
            for layer in self.layers:
                layer.keys[into] = layer.keys[source]
                layer.values[into] = layer.values[source]
        order = list(range(self.live))
        for hole, mover in zip(holes, movers, strict=True):
            order[hole] = mover
        order = order[:keep]
        self.lengths = [self.lengths[i] for i in order]
        self.live = keep
        return order

    def prepare_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Set up one decode step: the live rows' positions and which cache positions each row attends."""
        self.span = _round_up(max(self.lengths) + 1, _SPAN)
        self._reserve(self.span)
        self.rows = torch.arange(self.live, device=self.device)
        self.positions = torch.tensor(self.lengths, device=self.device)
        self._flat = {}
        visible = torch.arange(self.span, device=self.device).unsqueeze(0) <= self.positions.unsqueeze(1)
        return self.positions, visible

    def flat_positions(self, buffer: torch.Tensor) -> torch.Tensor:
        """Where each live row's new key goes in ``buffer`` ([slots, heads, capacity, dim]) seen as rows of ``dim``."""
        heads = buffer.shape[1]
        if heads not in self._flat:
            rows = self.rows.unsqueeze(1) * heads + torch.arange(heads, device=self.device)
            self._flat[heads] = (rows * buffer.shape[2] + self.positions.unsqueeze(1)).flatten()
        return self._flat[heads]

    def advance(self) -> None:
        self.lengths = [n + 1 for n in self.lengths]


class TransformersEngine(Engine):
    """Batched sampling with per-row seeds, stop strings, assistant-prefix continuation and logprobs.

    ``dtype`` is ``auto``, ``float32`` or ``bfloat16`` (:func:`judgeforge.engines.hardware.resolve_dtype`);
    the weights are loaded in it and the sampling math always runs in float32.
    """

    name = "transformers"

    def __init__(
        self,
        ref: ModelRef,
        device: str | None = None,
        batch_size: int = 32,
        dtype: str = "auto",
        trust_remote_code: bool = False,
        model: Any | None = None,
        tokenizer: Any | None = None,
    ) -> None:
        tokenizer = tokenizer or load_tokenizer(ref, trust_remote_code)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = resolve_dtype(dtype, device)
        super().__init__(ref.model_id, ref.weights_hash, hash_tokenizer(tokenizer), numerics=self.dtype)
        self.device = device
        self.batch_size = batch_size
        self.tokenizer = tokenizer
        self.model = model or load_causal_lm(ref, self.device, self.dtype, trust_remote_code=trust_remote_code)
        eos = self.model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {int(i) for i in eos_ids if i is not None} | {int(self.tokenizer.eos_token_id)}
        self.pad_id = int(self.tokenizer.pad_token_id)
        forward = inspect.signature(self.model.forward).parameters if callable(getattr(self.model, "forward", None)) else {}
        # transformers 5.20 renamed ``past_key_values`` to ``cache``; the vLLM environment pins an older one.
        self._cache_arg = "cache" if "cache" in forward else "past_key_values"
        self._last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in forward else {}

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "device": self.device, "batch_size": self.batch_size}

    def encode(self, request: Request) -> list[int]:
        text = render_prompt(self.tokenizer, request.messages, request.prefix)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _generate(self, requests: list[Request], params: SamplingParams, progress: ProgressFn | None) -> list[list[Completion]]:
        units: list[list[_Row]] = []  # rows sharing one prompt: prefilled once, then the KV cache is copied
        for r, request in enumerate(requests):
            ids = self.encode(request)
            base = request.effective_seed(params)
            units.append([_Row(r, s, ids, torch.Generator(device="cpu").manual_seed(derive_seed(base, s))) for s in range(params.n)])
        # Prompts that start alike are prefilled one after the other, so each reuses the blocks it shares
        # with the one before. No row's sample depends on this order: it only saves work.
        units.sort(key=lambda unit: unit[0].prompt_ids)
        self._decode(deque(units), params, progress)
        results: list[list[Completion | None]] = [[None] * params.n for _ in requests]
        for unit in units:
            for row in unit:
                results[row.request][row.sample] = self._completion(row, params)
        return [[c for c in completions if c is not None] for completions in results]

    def _completion(self, row: _Row, params: SamplingParams) -> Completion:
        tokens = row.tokens[:-1] if row.finish == "eos" else row.tokens
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        text, _ = truncate_at_stop(text, params.stop)
        return Completion(
            text=text,
            prompt_tokens=len(row.prompt_ids),
            completion_tokens=len(row.tokens),
            finish_reason=row.finish or "length",
            logprobs=row.logprobs if params.logprobs else None,
        )

    @torch.inference_mode()
    def _decode(self, pending: deque[list[_Row]], params: SamplingParams, progress: ProgressFn | None) -> None:
        """Decode every row of ``pending``, at most ``batch_size`` at a time, refilling slots as rows finish."""
        stop_window = max((len(s) for s in params.stop), default=0) + 2
        batch: _Batch | None = None
        live: list[_Row] = []
        inputs: list[int] = []  # the token each live row feeds next
        previous: _Prompt | None = None
        while pending or live:
            while pending and len(live) < self.batch_size:
                unit = pending.popleft()
                if len(live) + len(unit) > self.batch_size:  # fill the free slots; the rest of the unit reuses this prefill next
                    unit, rest = unit[: self.batch_size - len(live)], unit[self.batch_size - len(live) :]
                    pending.appendleft(rest)
                previous = prompt = self._prefill(unit[0].prompt_ids, previous)
                first = self._sample(prompt.logits.expand(len(unit), -1), unit, params).tolist()
                if progress is not None:
                    progress(len(unit))
                admitted = [(row, token) for row, token in zip(unit, first, strict=True) if not self._append(row, token, params, stop_window)]
                if admitted:
                    batch = batch or _Batch(prompt.kv, self.batch_size, self.device)
                    batch.admit(prompt, len(admitted))
                    live.extend(row for row, _ in admitted)
                    inputs.extend(token for _, token in admitted)
            if not live or batch is None:
                continue
            logits = self._step(batch, inputs)
            inputs = self._sample(logits, live, params).tolist()
            if progress is not None:
                progress(len(live))
            finished = [i for i, (row, token) in enumerate(zip(live, inputs, strict=True)) if self._append(row, token, params, stop_window)]
            if finished:
                order = batch.remove(finished)
                live, inputs = [live[i] for i in order], [inputs[i] for i in order]

    def _prefill(self, ids: list[int], previous: _Prompt | None) -> _Prompt:
        """The prompt's KV cache and next-token logits, reusing the whole blocks it shares with ``previous``."""
        if previous is not None and previous.ids == ids:
            return previous
        reuse = 0
        if previous is not None:
            shared = min(_common_prefix(ids, previous.ids), len(ids) - 1)
            reuse = max((end for end in _block_ends(shared + 1) if end <= shared), default=0)
        cache = DynamicCache()
        if previous is not None and reuse:
            for index, (keys, values) in enumerate(previous.kv):
                cache.update(keys[:, :, :reuse].contiguous(), values[:, :, :reuse].contiguous(), index)
        out: Any = None
        start = reuse
        for end in (e for e in _block_ends(len(ids)) if e > reuse):
            block = torch.tensor([ids[start:end]], device=self.device)
            positions = torch.arange(start, end, device=self.device).unsqueeze(0)
            start = end
            out = self.model(input_ids=block, position_ids=positions, use_cache=True, **{self._cache_arg: cache}, **self._last_logits_only)
        kv: KV = [(layer.keys, layer.values) for layer in cache.layers]  # type: ignore[misc,union-attr]  # DynamicLayers, filled by the forward
        return _Prompt(ids, kv, out.logits[0, -1].float())

    def _step(self, batch: _Batch, inputs: list[int]) -> torch.Tensor:
        """One decode step of every live row; the next-token logits, in float32."""
        positions, visible = batch.prepare_step()
        if self.model.config._attn_implementation == "sdpa":
            mask = visible[:, None, None, :]
        else:  # eager attention adds the mask to the scores
            dtype = next(self.model.parameters()).dtype
            mask = torch.zeros(visible.shape, dtype=dtype, device=self.device).masked_fill(~visible, torch.finfo(dtype).min)[:, None, None, :]
        ids = torch.tensor(inputs, device=self.device).unsqueeze(1)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions.unsqueeze(1), use_cache=True, **{self._cache_arg: batch.cache})
        batch.advance()
        return out.logits[:, -1, :].float()

    def _append(self, row: _Row, token: int, params: SamplingParams, stop_window: int) -> bool:
        """Append ``token`` to the row; say whether the row is done (and why, in ``row.finish``)."""
        row.tokens.append(token)
        if token in self.eos_ids:
            row.finish = "eos"
        elif params.stop and self._hit_stop(row.tokens[-stop_window:], params.stop):
            row.finish = "stop"
        elif len(row.tokens) >= params.max_tokens:
            row.finish = "length"
        return row.finish is not None

    def _hit_stop(self, tail: Sequence[int], stop: Sequence[str]) -> bool:
        text = self.tokenizer.decode(list(tail), skip_special_tokens=True)
        return any(s in text for s in stop)

    def _sample(self, logits: torch.Tensor, live: list[_Row], params: SamplingParams) -> torch.Tensor:
        """One token per row from float32 ``logits`` (one row each), drawn with the row's own generator."""
        if params.temperature == 0:
            chosen = logits.argmax(dim=-1)
        else:
            # exp((x - max) / T): the probabilities up to their sum, in one buffer (the draw is scaled by the sum)
            weights = (logits - logits.amax(dim=-1, keepdim=True)).div_(params.temperature).exp_()
            if params.top_p < 1.0:
                weights = _nucleus(weights.div_(weights.sum(dim=-1, keepdim=True)), params.top_p)
            cdf = weights.cumsum_(dim=-1)
            draws = torch.stack([torch.rand((), generator=row.generator) for row in live]).to(cdf.device)
            chosen = torch.searchsorted(cdf, (draws * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1)
            chosen = chosen.clamp(max=cdf.shape[-1] - 1)
        if params.logprobs:
            self._record_logprobs(torch.log_softmax(logits, dim=-1), chosen, live, params.top_logprobs)
        return chosen

    def _record_logprobs(self, logprobs: torch.Tensor, chosen: torch.Tensor, live: list[_Row], k: int) -> None:
        picked = logprobs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1).tolist()
        top_vals, top_idx = logprobs.topk(k, dim=-1) if k else (None, None)
        for i, row in enumerate(live):
            top: dict[str, float] = {}
            if top_vals is not None and top_idx is not None:
                top = {self.tokenizer.decode([int(t)]): float(v) for t, v in zip(top_idx[i].tolist(), top_vals[i].tolist(), strict=True)}
            row.logprobs.append(TokenLogprob(token=self.tokenizer.decode([int(chosen[i])]), logprob=picked[i], top=top))


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero every token less likely than the one where the descending cumulative mass passes ``top_p``.

    A token is kept when the mass of the tokens more likely than it is at most ``top_p``; tokens tied
    with the last kept one are kept too, so the set does not depend on how a sort orders ties. The
    nucleus is looked for among the :data:`_NUCLEUS_CANDIDATES` likeliest tokens first (``topk`` is far
    cheaper than sorting the vocabulary); a row whose nucleus is larger is sorted in full.
    """
    top = probs.topk(min(_NUCLEUS_CANDIDATES, probs.shape[-1]), dim=-1).values
    kept = ((top.cumsum(dim=-1) - top) <= top_p).sum(dim=-1)
    threshold = top.gather(-1, (kept - 1).unsqueeze(-1))
    larger = (kept == top.shape[-1]).nonzero().flatten().tolist() if top.shape[-1] < probs.shape[-1] else []
    for i in larger:
        ranked = probs[i].sort(descending=True).values
        threshold[i, 0] = ranked[int(((ranked.cumsum(dim=-1) - ranked) <= top_p).sum()) - 1]
    return probs.masked_fill(probs < threshold, 0.0)


def _block_ends(length: int) -> list[int]:
    """Where a prompt of ``length`` tokens is cut for prefill: every 64 tokens up to 512, then every 256, and at its end.

    The cuts depend on positions only, so two prompts that agree up to a cut have the same KV cache up
    to it, bit for bit. Every forward pass reads all the weights (on CPU it costs as much as ~100 more
    prompt tokens), so blocks are not smaller: a short chat prompt is one pass, and the prompts of a
    step-wise judge call (~300 tokens, sharing 200-300) reuse most of what they share.
    """
    ends: list[int] = []
    end = _BLOCK
    while end < length:
        ends.append(end)
        end += _BLOCK if end < _LONG_FROM else _LONG_BLOCK
    return [*ends, length]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    for k, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return k
    return min(len(a), len(b))
