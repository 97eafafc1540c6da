"""Readable logs: output that is not a terminal gets tables that are never clipped; ``COLUMNS`` wins when set.

The factory on its own, the curation funnel (whose ``example`` column says why rows were dropped) rendered
through it, and the real ``judgeforge runs`` command piped into a file, with and without ``COLUMNS``.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from judgeforge.console import LOG_WIDTH, console_width, make_console
from judgeforge.curation.cli import funnel_table
from judgeforge.runs import Curation, FunnelStep
from tests.test_growth import build, problems_file


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_width_is_columns_else_wide_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert console_width() == LOG_WIDTH
    monkeypatch.setattr(sys, "stdout", _Terminal())
    assert console_width() is None  # rich asks the terminal
    monkeypatch.setenv("COLUMNS", "61")
    assert console_width() == 61
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert console_width() == 61 and make_console().width == 61


def test_the_funnel_s_example_column_is_whole_in_a_log(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = "score gap 0.01 < min_gap 0.5 (every verdict forced: " + "the judge named A every time " * 4 + ")"
    curation = Curation(
        rows_in=9, rows_out=0, funnel=[FunnelStep(name="score_gap", rows_in=9, rows_out=0, dropped=9, examples=[{"id": "q/step-1", "reason": reason}])]
    )
    monkeypatch.delenv("COLUMNS", raising=False)
    log = io.StringIO()
    monkeypatch.setattr(sys, "stdout", log)
    console = make_console()
    console.print(funnel_table(curation, "runs/x", console.width))
    assert f"q/step-1: {reason}" in log.getvalue()
    monkeypatch.setenv("COLUMNS", "80")
    narrow = io.StringIO()
    monkeypatch.setattr(sys, "stdout", narrow)
    console = make_console()
    console.print(funnel_table(curation, "runs/x", console.width))
    assert reason not in narrow.getvalue() and max(len(line) for line in narrow.getvalue().splitlines()) <= 80


def test_a_piped_command_prints_whole_rows_and_respects_columns(tmp_path: Path) -> None:
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4)
    deep.mkdir()
    source = problems_file(deep / "problems-with-a-long-file-name.jsonl", 2)
    build(tmp_path / "out", source, 2)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    command = [sys.executable, "-m", "judgeforge.cli", "runs", str(tmp_path / "out")]
    piped = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    assert f"{source} (first 2)" in piped.stdout, piped.stdout
    narrow = subprocess.run(command, capture_output=True, text=True, env={**env, "COLUMNS": "70"}, check=True)
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 70 and f"{source} (first 2)" not in narrow.stdout
