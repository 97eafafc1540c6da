"""Atomic files and the clock: what every writer of run dirs, manifests, cards, plots and checkpoints shares.

A reader must never see half a file, and a killed writer must never leave one under the final name. So
every file judgeforge writes goes to a hidden temp name beside its target (``.NAME.tmp-PID``) and is
renamed into place, and a finished directory (a curated or reviewed run, a checkpoint) is built under a
temp name and swapped in by :func:`replace_dir`. Temp names carry the writer's host and pid
(``.NAME.tmp-HOST-PID``), so several processes — on one machine or on several sharing a folder — never
clobber each other's half-written files, and :func:`clear_stale` removes only what dead writers on this
machine left (:func:`process_gone`, which a run's status reads too: a pid is told apart from a later process
given the same pid by its start time). Timestamps are :func:`utc_now`: UTC, to the second, ISO 8601.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"
_HOST = socket.gethostname()


def temp_path(path: Path) -> Path:
    """The hidden name ``path`` is written under before it is renamed into place: ``.NAME.tmp-HOST-PID``."""
    return path.with_name(f".{path.name}{TMP_MARK}{writer_id()}")


def writer_id() -> str:
    """This process as a writer: ``HOST-PID``, what temp names and claims carry."""
    return f"{_HOST}-{os.getpid()}"


def writer_gone(writer: str) -> bool:
    """Whether the writer ``HOST-PID`` was a process on this machine that has exited (one elsewhere is never presumed gone)."""
    host, _, pid = writer.rpartition("-")
    return pid.isdigit() and process_gone(host, int(pid))


def this_host() -> str:
    return _HOST


def process_started(pid: int) -> float | None:
    """When process ``pid`` of this machine started (seconds since boot, from ``/proc``), or None where that cannot be read.

    With the pid it tells a process apart from a later one that was given the same pid.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def process_gone(host: str, pid: int, started: float | None = None) -> bool:
    """Whether process ``pid`` of ``host`` has exited: it is on this machine and no longer runs, or its pid now
    belongs to a process that started at another time than ``started``. A process elsewhere is never presumed gone."""
    if host != _HOST:
        return False
    if not _alive(pid):
        return True
    now = process_started(pid) if started is not None else None
    return now is not None and started is not None and abs(now - started) > 0.5


def clear_stale(folder: Path, name: str = "*") -> None:
    """Remove the temp files and folders (of ``name``) in ``folder`` whose writer was on this machine and is gone."""
    for tmp in folder.glob(f".{name}{TMP_MARK}*"):
        if writer_gone(tmp.name.rpartition(TMP_MARK)[2]):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(path: Path) -> bool:
    """Create ``path`` holding this writer's id, unless another live writer holds it: True when this process now does.

    Exclusive creation, so of several processes racing for it exactly one wins; a claim left by a writer
    on this machine that has exited is taken over.
    """
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = path.read_text().strip()
            except OSError:
                return False
            if not writer_gone(holder):
                return False
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(writer_id())
        return True
    return False


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temp name beside ``path``, then rename it to ``path``; nothing is left on failure."""
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically (values JSON cannot hold become strings)."""
    return write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished directory ``tmp`` to ``out``; an older ``out`` is replaced only now, and then removed."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{_HOST}-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def utc_now() -> str:
    """Now, as manifests record it: UTC, to the second, ISO 8601 (``2025-01-31T12:00:00+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
