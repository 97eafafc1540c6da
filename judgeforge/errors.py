"""One exception type for problems the user can fix (bad input, missing files, bad options).

It subclasses ``click.ClickException`` so the CLI prints it as a single ``Error: ...`` line and exits
non-zero, while library callers can catch it like any other exception.
"""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """Bad input: the message names the file, row, field or option at fault."""

    exit_code = 2
