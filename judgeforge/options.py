"""Click options generated from typed config fields, shared by ``build`` (pydantic) and ``train`` (dataclasses).

A config class is the single source of an option's name, type, default and help, so ``--help`` always
documents exactly what the code accepts.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def option_type(annotation: Any) -> tuple[Any, bool]:
    """A click type for a config field, and whether it is a boolean flag."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(annotation)]), False
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return option_type(inner[0])
    if annotation is bool:
        return bool, True
    if annotation is Path:
        return click.Path(path_type=Path), False
    return {int: int, float: float, str: str}.get(annotation, str), False


def field_option(name: str, annotation: Any, default: Any, help_text: str, flag: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One click option for a config field (``num_candidates`` → ``--num-candidates``); lists repeat."""
    flag = (flag or name).replace("_", "-")
    if typing.get_origin(annotation) is list:
        kind, _ = option_type(typing.get_args(annotation)[0])
        return click.option(f"--{flag}", name, type=kind, multiple=True, default=default, help=help_text)
    kind, is_flag = option_type(annotation)
    if default is not None:
        help_text = f"{help_text} [default: {default}]".strip()
    if is_flag:
        return click.option(f"--{flag}/--no-{flag}", name, default=default, help=help_text)
    return click.option(f"--{flag}", name, type=kind, default=default, help=help_text, show_default=False)
