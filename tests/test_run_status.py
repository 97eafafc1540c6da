"""What a run is now: SIGINT and SIGTERM mark it ``interrupted`` (shards kept), an error ``failed``, a dead writer
shows as ``stale``; a live writer is not raced; ``runs`` and ``inspect`` list and show every run with its status.

The executor's handling runs on the example family's builder and the scripted engine; the signals and
the listing on real builds: three ``judgeforge build ift --from samples`` subprocesses on the embedded
model, stopped with SIGINT, SIGTERM and SIGKILL once their first shard is written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.errors import Interrupted, UserError
from judgeforge.executors.local import stop_signals
from judgeforge.files import process_started, this_host, write_json
from judgeforge.runs import Manifest, WriterRef, read_manifest, run_status
from tests.scripted import ScriptedEngine
from tests.test_growth import answer, build, problems_file


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def _manifest(root: Path, status: str, writer: WriterRef | None, name: str = "manifest.json") -> None:
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / name, Manifest(kind="short_answers", status=status, writer=writer).dump())  # type: ignore[arg-type]


def test_a_running_run_whose_writer_died_is_stale(tmp_path: Path) -> None:
    me = WriterRef(host=this_host(), pid=os.getpid(), started=process_started(os.getpid()))
    cases = {
        "alive": (me, "running"),
        "dead": (WriterRef(host=this_host(), pid=_dead_pid()), "stale"),
        "pid-reused": (me.model_copy(update={"started": (me.started or 0) - 100}), "stale" if me.started is not None else "running"),
        "elsewhere": (WriterRef(host="another-machine", pid=_dead_pid()), "running"),
        "unknown": (None, "running"),
    }
    for name, (writer, expected) in cases.items():
        _manifest(tmp_path / name, "running", writer)
        assert run_status(tmp_path / name) == expected, name
    # --shard processes: the run is running while one of them is, else the worst of what they say.
    shared = tmp_path / "sharded"
    _manifest(shared, "partial", None)
    _manifest(shared, "partial", None, "manifest.shard-0-of-2.json")
    _manifest(shared, "running", WriterRef(host=this_host(), pid=_dead_pid()), "manifest.shard-1-of-2.json")
    assert run_status(shared) == "stale"
    _manifest(shared, "running", me, "manifest.shard-1-of-2.json")
    assert run_status(shared) == "running"
    _manifest(shared, "complete", None)
    assert run_status(shared) == "complete"


def test_a_run_another_live_process_builds_is_not_raced(tmp_path: Path) -> None:
    source = problems_file(tmp_path / "p.jsonl", 2)
    build(tmp_path / "out", source, 2)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        root = tmp_path / "out" / "short_answers"
        manifest = read_manifest(root / "manifest.json")
        assert manifest is not None
        write_json(root / "manifest.json", manifest.model_copy(update={"status": "running", "writer": WriterRef(host=this_host(), pid=other.pid)}).dump())
        with pytest.raises(UserError, match=f"is being built right now by process {other.pid}"):
            build(tmp_path / "out", source, 2)
    finally:
        other.kill()
        other.wait()
    assert build(tmp_path / "out", source, 2).status == "complete"  # its writer gone, the run resumes


def _stopping(stop: BaseException, after: int) -> ScriptedEngine:
    """A scripted engine that raises ``stop`` on its call number ``after`` (a chunk each), once."""
    calls = {"n": 0}

    def respond(request: Any, params: Any, k: int) -> str:
        calls["n"] += 1
        if calls["n"] == after:
            raise stop
        return answer(request, params, k)

    return ScriptedEngine(respond)


@pytest.mark.parametrize(("stop", "signum"), [(KeyboardInterrupt(), signal.SIGINT), (None, signal.SIGTERM)])
def test_a_stopped_build_is_marked_interrupted_and_resumes(tmp_path: Path, stop: BaseException | None, signum: signal.Signals) -> None:
    source = problems_file(tmp_path / "p.jsonl", 4)
    if stop is None:  # SIGTERM for real, delivered to this process while the second chunk is built

        def respond(request: Any, params: Any, k: int) -> str:
            if "What is 1 +" in request.messages[-1]["content"]:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
            return answer(request, params, k)

        engine = ScriptedEngine(respond)
    else:
        engine = _stopping(stop, 2)
    with pytest.raises(Interrupted) as info, stop_signals():
        build(tmp_path / "out", source, 4, chunk_size=1, engine=engine)
    assert info.value.exit_code == 128 + signum
    assert info.value.message == f"interrupted by {signum.name}: 1/4 shards kept; re-run the same command to resume"
    root = tmp_path / "out" / "short_answers"
    manifest = read_manifest(root / "manifest.json")
    assert manifest and manifest.status == "interrupted" and manifest.chunks and manifest.chunks.done == 1 and manifest.shards == ["shard-00000.parquet"]
    assert run_status(root) == "interrupted"
    resumed = build(tmp_path / "out", source, 4, chunk_size=1)
    assert resumed.status == "complete" and resumed.chunks and resumed.chunks.built_this_run == 3


def test_a_build_stopped_by_an_error_is_marked_failed(tmp_path: Path) -> None:
    source = problems_file(tmp_path / "p.jsonl", 3)
    with pytest.raises(RuntimeError, match="out of memory"):
        build(tmp_path / "out", source, 3, chunk_size=1, engine=_stopping(RuntimeError("out of memory"), 2))
    assert run_status(tmp_path / "out" / "short_answers") == "failed"


def test_inspect_lists_the_runs_of_an_out_folder_and_names_the_table_sql_reads(tmp_path: Path) -> None:
    from tests.test_curation import make_run, row

    build(tmp_path / "out", problems_file(tmp_path / "p.jsonl", 2), 2)
    step_prefs = make_run(tmp_path / "out", [row("a/step-1")])
    listed = CliRunner().invoke(main, ["inspect", str(tmp_path / "out")])
    assert listed.exit_code == 0, listed.output
    assert "2 runs under" in listed.output and "│ short_answers │ short_answers │" in listed.output.replace("  ", " ")
    assert f"inspect one with: judgeforge inspect {tmp_path / 'out' / 'short_answers'}" in listed.output
    sql = CliRunner().invoke(main, ["inspect", str(tmp_path / "out"), "--sql", "SELECT 1"])
    assert sql.exit_code == 2 and "holds 2 run(s), not one" in sql.output
    wrong = CliRunner().invoke(main, ["inspect", str(step_prefs), "--sql", "SELECT count(*) FROM rows"])
    assert wrong.exit_code == 2 and "The run is the table named after its kind: step_prefs" in wrong.output, wrong.output
    assert CliRunner().invoke(main, ["runs", str(tmp_path / "empty-folder")]).exit_code == 2
    (tmp_path / "nothing").mkdir()
    assert "no runs under" in CliRunner().invoke(main, ["runs", str(tmp_path / "nothing")]).output


# --- real builds, stopped ------------------------------------------------------------------------------

BUILD = [sys.executable, "-m", "judgeforge.cli", "build", "ift", "--from", "samples", "--source", "gym:basic_arithmetic", "--samples-per-problem", "2"]
BUILD += ["--max-tokens", "48", "--limit", "6", "--chunk-size", "1", "--dtype", "float32"]


def _sigint_default() -> None:
    """A shell starts background jobs with SIGINT ignored, and a child inherits that: the builds here take it as a terminal would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, subprocess.CompletedProcess[str]]]]:
    """Three real builds side by side, each stopped once its first shard is written: by SIGINT, SIGTERM and SIGKILL."""
    root = tmp_path_factory.mktemp("stopped")
    procs = {
        name: subprocess.Popen([*BUILD, "--out", str(root / name)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_default)
        for name in ("SIGINT", "SIGTERM", "SIGKILL")
    }
    try:
        deadline = time.time() + 1800
        for name, proc in procs.items():
            while not (root / name / "ift/data/shard-00000.parquet").exists():
                assert proc.poll() is None, f"{name}: the build ended before it could be stopped: {proc.communicate()}"
                assert time.time() < deadline, f"{name}: no shard written in 30 minutes"
                time.sleep(0.1)
            proc.send_signal(getattr(signal, name))
        done = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=600)
            done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    yield root, done


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_real_build_stopped_by_a_signal_says_what_it_kept(stopped: tuple[Path, dict[str, Any]], name: str) -> None:
    root, done = stopped
    result = done[name]
    signum = getattr(signal, name)
    assert result.returncode == 128 + signum, result.stderr[-2000:]
    manifest = read_manifest(root / name / "ift/manifest.json")
    assert manifest and manifest.status == "interrupted" and manifest.chunks
    kept = len(list((root / name / "ift/data").glob("shard-*.parquet")))
    assert 1 <= kept < 6 and manifest.chunks.done == kept and manifest.chunks.total == 6
    assert f"interrupted by {name}: {kept}/6 shards kept; re-run the same command to resume" in result.stderr
    assert "Aborted!" not in result.stderr and "Traceback" not in result.stderr
    shown = CliRunner().invoke(main, ["inspect", str(root / name / "ift")])
    assert shown.exit_code == 0 and "interrupted" in shown.output


@pytest.mark.slow
def test_a_killed_build_is_stale_and_the_runs_are_listed(stopped: tuple[Path, dict[str, Any]]) -> None:
    root, done = stopped
    assert done["SIGKILL"].returncode == -signal.SIGKILL
    killed = read_manifest(root / "SIGKILL/ift/manifest.json")
    assert killed and killed.status == "running"  # what it last wrote; its writer is gone
    assert run_status(root / "SIGKILL/ift") == "stale"
    listed = CliRunner().invoke(main, ["runs", str(root)])
    assert listed.exit_code == 0, listed.output
    lines = {line.split()[1]: line for line in listed.output.splitlines() if "/ift" in line}
    assert set(lines) == {"SIGINT/ift", "SIGKILL/ift", "SIGTERM/ift"}
    for name, status in (("SIGINT", "interrupted"), ("SIGTERM", "interrupted"), ("SIGKILL", "stale")):
        rows = sum(1 for _ in (root / name / "ift/data").glob("*.parquet"))
        assert f" {status} " in lines[f"{name}/ift"] and "ift 0." in lines[f"{name}/ift"] and "gym:basic_arithmetic (first 6)" in lines[f"{name}/ift"], lines
        assert rows >= 1
    # inspect on a folder of runs lists them instead of saying it has no shards
    folder = CliRunner().invoke(main, ["inspect", str(root / "SIGKILL")])
    assert folder.exit_code == 0 and "1 run under" in folder.output and "stale" in folder.output
    # a resumed run is complete again
    again = subprocess.run([*BUILD, "--out", str(root / "SIGINT")], capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert run_status(root / "SIGINT/ift") == "complete"
    assert json.loads((root / "SIGINT/ift/manifest.json").read_text())["chunks"]["done"] == 6
