"""TRL's and peft's own options, passed through: ``--trl.<field>=VALUE`` / ``trl:``, ``--peft.<field>=VALUE`` / ``peft:``.

judgeforge re-declares none of the trainers' options. Any field of the trainer's config dataclass
(``SFTConfig``, ``DPOConfig``, ``RLOOConfig``, ``GRPOConfig``) is set with ``--trl.<field>=VALUE`` on the
command line or under ``trl:`` in a YAML recipe, and any field of peft's ``LoraConfig`` with
``--peft.<field>=VALUE`` or ``peft:``. A value given on the command line is read as YAML (``1e-5``,
``true``, ``[sigmoid, sft]``) and every value is checked against the field's declared type before
anything is loaded: an unknown field (with the closest names) or a value of the wrong type is one line.

Precedence, highest first: a field the user set (the command line over the YAML file) > judgeforge's
value (the paper's default for the data's kind, judgeforge's own options, the CPU/GPU settings) >
TRL's own default. A field that a judgeforge option also sets (``learning_rate`` and
``--learning-rate``) is one setting: either spelling works, both with different values is an error.
A few fields the recipe sets itself (``output_dir``, ``max_length``, ...) are refused with the option
to use instead, and so is a credential (``hub_token``: judgeforge never takes a secret in a file or an
argument; log in with ``hf auth login`` or set ``HF_TOKEN``); the manifest masks any that reach it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import typing
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic.errors import PydanticSchemaGenerationError

from judgeforge.errors import UserError
from judgeforge.runs import redact_urls

BLOCKS = ("trl", "peft")


def parse_args(args: Sequence[str], options: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """The ``--trl.<field>=VALUE`` / ``--trl.<field> VALUE`` (and ``--peft.``) arguments click left unparsed.

    Returns ``{"trl": {...}, "peft": {...}}`` with each VALUE read as YAML; an argument of another form
    is click's "no such option" error (suggesting the closest of the command's ``options``), a field
    given twice one line.
    """
    import click

    blocks: dict[str, dict[str, Any]] = {b: {} for b in BLOCKS}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        block, dot, name = arg.removeprefix("--").partition(".")
        if not arg.startswith("--") or not dot or block not in BLOCKS or not name.split("=")[0]:
            name = arg.split("=")[0]
            raise click.NoSuchOption(name, possibilities=difflib.get_close_matches(name, list(options), n=3))
        name, eq, raw = name.partition("=")
        if not eq:
            if not rest:
                raise UserError(f"--{block}.{name} needs a value: --{block}.{name}=VALUE")
            raw = rest.pop(0)
        if name in blocks[block]:
            raise UserError(f"--{block}.{name} given twice; give it once (a list as YAML: --{block}.{name}='[a, b]')")
        blocks[block][name] = _read(raw)
    return blocks


def _read(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw  # not YAML: the string itself, checked against the field's type like any value


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def check(cls: type, values: Mapping[str, Any], block: str) -> dict[str, Any]:
    """``values`` checked against the fields of dataclass ``cls`` and coerced to their declared types."""
    types = _field_types(cls)
    checked = {}
    for name, value in values.items():
        if name not in types:
            close = difflib.get_close_matches(name, list(types), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"{block}.{name}: {cls.__name__} has no field '{name}'{hint}")
        checked[name] = _coerce(cls, name, types[name], value, block)
    return checked


def _coerce(cls: type, name: str, annotation: Any, value: Any, block: str) -> Any:
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
    except (PydanticSchemaGenerationError, TypeError):
        return value  # a type pydantic cannot express: the config's own __post_init__ checks it
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        kind = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        raise UserError(f"{block}.{name}={value!r}: {cls.__name__}.{name} takes {kind} ({exc.errors()[0]['msg']})") from exc


_SECRET = re.compile(r"(hub|api|auth|access)_token$|_key$|password|secret")
"""Config fields that hold credentials (``hub_token``); ``eos_token`` and ``pad_token`` are not among them."""


def refuse(values: Mapping[str, Any], owned: Mapping[str, str], block: str) -> None:
    """One line for the first field the recipe owns (``owned``: field -> what to use instead) or a secret."""
    for name in values:
        if _SECRET.search(name):
            raise UserError(f"{block}.{name}: judgeforge takes no secret in a file or an argument; log in with `hf auth login` or set HF_TOKEN")
        if name in owned:
            raise UserError(f"{block}.{name}: {owned[name]}")


def build(cls: type, values: Mapping[str, Any]) -> Any:
    """``cls(**values)``, with the config's own validation (``__post_init__``) as a one-line error."""
    try:
        return cls(**values)
    except (ValueError, TypeError, ImportError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{cls.__name__}: {first}") from exc


def effective(config: Any) -> dict[str, Any]:
    """Every field of a built TRL or peft config (set or left at its default) as JSON-safe values, secrets masked."""
    values = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
    # transformers' to_dict masks every *_token field; only the credentials need it (eos_token is a setting).
    return effective_values({k: getattr(config, k) if k.endswith("_token") and not _SECRET.search(k) else v for k, v in values.items()})


def effective_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Config values as JSON-safe data (enums as their values, sets sorted), credentials and URL credentials masked."""
    masked = {k: (f"<{k.upper()}>" if _SECRET.search(k) and v is not None else v) for k, v in values.items()}
    return dict(redact_urls(_jsonable(masked)))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
