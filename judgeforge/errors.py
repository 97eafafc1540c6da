"""The exceptions the CLI prints as one message: problems the user can fix, and a build the user stopped.

:class:`UserError` subclasses ``click.ClickException`` so the CLI prints it as a single ``Error: ...`` line
and exits non-zero, while library callers can catch it like any other exception. :class:`Interrupted` is a
build stopped by SIGINT or SIGTERM: it prints what was kept and how to resume, and exits as the signal would.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import click


class UserError(click.ClickException):
    """Bad input: the message names the file, row, field or option at fault."""

    exit_code = 2


class Interrupted(click.ClickException):
    """A build stopped by SIGINT or SIGTERM after recording its run as interrupted: the message says what was kept
    and how to resume; the exit status is 128 + the signal's number, as a shell reports a process the signal ended."""

    def __init__(self, message: str, signum: int, root: Path | None = None) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum  # type: ignore[misc]  # click declares it on the class; this one exits as its signal
        self.root = root

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), err=True, file=file)
