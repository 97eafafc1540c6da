"""The commands users run with ``--engine vllm``: a build that resumes, eval, the loop, and a script's spawn guard.

Each starts its own vLLM engine, as a user's run does (eager, small KV cache: ``CLI_VLLM_ARGS``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.engines.hardware import resolve_dtype
from judgeforge.models import resolve_model
from tests.helpers import STEP_PREFS_TINY, read_rows
from tests.vllm.conftest import CLI_VLLM_ARGS

ROOT = Path(__file__).resolve().parents[2]


BUILD = ["build", "step-prefs", *STEP_PREFS_TINY, "--limit", "2", "--chunk-size", "1", "--engine", "vllm", *CLI_VLLM_ARGS]


@pytest.fixture(scope="module")
def vllm_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small step-prefs build on vLLM in this process (its out dir)."""
    out = tmp_path_factory.mktemp("vllm-build")
    first = CliRunner().invoke(main, [*BUILD, "--out", str(out)])
    assert first.exit_code == 0, first.output
    return out


def test_build_step_prefs_on_vllm_writes_rows_and_its_resume_recomputes_nothing(vllm_build: Path) -> None:
    args = [*BUILD, "--out", str(vllm_build)]
    run = vllm_build / "step_prefs"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["rows_in"] == 2 and manifest["chunks"]["built_this_run"] == 2
    policy = manifest["engines"]["policy"]
    assert policy["engine"] == "vllm" and policy["chunked_prefill"] is False and policy["vllm_args"]["enforce_eager"] is True
    if policy["device"] == "cpu":  # --dtype auto: bfloat16 on a CPU with native bf16 matmul, float32 otherwise
        assert policy["dtype"] == resolve_dtype("auto", "cpu")
    assert manifest["engines"]["judge"] == policy  # self-rewarding: one engine for both roles
    stats = manifest["builder_stats"]
    assert stats["judge_judgments"] == stats["judge_parsed"] + stats["judge_forced"] + stats["judge_unparsable"] > 0
    rows = read_rows(run)
    for row in rows:
        assert row["chosen"] in row["candidates"] and row["rejected"] in row["candidates"] and row["chosen_score"] > row["rejected_score"]
    shards = {p: p.stat().st_mtime_ns for p in (run / "data").glob("*.parquet")}

    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    resumed = json.loads((run / "manifest.json").read_text())
    assert resumed["chunks"]["built_this_run"] == 0 and resumed["rows_out"] == manifest["rows_out"]
    assert {p: p.stat().st_mtime_ns for p in (run / "data").glob("*.parquet")} == shards and read_rows(run) == rows


def test_a_ray_worker_builds_on_vllm_the_rows_of_a_local_vllm_build(vllm_build: Path, tmp_path: Path) -> None:
    """The Ray executor with vLLM inside its worker (an actor process that starts vLLM's own engine processes)."""
    command = [sys.executable, "-m", "judgeforge.cli", *BUILD, "--executor", "ray", "--num-workers", "1", "--cpus-per-worker", "2", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "step_prefs/manifest.json").read_text())
    assert manifest["executor"]["name"] == "ray" and manifest["engines"]["policy"]["engine"] == "vllm"
    assert manifest["fingerprint"] == json.loads((vllm_build / "step_prefs/manifest.json").read_text())["fingerprint"]
    assert read_rows(tmp_path / "step_prefs") == read_rows(vllm_build / "step_prefs")


def test_eval_on_vllm_matches_eval_on_transformers(tmp_path: Path) -> None:
    reports = {}
    for engine in ("vllm", "transformers"):
        extra = CLI_VLLM_ARGS if engine == "vllm" else []
        out = tmp_path / f"{engine}.json"
        result = CliRunner().invoke(main, ["eval", "--limit", "3", "--max-tokens", "32", "--engine", engine, "--dtype", "float32", *extra, "--out", str(out)])
        assert result.exit_code == 0, result.output
        (reports[engine],) = json.loads(out.read_text())
    assert reports["vllm"]["graded"] == 3 and reports["vllm"]["weights_hash"] == resolve_model("smollm2").weights_hash
    # greedy on the same float32 weights: the same answers, problem by problem
    assert [r["answer"] for r in reports["vllm"]["results"]] == [r["answer"] for r in reports["transformers"]["results"]]


def test_loop_builds_and_evaluates_on_vllm(tmp_path: Path) -> None:
    out = tmp_path / "loop"
    args = [
        "loop",
        "--method",
        "self-rewarding",
        "--iterations",
        "1",
        "--limit",
        "2",
        "--eval-limit",
        "2",
        "--eval-max-tokens",
        "24",
        "--spec",
        "step_prefs_weak_judge",
        "--build-args",
        "--num-candidates 3 --max-steps 2 --max-step-tokens 24 --judge-max-tokens 16 --tie-epsilon 0",
        "--train-args",
        "--max-steps 2 --batch-size 2 --micro-batch-size 2 --logging-steps 1 --max-length 384",
        "--engine",
        "vllm",
        *CLI_VLLM_ARGS,
        "--out",
        str(out),
    ]
    result = subprocess.run([sys.executable, "-m", "judgeforge.cli", *args], capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    state = json.loads((out / "loop.json").read_text())
    assert state["status"] == "complete" and state["iterations"][0]["eval"]["graded"] == 2
    build = json.loads((out / "iter-1/build/step_prefs/manifest.json").read_text())
    assert build["engines"]["policy"]["engine"] == "vllm" and build["engines"]["judge"]["engine"] == "vllm"


def test_a_script_without_the_main_guard_gets_one_clear_error(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from judgeforge.engines import EngineSpec, make_engine\n"
        f"engine = make_engine(EngineSpec(engine='vllm', dtype='float32', vllm_args={{'enforce_eager': True, 'kv_cache_memory_bytes': {1 << 30}}}))\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode != 0
    assert 'a script that builds or runs an engine needs `if __name__ == "__main__":`' in result.stderr
