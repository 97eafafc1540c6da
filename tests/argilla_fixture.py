"""A real Argilla server for the review tests, and what reviewers do through the SDK.

:func:`serve` starts Debian's ``redis-server`` and the real ``argilla-server`` (its own virtualenv,
``make argilla-server``) on free loopback ports, with SQLite and the in-memory search engine from
``tests/argilla_memory_search.py``; nothing is mocked. ``tests/conftest.py`` runs one per test session.
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

import pytest
from click.testing import CliRunner

from judgeforge.cli import main

ROOT = Path(__file__).resolve().parent.parent
SERVER_VENV = Path(os.environ.get("JUDGEFORGE_ARGILLA_VENV", ROOT / ".venv-argilla"))


@dataclass
class Argilla:
    url: str
    owner_key: str
    reviewer_keys: list[str]


def free_port() -> int:
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


def cli(args: list[str], key: str | None = None) -> Any:
    env = {"ARGILLA_API_KEY": key} if key else {}
    return CliRunner().invoke(main, args, env=env)


def one_line_error(result: Any) -> str:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def answer_records(url: str, key: str, dataset_name: str, question: str, answers: dict[str, tuple[str, str | None]]) -> dict[str, str | None]:
    """A reviewer answers records in the SDK: ``row id → (status, answer or None)``, plus a note; returns the suggestions shown."""
    import argilla as rg

    client = rg.Argilla(api_url=url, api_key=key)
    dataset = client.datasets(dataset_name, workspace="default")
    me = client.me
    records = [r for r in dataset.records(with_suggestions=True, with_responses=False) if r.id in answers]
    assert len(records) == len(answers)
    shown = {}
    for record in records:
        shown[record.id] = record.suggestions[question].value if question in record.suggestions.to_dict() else None
        status, value = answers[record.id]
        record.responses.add(rg.Response(question, value, user_id=me.id, status=status))
        if value is not None:
            record.responses.add(rg.Response("note", f"{me.username} says {value}", user_id=me.id, status=status))
    dataset.records.log(records)
    return shown


def serve(home: Path) -> Iterator[Argilla]:
    """A real Argilla server on 127.0.0.1 (SQLite, redis, in-memory search) with an owner and two reviewers."""
    python = SERVER_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no Argilla server virtualenv at {SERVER_VENV}: run `make argilla-server` (see README, Development)")
    redis = shutil.which("redis-server")
    if redis is None:
        pytest.fail("redis-server is not installed: run `make argilla-server` (installs Debian's redis-server)")
    redis_port, port = free_port(), free_port()
    redis_log = home / "redis.log"
    with redis_log.open("wb") as log:
        redis_proc = subprocess.Popen(
            [redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(home)],
            stdout=log,
            stderr=subprocess.STDOUT,
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
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=home,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(lambda: _argilla_ready(url, users[2]["api_key"]), "argilla-server", server, server_log)
            yield Argilla(url, users[0]["api_key"], [users[1]["api_key"], users[2]["api_key"]])
        finally:
            _stop(server)
    finally:
        _stop(redis_proc)
