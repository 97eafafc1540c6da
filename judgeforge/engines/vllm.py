"""In-process vLLM engine for GPU nodes (``pip install judgeforge[vllm]``).

Step-wise search re-sends the same long prefix (problem + previous steps) for every candidate and every
judgment; vLLM's automatic prefix caching turns that into a cache hit instead of a recomputation, which
is where most of its speed-up over the transformers engine comes from in these builders. Each request
gets its own seeded ``SamplingParams`` so, as with the other engines, a sample does not depend on its
batch-mates. vLLM is imported only when this engine is chosen.
"""

from __future__ import annotations

from typing import Any

from judgeforge.chat import render_prompt
from judgeforge.engines.base import (
    Completion,
    Engine,
    FinishReason,
    ProgressFn,
    Request,
    SamplingParams,
    TokenLogprob,
)
from judgeforge.errors import UserError
from judgeforge.models import ModelRef, hash_tokenizer


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise UserError("--engine vllm needs vLLM and a GPU: pip install 'judgeforge[vllm]'") from exc
    return vllm


class VLLMEngine(Engine):
    name = "vllm"

    def __init__(self, ref: ModelRef, trust_remote_code: bool = False, gpu_memory_utilization: float = 0.85, **llm_options: Any) -> None:
        vllm = _import_vllm()
        self._vllm = vllm
        self.llm = vllm.LLM(
            model=str(ref.path),
            enable_prefix_caching=True,
            trust_remote_code=trust_remote_code,
            gpu_memory_utilization=gpu_memory_utilization,
            **llm_options,
        )
        self.tokenizer = self.llm.get_tokenizer()
        super().__init__(ref.model_id, ref.weights_hash, hash_tokenizer(self.tokenizer))

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "prefix_caching": True, "vllm_version": getattr(self._vllm, "__version__", "?")}

    def _generate(self, requests: list[Request], params: SamplingParams, progress: ProgressFn | None) -> list[list[Completion]]:
        prompts = [render_prompt(self.tokenizer, r.messages, r.prefix) for r in requests]
        want_logprobs = (params.top_logprobs or 1) if params.logprobs else None
        sampling = [
            self._vllm.SamplingParams(
                n=params.n,
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_tokens,
                stop=list(params.stop) or None,
                seed=r.effective_seed(params),
                logprobs=want_logprobs,
            )
            for r in requests
        ]
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
        results: list[list[Completion]] = []
        for output in outputs:
            completions = []
            for choice in output.outputs:
                completions.append(
                    Completion(
                        text=choice.text,
                        prompt_tokens=len(output.prompt_token_ids or []),
                        completion_tokens=len(choice.token_ids),
                        finish_reason=self._finish(choice),
                        logprobs=self._logprobs(choice) if params.logprobs else None,
                    )
                )
                if progress is not None:
                    progress(len(choice.token_ids))
            results.append(completions)
        return results

    @staticmethod
    def _finish(choice: Any) -> FinishReason:
        if choice.finish_reason == "length":
            return "length"
        return "stop" if isinstance(choice.stop_reason, str) else "eos"

    def _logprobs(self, choice: Any) -> list[TokenLogprob] | None:
        if choice.logprobs is None:
            return None
        out = []
        for token_id, step in zip(choice.token_ids, choice.logprobs, strict=False):
            top = {lp.decoded_token or self.tokenizer.decode([tid]): lp.logprob for tid, lp in step.items()}
            picked = step[token_id]
            out.append(TokenLogprob(token=picked.decoded_token or self.tokenizer.decode([token_id]), logprob=picked.logprob, top=top))
        return out

    def close(self) -> None:
        del self.llm
