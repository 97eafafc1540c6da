"""The one place judgeforge's rich consoles are made, so tables read the same on a terminal and in a log.

On a terminal rich fits tables to the window. Piped into a file, a CI log or a Slurm log, rich would
fall back to 80 columns (or to the width of whatever terminal started the job) and clip or squeeze
table cells — the curation funnel's ``example`` column, which says why rows were dropped, would read
``ex``. So :func:`make_console` gives an output that is not a terminal a console wide enough that no
table is ever cut (cells keep their full text; a log viewer scrolls), and ``COLUMNS``, when set, wins
everywhere: a user or a job script that sets it gets exactly that width. Every command prints through a
console made here.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console

LOG_WIDTH = 4096
"""The width of a console whose output is not a terminal: wider than any table judgeforge prints."""


def console_width(stderr: bool = False) -> int | None:
    """The width to render at: ``COLUMNS`` when set to a number, :data:`LOG_WIDTH` when the stream is not a
    terminal, else None (rich asks the terminal)."""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    stream = sys.stderr if stderr else sys.stdout
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        interactive = False
    return None if interactive else LOG_WIDTH


def make_console(stderr: bool = False, **options: Any) -> Console:
    """A rich console on stdout (or stderr: progress, warnings) at :func:`console_width`; ``options`` go to rich."""
    return Console(stderr=stderr, width=console_width(stderr), **options)
