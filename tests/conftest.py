"""Shared fixtures: the real embedded model (converted once per machine) and a transformers engine on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from judgeforge.engines.transformers import TransformersEngine
from judgeforge.models import ModelRef, resolve_model


@pytest.fixture(scope="session")
def smollm2() -> ModelRef:
    return resolve_model("smollm2")


@pytest.fixture(scope="session")
def engine(smollm2: ModelRef) -> Iterator[TransformersEngine]:
    eng = TransformersEngine(smollm2, device="cpu", batch_size=16)
    yield eng
    eng.close()
