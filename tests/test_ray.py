"""The Ray executor on a real local Ray cluster (one per test session, `ray_cluster`), and several writers in one run dir.

Every build here is a real step-prefs build on the embedded model, compared row for row, shard by shard,
with the same build run by the local executor: a Ray build with 2 workers; one whose worker process is
killed mid-chunk (found by the process title Ray gives an actor running a task); one whose driver is
killed and then re-run; and two ``--shard`` processes started together into one directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.engines import EngineSpec
from judgeforge.errors import UserError
from judgeforge.executors.local import RunOptions
from judgeforge.executors.ray import INSTALL, RayOptions, execute_ray
from judgeforge.runs import read_manifest
from judgeforge.sources import SourceConfig, load_problems
from tests.helpers import STEP_PREFS_TINY
from tests.ray_builders import FailingStepPrefs

pytestmark = pytest.mark.slow

# Three problems, one per chunk, so two workers share the work unevenly. The same numerics everywhere:
# float32, and one torch thread per process (a Ray worker with one CPU runs one; a float32 matmul's
# reduction order follows the thread count, so probabilities would differ in their last bits otherwise).
BUILD = ["build", "step-prefs", *STEP_PREFS_TINY, "--limit", "3", "--chunk-size", "1", "--dtype", "float32"]
CHUNKS = 3
CLI = [sys.executable, "-m", "judgeforge.cli"]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def shard_rows(run: Path) -> list[list[dict[str, Any]]]:
    """Every shard's rows, in shard order and in the order they were written."""
    return [pq.read_table(run / "data" / f"shard-{c:05d}.parquet").to_pylist() for c in range(CHUNKS)]


def leftovers(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "data").iterdir() if not p.name.startswith("shard-"))


def wait_for(found: Callable[[], Any], what: str, timeout: float = 300.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := found():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def descends_from_this_process(pid: int) -> bool:
    """Whether ``pid`` was started, through any chain of parents, by this test process (whose ``ray.init``
    started the session's cluster: its raylet and so its workers are our descendants)."""
    while pid > 1:
        if pid == os.getpid():
            return True
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return False


def busy_worker() -> int | None:
    """The pid of one of this session's Ray workers building a chunk right now (Ray titles it
    ``ray::ChunkWorker.build``); another Ray cluster on the same machine is never touched."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::ChunkWorker.build") and descends_from_this_process(int(proc.name)):
                return int(proc.name)
        except OSError:
            continue
    return None


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same build by the local executor, in a process with one torch thread."""
    out = tmp_path_factory.mktemp("local")
    result = subprocess.run([*CLI, *BUILD, "--out", str(out)], capture_output=True, text=True, env=ONE_THREAD, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "step_prefs"


def test_a_build_on_two_ray_workers_writes_the_local_build_s_rows(ray_cluster: str, local_run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [*BUILD, "--out", str(tmp_path), "--executor", "ray", "--num-workers", "2"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "step_prefs"
    assert shard_rows(run) == shard_rows(local_run)
    assert sum(len(rows) for rows in shard_rows(run)) > 0
    manifest, local = read_manifest(run / "manifest.json"), read_manifest(local_run / "manifest.json")
    assert manifest and local and manifest.status == "complete"
    assert manifest.fingerprint == local.fingerprint  # the same run: either executor may resume it
    assert manifest.builder_stats == local.builder_stats and manifest.rows_out == local.rows_out
    executor = manifest.executor
    assert executor and executor.name == "ray" and executor.workers == 2
    assert sorted(w.worker for w in executor.per_worker) == [0, 1] and sum(w.chunks for w in executor.per_worker) == CHUNKS
    assert all(w.pid and w.threads == 1 and w.load_models_s and w.load_models_s > 0 for w in executor.per_worker)
    assert local.executor and local.executor.name == "local" and local.executor.per_worker[0].threads == 1
    assert (run / "cache.sqlite").is_file() and leftovers(run) == []


def test_a_worker_killed_mid_chunk_is_replaced_and_its_chunk_rebuilt(ray_cluster: str, local_run: Path, tmp_path: Path) -> None:
    build = subprocess.Popen(
        [*CLI, *BUILD, "--out", str(tmp_path), "--executor", "ray", "--ray-address", ray_cluster, "--num-workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    victim = wait_for(busy_worker, "a worker building a chunk")
    os.kill(victim, signal.SIGKILL)
    output, _ = build.communicate(timeout=900)
    assert build.returncode == 0, output
    run = tmp_path / "step_prefs"
    assert shard_rows(run) == shard_rows(local_run)
    assert leftovers(run) == []
    manifest = read_manifest(run / "manifest.json")
    assert manifest and manifest.status == "complete" and manifest.chunks and manifest.chunks.built_this_run == CHUNKS
    assert manifest.executor and victim in {w.pid for w in manifest.executor.per_worker}


def test_a_chunk_that_fails_fails_the_build_once_with_one_line_naming_it(ray_cluster: str, tmp_path: Path) -> None:
    problems = load_problems(SourceConfig(source="gym:gsm_symbolic", limit=3, seed=3))
    specs = {"policy": EngineSpec(dtype="float32")}
    marks = tmp_path / "attempts"
    marks.mkdir()
    config = FailingStepPrefs.Config(fail_on=problems[1].id, attempts_dir=str(marks), num_candidates=2, max_steps=1, max_step_tokens=8, judge_max_tokens=8)
    opts = RunOptions(out=tmp_path / "out", seed=3, chunk_size=1, engines=specs)
    with pytest.raises(UserError) as caught:
        execute_ray(FailingStepPrefs, config, SourceConfig(source="gym:gsm_symbolic", limit=3), problems, specs, opts, RayOptions(num_workers=2))
    message = str(caught.value)
    assert message.startswith("chunk 1 failed:") and f"bad input {problems[1].id}" in message and "\n" not in message
    assert len(list(marks.iterdir())) == 1  # tried once: an exception is not retried
    assert not (tmp_path / "out" / "step_prefs" / "data" / "shard-00001.parquet").exists()


def test_a_killed_driver_resumes_without_losing_or_duplicating_rows(ray_cluster: str, local_run: Path, tmp_path: Path) -> None:
    command = [*CLI, *BUILD, "--out", str(tmp_path), "--executor", "ray", "--ray-address", ray_cluster, "--num-workers", "2"]
    run = tmp_path / "step_prefs"
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: list((run / "data").glob("shard-*.parquet")) if (run / "data").is_dir() else None, "the first shard")
    driver.kill()
    driver.wait()
    first = read_manifest(run / "manifest.json")
    assert first and first.status == "running"
    before = len(list((run / "data").glob("shard-*.parquet")))
    assert 1 <= before < CHUNKS
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert shard_rows(run) == shard_rows(local_run)
    manifest = read_manifest(run / "manifest.json")
    assert manifest and manifest.status == "complete" and manifest.chunks and manifest.chunks.built_this_run == CHUNKS - before
    assert leftovers(run) == []


def test_two_shard_processes_started_together_share_one_run_dir(local_run: Path, tmp_path: Path) -> None:
    procs = [
        subprocess.Popen([*CLI, *BUILD, "--out", str(tmp_path), "--shard", f"{i}/2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]
    for proc in procs:
        output, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, output
    run = tmp_path / "step_prefs"
    assert shard_rows(run) == shard_rows(local_run)
    assert leftovers(run) == []
    # each process kept its own request cache; the run's manifest was written by the one that finished it
    assert sorted(p.name for p in run.glob("cache*.sqlite")) == ["cache.shard-0-of-2.sqlite", "cache.shard-1-of-2.sqlite"]
    assert len(list(run.glob(".manifest-*.claim"))) == 1
    manifest = read_manifest(run / "manifest.json")
    assert manifest and manifest.status == "complete" and manifest.chunks and manifest.chunks.done == CHUNKS
    assert manifest.rows_out == sum(len(rows) for rows in shard_rows(run))
    for i in range(2):
        part = read_manifest(run / f"manifest.shard-{i}-of-2.json")
        assert part and part.chunks and part.chunks.built_this_run == len(range(i, CHUNKS, 2))


def test_without_ray_the_ray_executor_is_one_line_saying_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    result = CliRunner().invoke(main, [*BUILD, "--out", str(tmp_path), "--executor", "ray"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [f"Error: --executor ray needs Ray, which is not installed: {INSTALL}"]
    assert not (tmp_path / "step_prefs").exists()


def test_a_run_grown_on_ray_writes_the_local_build_s_rows(ray_cluster: str, local_run: Path, tmp_path: Path) -> None:
    at = BUILD.index("--limit")
    first = subprocess.run([*CLI, *BUILD[: at + 1], "1", *BUILD[at + 2 :], "--out", str(tmp_path)], capture_output=True, text=True, env=ONE_THREAD, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    grown = CliRunner().invoke(main, [*BUILD, "--out", str(tmp_path), "--executor", "ray", "--num-workers", "2"])
    assert grown.exit_code == 0, grown.output
    run = tmp_path / "step_prefs"
    assert shard_rows(run) == shard_rows(local_run)
    manifest, local = read_manifest(run / "manifest.json"), read_manifest(local_run / "manifest.json")
    assert manifest and local and manifest.status == "complete" and manifest.fingerprint == local.fingerprint
    assert [(g.inputs_before, g.inputs_after) for g in manifest.growth] == [(1, 3)] and manifest.chunks and manifest.chunks.built_this_run == 2
