"""Which floating-point format an engine computes in: ``--dtype auto`` resolved against the hardware.

bfloat16 halves the bytes every matmul reads and, on hardware with native bf16 arithmetic, doubles its
throughput; on a CPU without it, torch emulates bf16 and it is slower than float32. So ``auto`` means
bfloat16 on a GPU of compute capability 8 or more (Ampere and later) and on a CPU whose flags announce
native bf16 matmul (``amx_bf16``: Sapphire Rapids and later; ``avx512_bf16``: Cooper Lake, Zen 4 and
later), float32 everywhere else. The transformers and vLLM engines resolve their dtype here, and the
resolved name is part of their request-cache identity (:attr:`judgeforge.engines.base.Engine.numerics`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from judgeforge.errors import UserError

Numerics = Literal["float32", "bfloat16"]

CPU_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
"""x86 CPU flags (as Linux lists them in ``/proc/cpuinfo``) that mean native bf16 matmul."""

CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU feature flags Linux reports (``flags`` lines of ``/proc/cpuinfo``); empty where unreadable."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return frozenset(flags)


def cuda_has_bf16(device: str) -> bool:
    """Whether the CUDA device computes bf16 natively (compute capability 8.0 or more)."""
    import torch

    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def resolve_dtype(dtype: str, device: str, flags: frozenset[str] | None = None) -> Numerics:
    """``auto`` → ``bfloat16`` where the device has native bf16 matmul, else ``float32``; others pass through.

    ``device`` is a torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``); ``flags`` are the CPU
    flags to judge a CPU by (default: this machine's, :func:`cpu_flags`).
    """
    if dtype == "float32":
        return "float32"
    if dtype == "bfloat16":
        return "bfloat16"
    if dtype != "auto":
        raise UserError(f"unknown dtype '{dtype}': choose auto, float32 or bfloat16")
    if device.startswith("cuda"):
        return "bfloat16" if cuda_has_bf16(device) else "float32"
    if device == "cpu":
        return "bfloat16" if (cpu_flags() if flags is None else flags) & CPU_BF16_FLAGS else "float32"
    return "float32"
