"""Helpers shared by the tests: reading run dirs, tiny build settings, tiny real TRL training runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from judgeforge.models import ModelRef, load_tokenizer

STEP_PREFS_TINY = ["--source", "gym:gsm_symbolic", "--num-candidates", "3", "--max-steps", "2", "--max-step-tokens", "24", "--judge-max-tokens", "16", "--seed", "3"]

CPU_ARGS: dict[str, Any] = dict(
    max_steps=2, per_device_train_batch_size=2, use_cpu=True, bf16=False, report_to="none", logging_steps=1, save_strategy="no"
)


def read_rows(run: Path) -> list[dict[str, Any]]:
    """Every row of a run dir, sorted by id."""
    rows = [r for shard in sorted((run / "data").glob("shard-*.parquet")) for r in pq.read_table(shard).to_pylist()]
    return sorted(rows, key=lambda r: r["id"])


def _losses(trainer: Any) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def sft_two_steps(records: list[dict[str, Any]], model: ModelRef, out: Path, max_length: int = 384) -> list[float]:
    """Train ``SFTTrainer`` for 2 steps on ``records`` (any TRL SFT format); return the logged losses."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model.path),
        args=SFTConfig(output_dir=str(out), max_length=max_length, **CPU_ARGS),
        train_dataset=Dataset.from_list(records),
        processing_class=load_tokenizer(model),
    )
    result = trainer.train()
    assert result.global_step == 2
    return _losses(trainer)


def dpo_two_steps(records: list[dict[str, Any]], model: ModelRef, out: Path, trainer_cls: Any = None, max_length: int = 384) -> tuple[Any, list[float]]:
    """Train a ``DPOTrainer`` (or subclass) for 2 steps on prompt/chosen/rejected records; return it and its losses."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    trainer = (trainer_cls or DPOTrainer)(
        model=AutoModelForCausalLM.from_pretrained(model.path),
        ref_model=AutoModelForCausalLM.from_pretrained(model.path),
        args=DPOConfig(output_dir=str(out), max_length=max_length, **CPU_ARGS),
        train_dataset=Dataset.from_list(records),
        processing_class=load_tokenizer(model),
    )
    result = trainer.train()
    assert result.global_step == 2
    return trainer, _losses(trainer)
