"""Helpers shared by the tests: reading and writing run dirs, tiny build settings, tiny models, tiny real TRL training runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from judgeforge.files import write_json
from judgeforge.models import ModelRef, load_tokenizer
from judgeforge.runs import RunDir
from judgeforge.schemas.base import BaseRow, RowMeta, rows_to_table

STEP_PREFS_TINY = [
    "--source",
    "gym:gsm_symbolic",
    "--num-candidates",
    "3",
    "--max-steps",
    "2",
    "--max-step-tokens",
    "24",
    "--judge-max-tokens",
    "16",
    "--tie-epsilon",
    "0",
    "--seed",
    "3",
]


def rprm_pair(question: str, previous_steps: list[str], now_step: str, chosen: str, rejected: str) -> dict[str, Any]:
    """The fields of one rprm_prefs row (a right and a wrong analysis of ``now_step``) for :func:`write_run`."""
    counts = {"num_analyses": 2, "num_matching": 1, "num_mismatching": 1, "num_malformed": 0, "chosen_index": 0, "rejected_index": 1}
    verdicts = {"chosen_verdict": "Yes", "rejected_verdict": "No", "chosen_forced_verdict": False, "rejected_forced_verdict": False}
    step = {"question": question, "previous_steps": previous_steps, "now_step": now_step, "step_index": len(previous_steps), "label": "Yes"}
    return {**step, "gold_answer": "7", **counts, **verdicts, "chosen": chosen, "rejected": rejected}


# Two optimiser steps of two examples: what every recipe test trains (the real model, CPU).
TINY_TRAIN = ["--max-steps", "2", "--batch-size", "2", "--micro-batch-size", "2", "--logging-steps", "1"]

CPU_ARGS: dict[str, Any] = dict(max_steps=2, per_device_train_batch_size=2, use_cpu=True, bf16=False, report_to="none", logging_steps=1, save_strategy="no")


def read_rows(run: Path) -> list[dict[str, Any]]:
    """Every row of a run dir, sorted by id."""
    rows = [r for shard in sorted((run / "data").glob("shard-*.parquet")) for r in pq.read_table(shard).to_pylist()]
    return sorted(rows, key=lambda r: r["id"])


def write_run(root: Path, row_model: type[BaseRow], rows: list[dict[str, Any]], source_ids: list[str] | None = None) -> Path:
    """A finished one-shard run dir of ``row_model``'s kind holding ``rows`` (problem ``s<i>`` each, unless ``source_ids``)."""
    meta = RowMeta(builder="test", builder_version="0", run_id=root.name, model="test")
    ids = source_ids or [f"s{i}" for i in range(len(rows))]
    validated = [row_model(id=f"r{i}", source_id=sid, meta=meta, **row) for i, (row, sid) in enumerate(zip(rows, ids, strict=True))]
    RunDir(root, row_model.kind).write_chunk(0, rows_to_table(row_model, validated), {})
    write_json(root / "manifest.json", {"status": "complete", "kind": row_model.kind, "run_id": root.name})
    return root


def tiny_llama(smollm2: ModelRef, path: Path, zero_attention: bool = False) -> Path:
    """A 2-layer Llama with the embedded model's vocabulary and tokenizer and random weights, saved at ``path``.

    ``zero_attention`` zeroes every attention output projection, so each position's logits depend on its own token only.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(smollm2.path)
    config.update(
        {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "initializer_range": 0.2,
        }
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    if zero_attention:
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.o_proj.weight.zero_()
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(smollm2.path).save_pretrained(path)
    return path


def _losses(trainer: Any) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def train_tiny(method: str, data: list[Path], out: Path, *options: str) -> dict[str, Any]:
    """``judgeforge train METHOD`` for 2 optimiser steps on real runs, on CPU; returns the training manifest."""
    from click.testing import CliRunner

    from judgeforge.cli import main

    args = ["train", method, *(a for run in data for a in ("--data", str(run))), "--out", str(out), *TINY_TRAIN, *options]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "training_manifest.json").read_text())
    assert manifest["steps"] == 2 and [r["kind"] for r in manifest["data"]] == [json.loads((r / "manifest.json").read_text())["kind"] for r in data]
    assert (out / "model.safetensors").is_file()
    return manifest


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


def assert_pipeline_on(run: Path, tmp: Path) -> None:
    """A real build through the rest of the pipeline: ``audit`` agrees on every row, ``curate`` with the kind's
    default spec runs every filter of it, and the curated run's card renders with the kind's paper and plots."""
    import yaml
    from click.testing import CliRunner

    from judgeforge.cli import main
    from judgeforge.curation.audit import audit_run
    from judgeforge.curation.pipeline import default_spec_path
    from judgeforge.schemas.registry import get_kind

    _, results = audit_run(run)
    disagreements = {r.check.name: r.examples for r in results if r.disagreements}
    assert not disagreements, f"audit of {run}: {disagreements}"
    result = CliRunner().invoke(main, ["audit", str(run)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output

    kind = json.loads((run / "manifest.json").read_text())["kind"]
    curated = tmp / f"curated-{kind}"
    result = CliRunner().invoke(main, ["curate", str(run), "--out", str(curated)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((curated / "manifest.json").read_text())
    spec = yaml.safe_load(default_spec_path(kind).read_text())
    assert [step["filter"] for step in manifest["curation"]["funnel"]] == [f["filter"] for f in spec["filters"]]
    assert manifest["curation"]["funnel"][0]["rows_in"] == json.loads((run / "manifest.json").read_text())["rows_out"]

    card = tmp / f"card-{kind}"
    result = CliRunner().invoke(main, ["card", str(curated), "--out", str(card)])
    assert result.exit_code == 0, result.output
    text = (card / "README.md").read_text()
    assert text.startswith("---\n") and f"({kind})" in text and "## Curation funnel" in text
    declared = get_kind(kind)
    assert ("## Citation" in text) == (declared.paper is not None)
    for plot in declared.card.plots:
        assert (card / f"plot-{plot.name}.png").is_file(), plot.name
