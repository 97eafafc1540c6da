"""`judgeforge build step-prefs`: the step search's rules on a scripted model (identical candidates, exact and
epsilon ties, the report), then end to end on the embedded model (rows, manifest, resume, kill, DPO)."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from judgeforge.builders.base import BuildContext
from judgeforge.builders.step_prefs import StepPrefsBuilder, StepPrefsConfig, StepPrefsStats
from judgeforge.cli import main
from judgeforge.engines.base import Completion, Request, SamplingParams
from judgeforge.formats.judge import VERDICT_LEAD, format_judgment
from judgeforge.schemas.step_prefs import StepPrefsRow
from judgeforge.sources import Problem
from tests.helpers import STEP_PREFS_TINY, dpo_two_steps, read_rows
from tests.scripted import ScriptedEngine, forced

slow = pytest.mark.slow


# --- the search's rules on a scripted model ---------------------------------------------------------


def scripted_model(candidates: dict[int, list[str | Completion]], judge: str = "bigger") -> ScriptedEngine:
    """Policy and judge in one: step n's k-th sample is ``candidates[n][k]``; the judge prefers the larger
    number (``"bigger"``, parsed verdicts), always names A (``"biased"``), or writes no verdict and is forced
    with P(A) = 0.8 plus a hair for the larger number (``"forced"``: a tie on hard verdicts)."""

    def respond(r: Request, params: SamplingParams, k: int) -> Completion | str:
        text = r.messages[-1]["content"]
        if not text.startswith("You are an impartial judge"):
            step = int(re.search(r"Step (\d+):$", r.prefix).group(1))  # type: ignore[union-attr]
            return candidates[step][k]
        a, b = (int(re.search(rf"\[Step {s}\]\n(\d+)", text).group(1)) for s in "AB")  # type: ignore[union-attr]
        if r.prefix.endswith(VERDICT_LEAD):
            return forced(0.8 + (0.01 if a > b else -0.01))
        if judge == "forced":
            return "Both steps look fine to me."
        return format_judgment("compared", "A" if judge == "biased" or a > b else "B")

    return ScriptedEngine(respond)


def scripted_build(engine: ScriptedEngine, **config: Any) -> tuple[StepPrefsBuilder, list[StepPrefsRow]]:
    cfg = StepPrefsConfig(**{"num_candidates": 3, "max_steps": 3, **config})
    builder = StepPrefsBuilder(cfg, BuildContext({"policy": engine, "judge": engine}, seed=1, run_id="r"))
    rows = builder.build([Problem(id="p", question="What is 2 + 4?", answer="6")])
    return builder, rows  # type: ignore[return-value]


DISTINCT: dict[int, list[str | Completion]] = {1: [" 1", " 3", " 2"], 3: [" 7", " 9", " 8"]}
FAILED = Completion(text="", error="server error")


def test_a_failed_candidate_is_dropped_never_an_empty_rejected_step() -> None:
    """A failed sample used to become the empty step "", which lost every comparison and was written as
    ``rejected``: a DPO pair teaching the policy against an engine error. It is dropped and counted."""
    builder, rows = scripted_build(scripted_model({**DISTINCT, 2: [" 4", FAILED, " 5"]}))
    assert [(r.step_index, r.chosen, r.rejected) for r in rows] == [(1, " 3", " 1"), (2, " 5", " 4"), (3, " 9", " 7")]
    assert rows[1].candidates == [" 4", " 5"] and all(r.rejected.strip() for r in rows)
    stats = builder.stats
    assert stats[StepPrefsStats.FAILED_CANDIDATES] == 1 and stats[StepPrefsStats.CANDIDATES] == 9
    assert stats[StepPrefsStats.SKIPPED_EMPTY] == 0
    assert ("candidate steps sampled (failed, dropped)", "9 (1)") in StepPrefsBuilder.report(dict(stats))


def test_fewer_than_two_candidates_left_after_failures_is_nothing_to_compare() -> None:
    # One candidate survives: accepted without a pair, like identical candidates; none survives: the search ends.
    builder, rows = scripted_build(scripted_model({**DISTINCT, 2: [FAILED, " 6", FAILED]}), max_rollbacks=1)
    assert [r.step_index for r in rows] == [1, 3] and rows[1].previous_steps == ["Step 1: 3", "Step 2: 6"]
    assert builder.stats[StepPrefsStats.IDENTICAL_STEPS] == 1 and builder.stats[StepPrefsStats.FAILED_CANDIDATES] == 2
    builder, rows = scripted_build(scripted_model({**DISTINCT, 2: [FAILED] * 3}))
    assert [r.step_index for r in rows] == [1] and rows[0].solution_status == "no_candidates"
    assert builder.stats[StepPrefsStats.EMPTY_STEPS] == 1 and builder.stats[StepPrefsStats.ROLLBACKS] == 0


def test_all_identical_candidates_accept_the_step_without_a_pair_or_rollback() -> None:
    # Step 2's samples differ only in surrounding space, so the judge sees one candidate three times.
    builder, rows = scripted_build(scripted_model({**DISTINCT, 2: [" 5", "5", "5 \n"]}), max_rollbacks=1)
    assert [r.step_index for r in rows] == [1, 3]  # no pair for step 2
    assert rows[1].previous_steps == ["Step 1: 3", "Step 2: 5"]  # its continuation is that candidate
    assert rows[1].chosen == " 9" and rows[1].rejected == " 7" and rows[1].solution_status == "max_steps"
    stats = builder.stats
    assert stats["identical_steps"] == 1 and stats["tied_steps"] == 0 and stats["rollbacks"] == 0
    assert ("identical steps (no pair)", "1") in StepPrefsBuilder.report(dict(stats))


def test_all_empty_candidates_end_the_search_without_a_rollback() -> None:
    builder, rows = scripted_build(scripted_model({**DISTINCT, 2: ["", " ", "\n"]}))
    assert [r.step_index for r in rows] == [1] and rows[0].solution_status == "no_candidates"
    assert builder.stats["empty_steps"] == 1 and builder.stats["rollbacks"] == 0


def test_forced_soft_verdicts_cannot_split_a_tie() -> None:
    # Every verdict is forced with P(A) = 0.8 ± a hair: on hard verdicts every step ties, and the soft
    # scores differ by less than half a pairwise win — a tie, rolled back until the budget is spent.
    builder, rows = scripted_build(scripted_model({**DISTINCT, 2: [" 4", " 6", " 5"]}, judge="forced"), max_rollbacks=2)
    assert rows == []
    stats = builder.stats
    assert stats["tied_steps"] == stats["tied_steps_epsilon"] == 3 and stats["tied_steps_exact"] == 0
    assert stats["rollbacks"] == 2 and stats["status_rollback_limit"] == 1 and stats["steps_decided_by_soft_scores"] == 0


def test_steps_decided_by_soft_scores_alone_are_counted() -> None:
    builder, rows = scripted_build(scripted_model({**DISTINCT, 2: [" 4", " 6", " 5"]}, judge="forced"), tie_epsilon=0.05)
    assert [r.step_index for r in rows] == [1, 2, 3] and all(r.chosen_score > r.rejected_score for r in rows)
    assert builder.stats["tied_steps"] == 0 and builder.stats["steps_decided_by_soft_scores"] == 3
    assert all(j.forced and j.verdict == "A" for r in rows for j in r.judgments)


def test_exact_and_epsilon_ties_are_counted_apart() -> None:
    builder, rows = scripted_build(scripted_model({**DISTINCT, 2: [" 4", " 6", " 5"]}, judge="biased"), max_rollbacks=1)
    stats = builder.stats
    assert rows == [] and stats["tied_steps"] == stats["tied_steps_exact"] == 2 and stats["tied_steps_epsilon"] == 0
    lines = dict(StepPrefsBuilder.report(dict(stats)))
    assert lines["tied steps: exact / epsilon"] == "2: 2 / 0"
    assert lines["  parsed / forced / unparsable"] == "12 / 0 / 0"


def test_parsed_verdicts_rank_by_pairwise_wins() -> None:
    builder, rows = scripted_build(scripted_model({**DISTINCT, 2: [" 4", " 6", " 5"]}))
    assert [(r.chosen, r.rejected, r.chosen_score, r.rejected_score) for r in rows] == [(" 3", " 1", 4, 0), (" 6", " 4", 4, 0), (" 9", " 7", 4, 0)]
    assert builder.stats["tied_steps"] == 0 and builder.stats["judge_parsed"] == 18


# --- end to end on the embedded model ---------------------------------------------------------------


def build(out: Path, *extra: str) -> Any:
    result = CliRunner().invoke(main, ["build", "step-prefs", *STEP_PREFS_TINY, "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result


@slow
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
        assert row["solution_status"] in {"final_answer", "max_steps", "rollback_limit", "no_candidates"}
        for j in row["judgments"]:
            assert j["verdict"] in (None, "A", "B") and j["first"] != j["second"]
    manifest = json.loads((step_prefs_run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["rows_out"] == len(rows) and manifest["rows_in"] == 3
    assert manifest["builder"] == {"name": "step-prefs", "version": StepPrefsBuilder.version}
    assert manifest["models"]["policy"]["weights_hash"] == manifest["models"]["judge"]["weights_hash"]
    assert manifest["config"]["num_candidates"] == 3 and manifest["source"]["fingerprint"]
    assert manifest["tokens"]["completion"] > 0 and manifest["chunks"] == {"total": 2, "done": 2, "size": 2, "built_this_run": 2}
    stats = manifest["builder_stats"]
    assert stats["judge_judgments"] == stats["judge_parsed"] + stats["judge_forced"] + stats["judge_unparsable"]
    assert stats["pairs"] == len(rows)
    assert stats.get("tied_steps", 0) == stats.get("tied_steps_exact", 0) + stats.get("tied_steps_epsilon", 0)


@slow
def test_second_run_resumes_and_recomputes_nothing(step_prefs_run: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in (step_prefs_run / "data").glob("*.parquet")}
    result = build(step_prefs_run.parent, "--limit", "3", "--chunk-size", "2")
    manifest = json.loads((step_prefs_run / "manifest.json").read_text())
    assert manifest["chunks"]["built_this_run"] == 0
    assert {p: p.stat().st_mtime_ns for p in (step_prefs_run / "data").glob("*.parquet")} == before
    assert "step-prefs · complete" in result.output and "(built this run: 0)" in result.output


@slow
def test_changed_options_do_not_mix_into_an_existing_run(step_prefs_run: Path) -> None:
    result = CliRunner().invoke(
        main, ["build", "step-prefs", *STEP_PREFS_TINY, "--out", str(step_prefs_run.parent), "--limit", "3", "--chunk-size", "2", "--temperature", "0.9"]
    )
    assert result.exit_code == 2 and "built with other options (recorded → now)" in result.output
    assert "  --temperature: 0.5 → 0.9" in result.output and "--cache" in result.output


@slow
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


@slow
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
    assert len(losses) == 2 and all(math.isfinite(loss) and loss > 0 for loss in losses)
