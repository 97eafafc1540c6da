"""Argilla review: push → reviewers answer through the SDK → pull → apply, against a real Argilla server.

The session fixture starts Debian's ``redis-server`` and the real ``argilla-server`` (its own virtualenv,
``make argilla-server``) on free loopback ports, with SQLite and the in-memory search engine from
``tests/argilla_memory_search.py``; nothing here is mocked. The unit tests at the end check the sampling
and decision logic on small synthetic runs.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from judgeforge.schemas import step_prefs
from judgeforge.cli import main
from judgeforge.curation import review
from judgeforge.runs import open_run
from tests.helpers import read_rows
from tests.test_cards import step_prefs_rows, synthetic_run

ROOT = Path(__file__).resolve().parent.parent
SERVER_VENV = Path(os.environ.get("JUDGEFORGE_ARGILLA_VENV", ROOT / ".venv-argilla"))
DATASET = "step-prefs-review"


@dataclass
class Argilla:
    url: str
    owner_key: str
    reviewer_keys: list[str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(check: Any, what: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if check():
            return
        time.sleep(0.5)
    pytest.fail(f"{what} not ready after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def _redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _argilla_ready(url: str, key: str) -> bool:
    request = urllib.request.Request(f"{url}/api/v1/me", headers={"X-Argilla-Api-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def argilla(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Argilla]:
    """A real Argilla server on 127.0.0.1 (SQLite, redis, in-memory search) with an owner and two reviewers."""
    python = SERVER_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no Argilla server virtualenv at {SERVER_VENV}: run `make argilla-server` (see README, Development)")
    redis = shutil.which("redis-server")
    if redis is None:
        pytest.fail("redis-server is not installed: run `make argilla-server` (installs Debian's redis-server)")
    home = tmp_path_factory.mktemp("argilla")
    redis_port, port = _free_port(), _free_port()
    redis_log = home / "redis.log"
    with redis_log.open("wb") as log:
        redis_proc = subprocess.Popen(
            [redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(home)],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        _wait(lambda: _redis_ready(redis_port), "redis-server", redis_proc, redis_log, timeout=30)
        users = [{"username": "owner", "role": "owner"}, {"username": "reviewer1", "role": "admin"}, {"username": "reviewer2", "role": "admin"}]
        for user in users:
            user.update(password=secrets.token_hex(8), api_key=f"{user['username']}.{secrets.token_hex(8)}")
        env = {
            **os.environ,
            "ARGILLA_HOME_PATH": str(home),
            "ARGILLA_DATABASE_URL": f"sqlite+aiosqlite:///{home / 'argilla.db'}",
            "ARGILLA_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "ARGILLA_SEARCH_ENGINE": "memory",
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "JUDGEFORGE_ARGILLA_USERS": json.dumps(users),
        }
        env.pop("ARGILLA_API_KEY", None)
        server_log = home / "server.log"
        with server_log.open("wb") as log:
            server = subprocess.Popen(
                [str(python), str(ROOT / "tests" / "argilla_launch.py"), "--host", "127.0.0.1", "--port", str(port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(lambda: _argilla_ready(url, users[2]["api_key"]), "argilla-server", server, server_log)
            yield Argilla(url, users[0]["api_key"], [users[1]["api_key"], users[2]["api_key"]])
        finally:
            _stop(server)
    finally:
        _stop(redis_proc)


def _cli(args: list[str], key: str | None = None) -> Any:
    env = {"ARGILLA_API_KEY": key} if key else {}
    return CliRunner().invoke(main, args, env=env)


def _one_line_error(result: Any) -> str:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def _answer(url: str, key: str, answers: dict[str, tuple[str, str | None]]) -> None:
    """A reviewer answers records in the SDK: ``row id → (status, chosen_better or None)``, plus a note."""
    import argilla as rg

    client = rg.Argilla(api_url=url, api_key=key)
    dataset = client.datasets(DATASET, workspace="default")
    me = client.me
    records = [r for r in dataset.records(with_suggestions=True, with_responses=False) if r.id in answers]
    assert len(records) == len(answers)
    for record in records:
        assert record.suggestions["chosen_better"].value == "yes"  # the model's own verdict is shown
        status, value = answers[record.id]
        record.responses.add(rg.Response("chosen_better", value, user_id=me.id, status=status))
        if value is not None:
            record.responses.add(rg.Response("note", f"{me.username} says {value}", user_id=me.id, status=status))
    dataset.records.log(records)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`user_id` not provided:UserWarning")  # the SDK warns while reading records back
def test_review_round_trip(step_prefs_run: Path, argilla: Argilla, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(review, "SEARCH_PAGE", 2)  # make pull page through the server's search
    rows = {r["id"]: r for r in read_rows(step_prefs_run)}
    assert len(rows) >= 4, "the session run must have at least 4 pairs to review"
    push = ["review", "push", str(step_prefs_run), "--dataset", DATASET, "--api-url", argilla.url, "--sample", "4", "--stratify-by", "solution_status", "--workspace", "default"]
    first = _cli(push, argilla.owner_key)
    assert first.exit_code == 0, first.output
    assert "4 / 0" in first.output  # new / updated

    import argilla as rg

    owner = rg.Argilla(api_url=argilla.url, api_key=argilla.owner_key)
    dataset = owner.datasets(DATASET, workspace="default")
    pushed = sorted(r.id for r in dataset.records())
    assert len(pushed) == 4 and set(pushed) <= set(rows)
    assert {f.name for f in dataset.settings.fields} == {"question", "previous_steps", "chosen", "rejected"}
    record = next(iter(dataset.records(with_suggestions=True)))
    assert record.fields["question"] == rows[record.id]["question"]

    r0, r1, r2, r3 = pushed
    _answer(argilla.url, argilla.reviewer_keys[0], {r0: ("submitted", "no"), r1: ("submitted", "tie"), r2: ("submitted", "yes"), r3: ("discarded", None)})
    _answer(argilla.url, argilla.reviewer_keys[1], {r0: ("submitted", "no"), r1: ("draft", "yes"), r2: ("submitted", "no")})

    again = _cli(push, argilla.owner_key)  # same sample again: updates, no duplicates, answers kept
    assert again.exit_code == 0, again.output
    assert "0 / 4" in again.output
    assert len(list(dataset.records())) == 4

    pulled = _cli(["review", "pull", str(step_prefs_run), "--dataset", DATASET, "--api-url", argilla.url], argilla.owner_key)
    assert pulled.exit_code == 0, pulled.output
    answers = pq.read_table(step_prefs_run / review.SIDECAR).to_pylist()
    got = sorted((a["row_id"], a["reviewer"], a["status"], a["chosen_better"]) for a in answers)
    assert got == sorted([
        (r0, "reviewer1", "submitted", "no"), (r0, "reviewer2", "submitted", "no"), (r1, "reviewer1", "submitted", "tie"),
        (r2, "reviewer1", "submitted", "yes"), (r2, "reviewer2", "submitted", "no"), (r3, "reviewer1", "discarded", None),
    ])  # reviewer2's draft on r1 is not an answer
    assert all(a["model_chosen_better"] == "yes" for a in answers)
    assert {a["note"] for a in answers if a["row_id"] == r0} == {"reviewer1 says no", "reviewer2 says no"}

    out = tmp_path / "reviewed"
    applied = _cli(["review", "apply", str(step_prefs_run), "--out", str(out)])
    assert applied.exit_code == 0, applied.output
    new_run = out / "step_prefs"
    open_run(new_run, "step_prefs")  # every shard still stamped with the kind
    assert pq.read_schema(next((new_run / "data").glob("*.parquet"))).remove_metadata() == pq.read_schema(next((step_prefs_run / "data").glob("*.parquet"))).remove_metadata()
    after = {r["id"]: r for r in read_rows(new_run)}
    assert set(after) == set(rows) - {r1, r3}  # "tie" and the discarded record are dropped
    assert (after[r0]["chosen"], after[r0]["rejected"]) == (rows[r0]["rejected"], rows[r0]["chosen"])  # "no": swapped
    assert (after[r0]["chosen_score"], after[r0]["rejected_score"]) == (rows[r0]["rejected_score"], rows[r0]["chosen_score"])
    assert after[r2] == rows[r2]  # one yes, one no: an even split leaves the row as it was
    for row_id in set(rows) - set(pushed):
        assert after[row_id] == rows[row_id]

    manifest = json.loads((new_run / "manifest.json").read_text())
    parent = json.loads((step_prefs_run / "manifest.json").read_text())
    assert manifest["parent"]["run_id"] == parent["run_id"] and manifest["builder"] == parent["builder"]
    assert manifest["commands"] == [parent["command"], manifest["command"]]  # build, then this apply (argv as recorded)
    assert manifest["rows_in"] == len(rows) and manifest["rows_out"] == len(rows) - 2
    stats = manifest["review"]
    assert stats["rows"] == {"unreviewed": len(rows) - 4, "keep": 0, "relabel": 1, "drop": 2, "split": 1}
    assert stats["reviewers"] == 2 and stats["answers"] == 6 and stats["records_pushed"] == 4
    question = stats["questions"]["chosen_better"]
    assert question["rows_reviewed"] == 3 and question["answers"] == 5
    assert question["agreement_with_model"] == pytest.approx(1 / 5, abs=1e-4)  # one "yes" among five answers
    assert question["reviewer_unanimity"] == pytest.approx(1 / 2, abs=1e-4)  # r0 unanimous, r2 split
    assert question["labels"] == {"no": 3, "tie": 1, "yes": 1}
    assert (new_run / review.SIDECAR).is_file()
    assert "ARGILLA_API_KEY" not in (new_run / "manifest.json").read_text() and argilla.owner_key not in (new_run / "manifest.json").read_text()

    again_out = _cli(["review", "apply", str(step_prefs_run), "--out", str(out)])
    assert "already exists" in _one_line_error(again_out)


@pytest.mark.slow
def test_connection_errors(tmp_path: Path, argilla: Argilla) -> None:
    run = synthetic_run(tmp_path / "run", step_prefs_rows(["final_answer"]))
    args = ["review", "push", str(run), "--dataset", "never-created", "--sample", "1"]
    wrong_key = _one_line_error(_cli([*args, "--api-url", argilla.url], "not-a-valid-key"))
    assert "rejected the API key" in wrong_key and "not-a-valid-key" not in wrong_key
    closed = f"http://127.0.0.1:{_free_port()}"
    assert f"cannot reach Argilla at {closed}" in _one_line_error(_cli([*args, "--api-url", closed], argilla.owner_key))
    assert "no Argilla server" in _one_line_error(CliRunner().invoke(main, args, env={"ARGILLA_API_URL": None, "ARGILLA_API_KEY": "x"}))
    missing = _one_line_error(_cli(["review", "pull", str(run), "--dataset", "never-created", "--api-url", argilla.url], argilla.owner_key))
    assert "no Argilla dataset 'never-created'" in missing


# --- logic on small synthetic runs (no server) ---------------------------------------------------


def test_stratified_sample_keeps_shares_and_is_reproducible(tmp_path: Path) -> None:
    from judgeforge.data_cards.runinfo import load_run_info

    info = load_run_info(synthetic_run(tmp_path / "run", step_prefs_rows(["final_answer"] * 60 + ["max_steps"] * 30 + ["rollback_limit"] * 2)))
    ids = review.sample_ids(info, 10, "solution_status", seed=1)
    assert len(ids) == 10 and ids == review.sample_ids(info, 10, "solution_status", seed=1)
    statuses = {r["id"]: r["solution_status"] for r in review.read_rows(info, ids)}
    counts = {s: list(statuses.values()).count(s) for s in set(statuses.values())}
    assert counts == {"final_answer": 6, "max_steps": 3, "rollback_limit": 1}  # the rare stratum still gets one
    assert review.sample_ids(info, 10, "solution_status", seed=2) != ids
    assert len(review.sample_ids(info, 500, None, seed=0)) == 92


def test_decisions_follow_the_majority() -> None:
    spec = step_prefs.REVIEW

    def answer(row: str, who: str, status: str, value: str | None) -> dict[str, Any]:
        return {"row_id": row, "reviewer": who, "status": status, "chosen_better": value, "model_chosen_better": "yes", "note": None}

    decisions, stats = review.decide(spec, [
        answer("a", "x", "submitted", "yes"), answer("a", "y", "submitted", "yes"), answer("a", "z", "submitted", "tie"),
        answer("b", "x", "discarded", None), answer("b", "y", "discarded", None), answer("b", "z", "submitted", "yes"),
        answer("c", "x", "submitted", "no"),
        answer("d", "x", "submitted", "no"), answer("d", "y", "submitted", "tie"),
    ])
    assert decisions == {"a": "keep", "b": "drop", "c": "relabel", "d": None}
    report = stats["chosen_better"].report()
    assert report["rows_reviewed"] == 4 and report["answers"] == 7 and report["agreement_with_model"] == pytest.approx(3 / 7, abs=1e-4)


def test_apply_without_pull_is_one_clear_line(tmp_path: Path) -> None:
    run = synthetic_run(tmp_path / "run", step_prefs_rows(["final_answer"]))
    line = _one_line_error(CliRunner().invoke(main, ["review", "apply", str(run), "--out", str(tmp_path / "out")]))
    assert "no review answers" in line and "review pull" in line
    assert not (tmp_path / "out").exists()
