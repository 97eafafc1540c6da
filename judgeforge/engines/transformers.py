"""In-process generation with transformers: the default engine, on CPU or one GPU.

``model.generate`` samples a whole batch from one global random stream, so a request's output would
depend on which other requests shared its batch — fatal for resumable, shardable builds. This engine
runs its own decoding loop instead: every (request, sample) row owns a seeded ``torch.Generator``, so a
row's sample does not depend on its batch-mates. The loop also buckets prompts by length (little
padding), drops finished rows from the KV cache as soon as they hit EOS, a stop string or their token
budget (step-wise search stops early and unevenly), and returns per-token log-probabilities on request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

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
from judgeforge.models import ModelRef, hash_tokenizer, load_causal_lm, load_tokenizer

_MIN_SHARED_PREFIX = 16


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


class TransformersEngine(Engine):
    """Batched sampling with per-row seeds, stop strings, assistant-prefix continuation and logprobs."""

    name = "transformers"

    def __init__(
        self,
        ref: ModelRef,
        device: str | None = None,
        batch_size: int = 32,
        trust_remote_code: bool = False,
        model: Any | None = None,
        tokenizer: Any | None = None,
    ) -> None:
        tokenizer = tokenizer or load_tokenizer(ref, trust_remote_code)
        super().__init__(ref.model_id, ref.weights_hash, hash_tokenizer(tokenizer))
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size
        self.tokenizer = tokenizer
        self.model = model or load_causal_lm(ref, self.device, trust_remote_code=trust_remote_code)
        eos = self.model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {int(i) for i in eos_ids if i is not None} | {int(self.tokenizer.eos_token_id)}
        self.pad_id = int(self.tokenizer.pad_token_id)

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
            rows = [_Row(r, s, ids, torch.Generator(device="cpu").manual_seed(derive_seed(base, s))) for s in range(params.n)]
            units.extend(rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size))
        # Sort prompts so that those sharing a start (same instructions, same problem) share a batch: the
        # shared part is prefilled once. The order inside a batch does not affect any row's sample, so
        # this is purely a speed choice.
        units.sort(key=lambda unit: unit[0].prompt_ids)
        batch: list[list[_Row]] = []
        for unit in units:
            if batch and sum(map(len, batch)) + len(unit) > self.batch_size:
                self._decode(batch, params, progress)
                batch = []
            batch.append(unit)
        if batch:
            self._decode(batch, params, progress)
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
    def _decode(self, units: list[list[_Row]], params: SamplingParams, progress: ProgressFn | None) -> None:
        from transformers import DynamicCache

        prompts = [unit[0].prompt_ids for unit in units]
        shared = _common_prefix(prompts) if len(units) > 1 else 0
        cache = DynamicCache()
        prefix_mask = torch.ones((len(units), shared), dtype=torch.long, device=self.device)
        if shared >= _MIN_SHARED_PREFIX:
            # All prompts of the batch start alike (same instructions, same problem): run that part once
            # and copy its KV cache, then prefill only the differing tails.
            head = torch.tensor([prompts[0][:shared]], device=self.device)
            self.model(input_ids=head, past_key_values=cache, use_cache=True)
            for layer in cache.layers:
                layer.batch_select_indices(torch.zeros(len(units), dtype=torch.long, device=self.device))  # type: ignore[union-attr]
        else:
            shared, prefix_mask = 0, prefix_mask[:, :0]
        width = max(len(p) - shared for p in prompts)
        input_ids = torch.full((len(units), width), self.pad_id, dtype=torch.long)
        tail_mask = torch.zeros((len(units), width), dtype=torch.long)
        for i, ids in enumerate(prompts):
            tail = ids[shared:]
            input_ids[i, width - len(tail) :] = torch.tensor(tail)
            tail_mask[i, width - len(tail) :] = 1
        input_ids, tail_mask = input_ids.to(self.device), tail_mask.to(self.device)
        mask = torch.cat([prefix_mask, tail_mask], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
        # Each prompt was prefilled once; give every sample of it its own copy of the KV cache.
        expand = torch.tensor([i for i, unit in enumerate(units) for _ in unit], device=self.device)
        for layer in cache.layers:
            layer.batch_select_indices(expand)  # type: ignore[union-attr]
        logits, mask, positions = out.logits[expand, -1, :].float(), mask[expand], positions[expand, -1:]
        live = [row for unit in units for row in unit]
        stop_window = max((len(s) for s in params.stop), default=0) + 2
        while True:
            next_ids = self._sample(logits, live, params)
            keep: list[int] = []
            for i, row in enumerate(live):
                token = int(next_ids[i])
                row.tokens.append(token)
                if token in self.eos_ids:
                    row.finish = "eos"
                elif params.stop and self._hit_stop(row.tokens[-stop_window:], params.stop):
                    row.finish = "stop"
                elif len(row.tokens) >= params.max_tokens:
                    row.finish = "length"
                else:
                    keep.append(i)
            if progress is not None:
                progress(len(live))
            if not keep:
                return
            if len(keep) < len(live):
                index = torch.tensor(keep, device=self.device)
                for layer in cache.layers:
                    layer.batch_select_indices(index)  # type: ignore[union-attr]
                mask, next_ids, positions = mask[index], next_ids[index], positions[index]
                live = [live[i] for i in keep]
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
            positions = positions + 1
            out = self.model(input_ids=next_ids.view(-1, 1), attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
            logits = out.logits[:, -1, :].float()

    def _hit_stop(self, tail: Sequence[int], stop: Sequence[str]) -> bool:
        text = self.tokenizer.decode(list(tail), skip_special_tokens=True)
        return any(s in text for s in stop)

    def _sample(self, logits: torch.Tensor, live: list[_Row], params: SamplingParams) -> torch.Tensor:
        logprobs = torch.log_softmax(logits, dim=-1)
        if params.temperature == 0:
            chosen = logprobs.argmax(dim=-1)
        else:
            probs = torch.softmax(logits / params.temperature, dim=-1)
            if params.top_p < 1.0:
                sorted_probs, sorted_idx = probs.sort(dim=-1, descending=True)
                outside = sorted_probs.cumsum(dim=-1) - sorted_probs > params.top_p
                sorted_probs[outside] = 0.0
                probs = torch.zeros_like(probs).scatter_(-1, sorted_idx, sorted_probs)
            cdf = probs.cumsum(dim=-1)
            draws = torch.stack([torch.rand((), generator=row.generator) for row in live]).to(cdf.device)
            chosen = torch.searchsorted(cdf, (draws * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1)
            chosen = chosen.clamp(max=probs.shape[-1] - 1)
        if params.logprobs:
            self._record_logprobs(logprobs, chosen, live, params.top_logprobs)
        return chosen

    def _record_logprobs(self, logprobs: torch.Tensor, chosen: torch.Tensor, live: list[_Row], k: int) -> None:
        picked = logprobs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1).tolist()
        top_vals, top_idx = logprobs.topk(k, dim=-1) if k else (None, None)
        for i, row in enumerate(live):
            top: dict[str, float] = {}
            if top_vals is not None and top_idx is not None:
                top = {self.tokenizer.decode([int(t)]): float(v) for t, v in zip(top_idx[i].tolist(), top_vals[i].tolist(), strict=True)}
            row.logprobs.append(TokenLogprob(token=self.tokenizer.decode([int(chosen[i])]), logprob=picked[i], top=top))


def _common_prefix(prompts: list[list[int]]) -> int:
    """Length of the longest common prefix, leaving every prompt at least one token of its own."""
    limit = min(len(p) for p in prompts) - 1
    first = prompts[0]
    for k in range(limit):
        token = first[k]
        if any(p[k] != token for p in prompts):
            return k
    return max(limit, 0)
