"""Recipes, eval and the loop against the real embedded model, TRL trainers and built runs (CPU).

The recipe tests per dataset family live beside their builders (test_ift_eft, test_rprm, test_self_taught,
test_s2r); here: step-wise DPO through the CLI and a YAML recipe, the refusals, ``judgeforge eval``, and
``judgeforge loop --iterations 2`` end to end, killed mid-way and resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.models import resolve_model
from tests.helpers import TINY_TRAIN, read_rows

slow = pytest.mark.slow


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_dpo_recipe_from_yaml_and_from_options_are_the_same_training(step_prefs_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "m2"
    result = invoke("train", "step-dpo.yaml", "--data", str(step_prefs_run), "--model", "smollm2", "--out", str(out), *TINY_TRAIN, "--max-length", "384")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "training_manifest.json").read_text())
    run_manifest = step_prefs_run / "manifest.json"
    assert manifest["trainer"] == "StepwiseDPOTrainer" and manifest["method"] == "dpo"
    assert manifest["data"] == [
        {
            "path": str(step_prefs_run),
            "kind": "step_prefs",
            "run_id": json.loads(run_manifest.read_text())["run_id"],
            "rows": len(read_rows(step_prefs_run)),
            "manifest_sha256": hashlib.sha256(run_manifest.read_bytes()).hexdigest(),
        }
    ]
    assert manifest["base_model"]["weights_hash"] == resolve_model("smollm2").weights_hash
    assert manifest["hyperparameters"]["learning_rate"] == 5e-7 and manifest["trl_config"]["beta"] == 0.1
    assert manifest["versions"]["trl"].startswith("1.") and manifest["device"] == "cpu"
    assert manifest["steps"] == 2 and manifest["final_loss"] == manifest["losses"][-1]["loss"]
    trained = resolve_model(str(out)).weights_hash
    assert trained != manifest["base_model"]["weights_hash"]
    # The same training given as options (the paper defaults and TRL's beta filled in) is recognised as done.
    before = (out / "model.safetensors").stat().st_mtime_ns
    again = train_or_result("dpo", step_prefs_run, out)
    assert again.exit_code == 0 and "already trained" in again.output
    assert (out / "model.safetensors").stat().st_mtime_ns == before
    # Other settings into the same --out are refused, nothing is overwritten.
    other = invoke("train", "dpo", "--data", str(step_prefs_run), "--out", str(out), *TINY_TRAIN, "--max-length", "384", "--trl.beta=0.2")
    assert other.exit_code == 2 and "trained with other data or settings" in other.output
    assert (out / "model.safetensors").stat().st_mtime_ns == before


def train_or_result(method: str, run: Path, out: Path) -> Any:
    return invoke("train", method, "--data", str(run), "--out", str(out), *TINY_TRAIN, "--max-length", "384")


@slow
def test_a_killed_training_resumes_from_its_last_checkpoint(step_prefs_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "m2"
    args = [
        "train",
        "dpo",
        "--data",
        str(step_prefs_run),
        "--out",
        str(out),
        "--max-steps",
        "4",
        "--batch-size",
        "2",
        "--micro-batch-size",
        "2",
        "--logging-steps",
        "1",
        "--max-length",
        "384",
        "--save-steps",
        "1",
    ]
    log = tmp_path / "killed.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "judgeforge.cli", *args], start_new_session=True, stdout=sink, stderr=subprocess.STDOUT)
    state = tmp_path / ".m2.partial/trainer/checkpoint-2/trainer_state.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None and not state.exists():
        time.sleep(0.2)
    assert proc.poll() is None, log.read_text()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "training_manifest.json").read_text())
    assert manifest["steps"] == 4 and int(manifest["resumed_from"].removeprefix("checkpoint-")) >= 2
    assert "resuming from checkpoint-" in result.output
    # Steps before the checkpoint come from its saved state, the rest from this run: every step logged once.
    assert [r["step"] for r in manifest["losses"]] == [1, 2, 3, 4]
    assert not (tmp_path / ".m2.partial").exists() and not (out / "trainer").exists()


def test_recipes_refuse_kinds_they_cannot_train_on(step_prefs_run: Path, tmp_path: Path) -> None:
    for method in ("sft", "rl"):
        result = invoke("train", method, "--data", str(step_prefs_run), "--out", str(tmp_path / method))
        assert result.exit_code == 2
        assert f"holds 'step_prefs' rows: 'judgeforge train {method}' trains on" in result.output
        assert "train it with 'judgeforge train dpo'" in result.output
        assert not (tmp_path / method).exists()


def test_unfinished_and_empty_runs_are_refused(step_prefs_run: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(step_prefs_run, partial)
    manifest = json.loads((partial / "manifest.json").read_text())
    (partial / "manifest.json").write_text(json.dumps({**manifest, "status": "partial"}))
    result = invoke("train", "dpo", "--data", str(partial), "--out", str(tmp_path / "m"))
    assert result.exit_code == 2 and "is unfinished" in result.output
    result = invoke("train", "dpo", "--out", str(tmp_path / "m"))
    assert result.exit_code == 2 and "give at least one --data" in result.output


def test_yaml_recipes_are_checked_before_anything_runs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("recipe: dpo\nlr: 1.0e-6\n")
    result = invoke("train", str(bad))
    assert result.exit_code == 2 and f"{bad}: unknown field(s) lr" in result.output
    bad.write_text("recipe: ppo\n")
    assert "needs a 'recipe:' key, one of sft, dpo, rl" in invoke("train", str(bad)).output
    bad.write_text("recipe: sft\nepochs: many\n")
    assert "field 'epochs'" in invoke("train", str(bad)).output
    assert "shipped recipes: m1-sft.yaml" in invoke("train", "missing.yaml").output


@slow
def test_eval_scores_every_problem_with_its_own_checker(tmp_path: Path) -> None:
    from judgeforge.sources import SourceConfig, load_problems
    from judgeforge.verify import check_answer

    out, plot = tmp_path / "eval.json", tmp_path / "eval.png"
    result = invoke("eval", "--limit", "3", "--max-tokens", "48", "--seed", "7", "--out", str(out), "--plot", str(plot))
    assert result.exit_code == 0, result.output
    (report,) = json.loads(out.read_text())
    problems = load_problems(SourceConfig(source="gym:gsm_symbolic", limit=3, seed=7))
    assert [r["id"] for r in report["results"]] == [p.id for p in problems]
    assert report["graded"] == 3 and report["correct"] == sum(r["correct"] for r in report["results"])
    assert report["accuracy"] == report["correct"] / 3 and plot.stat().st_size > 0
    # The answer check is the problem's own: a gold-answer solution is correct, another answer is not.
    assert check_answer(problems[0], f"Step 1: The answer is {problems[0].answer}") is True
    assert "smollm2" in result.output and f"{report['accuracy']:.1%}" in result.output


PAIRS = Path(__file__).resolve().parents[1] / "docs" / "examples" / "pairs-rewardbench.jsonl"
"""The README's hand-written held-out pairs (RewardBench layout)."""

LOOP_ARGS = [
    "--method",
    "self-rewarding",
    "--iterations",
    "2",
    "--limit",
    "2",
    "--eval-limit",
    "2",
    "--eval-max-tokens",
    "32",
    "--spec",
    "step_prefs_weak_judge",
    "--build-args",
    "--num-candidates 3 --max-steps 2 --max-step-tokens 24 --judge-max-tokens 16 --tie-epsilon 0",
    "--train-args",
    "--max-steps 2 --batch-size 2 --micro-batch-size 2 --logging-steps 1 --max-length 384",
]


def _loop(out: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:  # a file, not a pipe: nobody reads the output while the loop runs
        return subprocess.Popen(
            [sys.executable, "-m", "judgeforge.cli", "loop", *LOOP_ARGS, "--out", str(out)], start_new_session=True, stdout=sink, stderr=subprocess.STDOUT
        )


@slow
def test_loop_runs_two_iterations_and_resumes_after_a_kill(tmp_path: Path) -> None:
    out = tmp_path / "loop"
    state = out / "loop.json"
    # Kill the whole loop (and its stage) once iteration 1 is trained, while iteration 1's eval runs.
    log = tmp_path / "killed.log"
    proc = _loop(out, log)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and "train" in (json.loads(state.read_text())["iterations"] or [{}])[0]:
            break
        time.sleep(0.5)
    assert proc.poll() is None, log.read_text()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = json.loads(state.read_text())
    assert killed["status"] == "running" and set(killed["iterations"][0]) >= {"build", "curate", "train"}
    assert "eval" not in killed["iterations"][0]
    build_manifest = out / "iter-1/build/step_prefs/manifest.json"
    checkpoint = out / "iter-1/model/model.safetensors"
    stamps = {p: p.stat().st_mtime_ns for p in (build_manifest, checkpoint, out / "eval-m1.json")}

    wide = {**os.environ, "COLUMNS": "200"}  # the summary table on one line per row
    result = subprocess.run([sys.executable, "-m", "judgeforge.cli", "loop", *LOOP_ARGS, "--out", str(out)], capture_output=True, text=True, env=wide)
    assert result.returncode == 0, result.stdout + result.stderr
    # Resumed at iteration 1's eval: nothing finished before the kill ran again.
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert "iteration 1/2 · build" not in result.stdout and "iteration 1/2 · eval" in result.stdout

    final = json.loads(state.read_text())
    assert final["status"] == "complete" and [r["iteration"] for r in final["iterations"]] == [1, 2]
    assert final["iterations"][0]["build"] == killed["iterations"][0]["build"]
    for i, record in enumerate(final["iterations"], start=1):
        assert set(record) >= {"build", "curate", "train", "eval"}
        build = json.loads((out / f"iter-{i}/build/step_prefs/manifest.json").read_text())
        # M_i is both policy and judge of iteration i's build: iteration 2 builds with iteration 1's checkpoint.
        assert build["models"]["policy"]["weights_hash"] == resolve_model(record["model_in"]).weights_hash == build["models"]["judge"]["weights_hash"]
        assert record["build"]["rows"] == build["rows_out"] and record["build"]["run_id"] == build["run_id"]
        assert record["curate"]["rows"] == len(read_rows(out / f"iter-{i}/curated")) > 0
        training = json.loads((out / f"iter-{i}/model/training_manifest.json").read_text())
        assert training["base_model"]["name"] == record["model_in"] and training["train_loss"] == record["train"]["train_loss"]
        assert training["data"][0]["path"] == str(out / f"iter-{i}/curated")
        assert 0.0 <= record["build"]["judge_parse_failure_rate"] <= 1.0 and record["build"]["quality"] is not None
        assert record["eval"]["graded"] == 2
    assert final["iterations"][1]["model_in"] == str(out / "iter-1/model")
    hashes = {resolve_model(str(out / f"iter-{i}/model")).weights_hash for i in (1, 2)} | {resolve_model("smollm2").weights_hash}
    assert len(hashes) == 3  # M1 → M2 → M3 are three different models
    assert (out / "loop.png").stat().st_size > 0
    assert "held-out acc" in result.stdout and "M3" in result.stdout
    # A finished loop re-run does nothing; other settings are refused.
    again = subprocess.run([sys.executable, "-m", "judgeforge.cli", "loop", *LOOP_ARGS, "--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 0 and "$ judgeforge" not in again.stdout
    other = subprocess.run([sys.executable, "-m", "judgeforge.cli", "loop", *LOOP_ARGS, "--limit", "3", "--out", str(out)], capture_output=True, text=True)
    assert other.returncode == 2 and "limit differ" in other.stderr


def test_loop_options_are_checked_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "loop"
    cases = {
        ("--source", "problems.jsonl"): "--eval-source is required when --source is not a gym: task",
        ("--eval-seed", "1", "--iterations", "3"): "--eval-seed 1 is one of the build seeds (0..2)",
        ("--build-args", "--limit 3"): "--build-args may not set --limit: the loop sets them",
        ("--train-args", "--model x --out y"): "--train-args may not set --model, --out: the loop sets them",
        ("--build-args", "--judge-max-tokens '16"): "--build-args: No closing quotation",
        ("--build-args", "--offset 4"): "--build-args may not set --offset: the loop sets them",
        ("--from-m0", "--eval-seed", "3", "--iterations", "3"): "--eval-seed 3 is one of the build seeds (0..3)",
        ("--from-m0", "--ift-args", "--from samples"): "--ift-args may not set --from: the loop sets them",
        ("--from-m0", "--sft-args", "--data x"): "--sft-args may not set --data: the loop sets them",
        ("--m0-limit", "4"): "--m0-limit: the M0 → M1 stage runs only with --from-m0",
        ("--ift-from", "samples"): "--ift-from: the M0 → M1 stage runs only with --from-m0",
        ("--train-args", "--lora-r 8"): "--train-args: with --lora-r add --merge",
        ("--from-m0", "--sft-args", "--peft.r=8 --max-steps 2"): "--sft-args: with --lora-r add --merge",
        ("--problems-per-iteration", "400,800", "--iterations", "3"): "one count (≥ 1) for every iteration, or one per iteration (3)",
        ("--problems-per-iteration", "many"): "--problems-per-iteration 'many': give whole numbers separated by commas",
    }
    for args, message in cases.items():
        result = invoke("loop", "--method", "self-rewarding", *args, "--out", str(out))
        assert result.exit_code == 2 and message in result.output, result.output
        assert not out.exists()
    result = invoke("loop", "--method", "self-taught", "--from-m0", "--out", str(out))
    assert result.exit_code == 2 and "--from-m0: the M0 → M1 stage (IFT + EFT, then SFT) is process-based self-rewarding's" in result.output


def test_each_build_of_the_loop_takes_new_problems(tmp_path: Path) -> None:
    """A file source advances by rows (M0's block first, then each iteration's); a gym: task by seed."""
    from rich.console import Console

    from judgeforge.options import EngineChoices, EngineSpec
    from judgeforge.train.loop import Loop, build_settings

    common: dict[str, Any] = dict(
        method="self-rewarding", engines=EngineChoices(policy=EngineSpec()), limit=16, seed=5, eval_limit=2, eval_seed=10_000, eval_max_tokens=8, spec=None
    )
    common |= dict(build_args="", train_args="")
    settings = build_settings(
        iterations=3, source="problems.jsonl", eval_source="held.jsonl", from_m0=True, m0_limit=3, problems_per_iteration="4,8,12", **common
    )
    loop = Loop(settings, tmp_path / "file", Console())

    def problems(argv: list[str]) -> tuple[str | None, ...]:
        return tuple(argv[argv.index(flag) + 1] if flag in argv else None for flag in ("--limit", "--seed", "--offset"))

    assert problems(loop.m0_build_argv("ift")) == problems(loop.m0_build_argv("eft")) == ("3", "5", "0")
    assert [problems(loop.build_argv(i)) for i in (1, 2, 3)] == [("4", "6", "3"), ("8", "7", "7"), ("12", "8", "15")]
    ift = loop.m0_build_argv("ift")
    assert loop.model_in(1) == str(tmp_path / "file" / "m0" / "model") and ift[:2] == ["build", "ift"] and ift[ift.index("--from") + 1] == "gold"
    gym = Loop(build_settings(iterations=2, source="gym:basic_arithmetic", eval_source=None, **common), tmp_path / "gym", Console())
    assert [problems(gym.build_argv(i)) for i in (1, 2)] == [("16", "5", None), ("16", "6", None)] and gym.model_in(1) == "smollm2"


@slow
def test_self_taught_loop_judges_with_m_i_and_fine_tunes_the_seed_model(tmp_path: Path) -> None:
    out = tmp_path / "ste-loop"
    args = [
        "loop",
        "--method",
        "self-taught",
        "--iterations",
        "2",
        # float32: with --dtype auto (bf16 on AMX CPUs) this tiny judge's iteration-2 verdicts all fall
        # on one label and balancing A/B leaves nothing to train on; in float32 both labels survive.
        "--dtype",
        "float32",
        "--source",
        "gym:basic_arithmetic",
        "--limit",
        "8",
        "--eval-limit",
        "1",
        "--eval-max-tokens",
        "16",
        "--judge-eval-pairs",
        str(PAIRS),
        "--build-args",
        "--num-judgments 6 --keep-per-pair 6 --instruction-max-tokens 40 --response-max-tokens 24 --judge-max-tokens 16 --allow-forced-verdicts",
        "--train-args",
        "--max-steps 2 --batch-size 2 --micro-batch-size 2",
        "--out",
        str(out),
    ]
    result = subprocess.run([sys.executable, "-m", "judgeforge.cli", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    state = json.loads((out / "loop.json").read_text())
    seed = resolve_model("smollm2").weights_hash
    for i, record in enumerate(state["iterations"], start=1):
        build = json.loads((out / f"iter-{i}/build/ste_judgments/manifest.json").read_text())
        # The seed model writes the pairs; M_i judges them; the rows say which iteration's judge wrote them.
        assert build["models"]["policy"]["weights_hash"] == seed
        assert build["models"]["judge"]["weights_hash"] == resolve_model(record["model_in"]).weights_hash
        assert {r["iteration"] for r in read_rows(out / f"iter-{i}/curated")} == {i}
        assert record["build"]["quality_name"] == "correct-verdict rate"
        stats = build["builder_stats"]
        # The correct-verdict rate is over parsed verdicts; forced ones are reported apart.
        assert record["build"]["quality"] == (round(stats["judgments_correct"] / stats["judge_parsed"], 4) if stats.get("judge_parsed") else None)
        assert record["build"]["forced_quality_name"] == "forced verdicts agreeing"
        # Each iteration fine-tunes the seed model on its own judgments (Wang et al.), not M_i.
        training = json.loads((out / f"iter-{i}/model/training_manifest.json").read_text())
        assert training["base_model"]["weights_hash"] == seed and training["method"] == "sft"
    assert state["iterations"][1]["model_in"] == str(out / "iter-1/model")
    # Every model's judge accuracy on the held-out pairs is recorded beside its held-out accuracy, as eval judge measured it.
    evals = [(state["baseline"]["eval"], out / "eval-m1-judge.json")] + [
        (r["eval"], out / f"iter-{r['iteration']}/eval-judge.json") for r in state["iterations"]
    ]
    for record, path in evals:
        (measured,) = json.loads(path.read_text())
        assert record["judge"]["accuracy"] == measured["overall"]["accuracy"] and measured["overall"]["pairs"] == 6
    assert [json.loads(p.read_text())[0]["model"] for _, p in evals] == ["smollm2", str(out / "iter-1/model"), str(out / "iter-2/model")]


ARITHMETIC = Path(__file__).resolve().parents[1] / "docs" / "examples" / "arithmetic-steps.jsonl"
"""The README's easy problems with GSM8K-style worked answers ('#### N'): gold IFT solutions, EFT candidates the 135M model sometimes gets right."""


@slow
def test_loop_from_m0_builds_ift_and_eft_trains_m1_then_runs_dpo_on_new_problems(tmp_path: Path) -> None:
    source, held = ARITHMETIC, tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps({"question": f"What is {n} + 1?", "answer": str(n + 1)}) + "\n" for n in (11, 12)))
    out = tmp_path / "loop"
    args = [
        "loop",
        "--method",
        "self-rewarding",
        "--from-m0",
        "--iterations",
        "1",
        "--source",
        str(source),
        "--m0-limit",
        "4",
        "--problems-per-iteration",
        "2",
        "--eval-source",
        str(held),
        "--eval-limit",
        "2",
        "--eval-max-tokens",
        "24",
        "--spec",
        "step_prefs_weak_judge",
        "--eft-args",
        "--num-candidates 4 --rollouts 2 --max-step-tokens 24 --rollout-max-tokens 48 --judge-max-tokens 16 --judgment-source rollouts",
        "--sft-args",
        "--max-steps 2 --batch-size 2 --micro-batch-size 2 --logging-steps 1 --max-length 512",
        "--build-args",
        "--num-candidates 3 --max-steps 2 --max-step-tokens 24 --judge-max-tokens 16 --tie-epsilon 0",
        "--train-args",
        "--max-steps 2 --batch-size 2 --micro-batch-size 2 --logging-steps 1 --max-length 384",
        "--out",
        str(out),
    ]
    wide = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "judgeforge.cli", *args], capture_output=True, text=True, env=wide)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    state = json.loads((out / "loop.json").read_text())
    m0, [iteration] = state["m0"], state["iterations"]
    assert state["status"] == "complete" and state["baseline"]["model"] == "smollm2" and (out / "eval-m0.json").is_file()
    assert set(m0) >= {"ift", "eft", "train", "eval"} and m0["eval"]["graded"] == 2
    # M0 → M1: IFT (gold) and EFT built by M0 on the first 4 problems, M0 fine-tuned on both.
    builds = {kind: json.loads((out / f"m0/build/{kind}/manifest.json").read_text()) for kind in ("ift", "eft")}
    for kind, build in builds.items():
        assert build["rows_out"] == m0[kind]["rows"] > 0 and build["source"]["limit"] == 4 and build["source"].get("offset", 0) == 0
    assert builds["ift"]["config"]["mode"] == "gold" and builds["eft"]["models"]["policy"]["weights_hash"] == resolve_model("smollm2").weights_hash
    m1 = json.loads((out / "m0/model/training_manifest.json").read_text())
    assert m1["method"] == "sft" and m1["base_model"]["name"] == "smollm2" and [d["kind"] for d in m1["data"]] == ["ift", "eft"]
    assert m1["train_loss"] == m0["train"]["train_loss"] and m1["hyperparameters"]["learning_rate"] == 1e-6  # the paper's M0 → M1 value
    # Iteration 1 starts from M1 and builds on the next two problems, none of M0's.
    assert iteration["model_in"] == str(out / "m0/model")
    step_prefs = json.loads((out / "iter-1/build/step_prefs/manifest.json").read_text())
    assert step_prefs["source"]["offset"] == 4 and step_prefs["source"]["limit"] == 2
    assert step_prefs["models"]["policy"]["weights_hash"] == resolve_model(str(out / "m0/model")).weights_hash
    m0_problems = {r["source_id"] for kind in ("ift", "eft") for r in read_rows(out / f"m0/build/{kind}")}
    assert m0_problems and {r["source_id"] for r in read_rows(out / "iter-1/build/step_prefs")}.isdisjoint(m0_problems)
    m2 = json.loads((out / "iter-1/model/training_manifest.json").read_text())
    assert m2["method"] == "dpo" and m2["base_model"]["name"] == str(out / "m0/model")
    assert "M0→M1" in result.stdout and "M2" in result.stdout and (out / "loop.png").stat().st_size > 0
    # Resumable stage by stage: with the M0 stage's eval forgotten, a re-run redoes that one stage and nothing else.
    del state["m0"]["eval"]
    (out / "loop.json").write_text(json.dumps(state))
    again = subprocess.run([sys.executable, "-m", "judgeforge.cli", *args], capture_output=True, text=True, env=wide)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "M0 → M1 · eval" in again.stdout and "M0 → M1 · ift" not in again.stdout and "iteration 1/1 · build" not in again.stdout
    assert json.loads((out / "loop.json").read_text())["m0"]["eval"]["graded"] == 2
