"""`judgeforge build step-prefs` end to end on the embedded model: rows, manifest, resume, kill, DPO."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from judgeforge.cli import main
from tests.helpers import STEP_PREFS_TINY, dpo_two_steps, read_rows

pytestmark = pytest.mark.slow


def build(out: Path, *extra: str) -> Any:
    result = CliRunner().invoke(main, ["build", "step-prefs", *STEP_PREFS_TINY, "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result


def test_build_writes_valid_rows_and_a_full_manifest(step_prefs_run: Path) -> None:
    rows = read_rows(step_prefs_run)
    assert rows, "the build produced no preference pairs"
    for row in rows:
        assert row["chosen"] in row["candidates"] and row["rejected"] in row["candidates"]
        assert row["chosen_score"] > row["rejected_score"]  # ties are dropped, never written
        assert max(row["candidate_scores"]) == row["chosen_score"] and min(row["candidate_scores"]) == row["rejected_score"]
        assert len(row["previous_steps"]) == row["step_index"] - 1
        assert all(step.startswith(f"Step {i}:") for i, step in enumerate(row["previous_steps"], 1))
        assert row["meta"]["builder"] == "step-prefs" and row["gold_answer"]
        assert row["solution_status"] in {"final_answer", "max_steps", "rollback_limit"}
        for j in row["judgments"]:
            assert j["verdict"] in (None, "A", "B") and j["first"] != j["second"]
    manifest = json.loads((step_prefs_run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["rows_out"] == len(rows) and manifest["rows_in"] == 3
    assert manifest["builder"] == {"name": "step-prefs", "version": "0.1.0"}
    assert manifest["models"]["policy"]["weights_hash"] == manifest["models"]["judge"]["weights_hash"]
    assert manifest["config"]["num_candidates"] == 3 and manifest["source"]["fingerprint"]
    assert manifest["tokens"]["completion"] > 0 and manifest["chunks"] == {"total": 2, "done": 2, "size": 2, "built_this_run": 2}
    stats = manifest["builder_stats"]
    assert stats["judge_judgments"] == stats["judge_parsed"] + stats["judge_forced"] + stats["judge_unparsable"]
    assert stats["pairs"] == len(rows)


def test_second_run_resumes_and_recomputes_nothing(step_prefs_run: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in (step_prefs_run / "data").glob("*.parquet")}
    result = build(step_prefs_run.parent, "--limit", "3", "--chunk-size", "2")
    manifest = json.loads((step_prefs_run / "manifest.json").read_text())
    assert manifest["chunks"]["built_this_run"] == 0
    assert {p: p.stat().st_mtime_ns for p in (step_prefs_run / "data").glob("*.parquet")} == before
    assert "step-prefs · complete" in result.output and "(built this run: 0)" in result.output


def test_changed_options_do_not_mix_into_an_existing_run(step_prefs_run: Path) -> None:
    result = CliRunner().invoke(main, ["build", "step-prefs", *STEP_PREFS_TINY, "--out", str(step_prefs_run.parent), "--limit", "3", "--chunk-size", "2", "--temperature", "0.9"])
    assert result.exit_code != 0 and "different config" in result.output


def test_sigkill_midway_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "judgeforge.cli", "build", "step-prefs", *STEP_PREFS_TINY, "--limit", "2", "--chunk-size", "1"]
    subprocess.run([*args, "--out", str(tmp_path / "whole")], check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not (killed / "step_prefs/data/shard-00000.parquet").exists():
        assert proc.poll() is None and time.time() < deadline, "build ended before it could be killed"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "step_prefs/data/shard-00001.parquet").exists(), "killed too late to test anything"
    subprocess.run([*args, "--out", str(killed)], check=True, capture_output=True)
    assert read_rows(killed / "step_prefs") == read_rows(tmp_path / "whole/step_prefs")
    assert not list((killed / "step_prefs/data").glob(".*tmp*"))


def test_stepwise_dpo_trains_two_steps_without_eos_on_intermediate_steps(step_prefs_run: Path, smollm2: Any, tmp_path: Path) -> None:
    from judgeforge.models import load_tokenizer
    from judgeforge.schemas.step_prefs import dpo_view
    from judgeforge.train.stepwise_dpo import StepwiseDPOTrainer

    tokenizer = load_tokenizer(smollm2)
    rows = read_rows(step_prefs_run)
    trainer, losses = dpo_two_steps(dpo_view(rows, tokenizer), smollm2, tmp_path / "dpo", trainer_cls=StepwiseDPOTrainer)
    eos = tokenizer.eos_token_id
    for row, example in zip(rows, trainer.train_dataset, strict=True):
        assert (example["chosen_ids"][-1] == eos) == row["chosen_is_final"]
        assert (example["rejected_ids"][-1] == eos) == row["rejected_is_final"]
        assert tokenizer.decode(example["prompt_ids"]).endswith(f"Step {row['step_index']}:")
    assert len(losses) == 2 and all(loss == loss and loss > 0 for loss in losses)
