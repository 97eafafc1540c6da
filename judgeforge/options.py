"""Click options generated from typed config fields, shared by ``build`` (pydantic) and ``train`` (dataclasses).

A config class is the single source of an option's name, type, default and help, so ``--help`` always
documents exactly what the code accepts. The options every build shares (source, models, engine, output,
sharding) are declared here once too, with :func:`build_options` turning a build command's values into
the typed :class:`~judgeforge.executors.build.BuildOptions` that
:func:`~judgeforge.executors.build.run_build` takes — so ``judgeforge build`` and ``judgeforge score``
offer the same options and neither imports the other.

The engine options come from the fields of :class:`~judgeforge.engines.EngineSpec`, once per role: the
policy's unprefixed (``--engine``, ``--model``, ``--dtype``...), every other role a builder declares
prefixed with its name (``--judge-engine``, ``--judge-base-url``...). A role's options default to the
policy's values; :class:`EngineChoices` holds what was given and resolves each role's spec, and turns
the choices back into options for a child command (``judgeforge loop``) that parse into the same specs.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo

from judgeforge.builders import load_builder
from judgeforge.builders.base import Builder
from judgeforge.engines import EngineSpec
from judgeforge.errors import UserError
from judgeforge.executors.build import POLICY, BuildOptions
from judgeforge.executors.local import REPEATED_FLAGS, ShardSpec, role_flag
from judgeforge.executors.ray import RayOptions
from judgeforge.runs import argv
from judgeforge.sources import SourceConfig

_CACHE_HELP = (
    "Request-cache file (default: OUT/<kind>/cache.sqlite); point runs at one file to share engine calls. "
    "Keyed by engine, weights hash, tokenizer/chat-template hash, prompt, sampling params and seed. "
    "For --engine openai the weights are known only by the URL, the served name and what the server's "
    "/v1/models reports (id, created, owned_by, root, parent...): the cache cannot detect a server that swaps "
    "weights but reports identical metadata (vLLM serving new files under the same name and path does). "
    "Use a fresh --cache (or --out) after changing a served model."
)


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


def config_options(config_model: type[BaseModel]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Click options for every field of a builder's config (``num_candidates`` → ``--num-candidates``)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for name, field in reversed(list(config_model.model_fields.items())):
            func = field_option(name, field.annotation, field.default, field.description or "", flag=field.alias)(func)
        return func

    return decorate


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _param(role: str, name: str) -> str:
    """The click parameter name of spec field ``name`` for ``role`` (``dtype``, ``judge_dtype``)."""
    return name if role == POLICY else f"{role}_{name}"


def _engine_option(role: str, name: str, field: FieldInfo) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One engine option: the policy's defaults to the spec's default, another role's to None (the policy's value)."""
    flag, param = role_flag(role, name), _param(role, name)
    sentences = [(field.description or "").rstrip(".")]
    if name in REPEATED_FLAGS:
        sentences[0] += "; repeatable, VALUE read as YAML, e.g. max_model_len=4096" + ("" if role == POLICY else "; given, they replace the policy's")
    default: Any = None
    if role != POLICY:
        if name == "engine":
            sentences.append(
                f"The {role} runs on the policy's engine settings with any --{role}-* options given replaced, and "
                f"given none shares the policy's engine (one model, loaded once); --{role}-base-url alone implies --{role}-engine openai"
            )
        shown = f"the policy's {role_flag(POLICY, name)}"
    elif name == "engine":
        shown = "transformers, or openai when --base-url is given"
    else:
        default = field.get_default(call_default_factory=True)
        shown = "" if default in (None, {}) else str(default)
    help_text = ". ".join(t for t in sentences if t) + (f" [default: {shown}]" if shown else "")
    if name in REPEATED_FLAGS:
        return click.option(flag, param, multiple=True, metavar="KEY=VALUE", help=help_text)
    kind, is_flag = option_type(field.annotation)
    bound = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
    if kind is int and bound is not None:
        kind = click.IntRange(min=bound)
    if is_flag:
        return click.option(f"{flag}/--no-{flag[2:]}", param, default=default, help=help_text)
    return click.option(flag, param, type=kind, default=default, help=help_text)


def engine_options(role: str = POLICY, skip: Collection[str] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Click options for every :class:`EngineSpec` field of ``role`` but those in ``skip``.

    The policy's are unprefixed and default to the spec's defaults (``--engine`` to None: transformers,
    or openai with a base URL); another role's are prefixed with its name and default to None, which
    :func:`engine_choices` reads as "the policy's value".
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for name, field in reversed([(n, f) for n, f in EngineSpec.model_fields.items() if n not in skip]):
            func = _engine_option(role, name, field)(func)
        return func

    return decorate


def engine_params(roles: Sequence[str]) -> set[str]:
    """The click parameter names of every engine option of ``roles`` (``dtype``, ``judge_dtype``...)."""
    return {_param(r, n) for r in roles for n in EngineSpec.model_fields}


def engine_flags(roles: Sequence[str]) -> set[str]:
    """Every engine option of ``roles``, with the ``--no-`` form of flags: what a child command's extra args may not set."""
    flags: set[str] = set()
    for role in roles:
        for name, field in EngineSpec.model_fields.items():
            flag = role_flag(role, name)
            flags |= {flag, f"--no-{flag[2:]}"} if field.annotation is bool else {flag}
    return flags


def parse_engine_args(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` options (``--vllm-arg``) as a dict, each VALUE read as YAML (``true``, ``4096``, ``0.9``)."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not _KEY.fullmatch(key.strip()):
            raise UserError(f"{flag} '{pair}': expected KEY=VALUE, e.g. {flag} max_model_len=4096")
        key = key.strip()
        if key in EngineSpec.model_fields:
            raise UserError(f"{flag} '{pair}': '{key}' has its own option ({role_flag(POLICY, key)}, or the role's)")
        try:
            parsed[key] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise UserError(f"{flag} '{pair}': VALUE is not YAML ({problem})") from exc
    return parsed


def resolve_spec(base: EngineSpec, given: Mapping[str, Any], role: str) -> EngineSpec:
    """``role``'s spec: ``base`` (the policy's, or the spec defaults for the policy) with the options ``given`` replaced.

    A base URL without an engine means the openai engine; only openai keeps a base URL. One-line errors
    name the option at fault.
    """
    chosen = dict(given)
    if chosen.get("base_url") and "engine" not in chosen:
        chosen["engine"] = "openai"
    if chosen.get("base_url") and chosen["engine"] != "openai":
        raise UserError(f"{role_flag(role, 'base_url')} is for {role_flag(role, 'engine')} openai, not {chosen['engine']}")
    merged = {**base.model_dump(), **chosen}
    if merged["engine"] != "openai":
        merged["base_url"] = None
    elif not merged["base_url"]:
        raise UserError(f"{role_flag(role, 'engine')} openai needs {role_flag(role, 'base_url')} (the server's URL, e.g. http://127.0.0.1:8000/v1)")
    try:
        return EngineSpec.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"{role_flag(role, str(err['loc'][0]))}: {err['msg']}") from exc


class EngineChoices(BaseModel):
    """The engine options of one command line: the policy's spec, and per other role the options given for it.

    A role that is given nothing runs on the policy's spec (and so shares its engine); see :meth:`spec`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: EngineSpec = EngineSpec()
    roles: dict[str, dict[str, Any]] = Field(default_factory=dict, description="role → the spec fields given for it; the rest are the policy's")

    @field_validator("roles")
    @classmethod
    def _known_fields(cls, roles: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if POLICY in roles:
            raise ValueError("the policy's spec is 'policy', not a role's options")
        for role, given in roles.items():
            if unknown := sorted(set(given) - set(EngineSpec.model_fields)):
                raise ValueError(f"role '{role}': unknown engine fields {', '.join(unknown)}")
        return roles

    def spec(self, role: str) -> EngineSpec:
        """``role``'s spec: the policy's with the options given for ``role`` replaced."""
        return self.policy if role == POLICY else resolve_spec(self.policy, self.roles.get(role, {}), role)

    def specs(self, roles: Sequence[str]) -> dict[str, EngineSpec]:
        return {role: self.spec(role) for role in roles}

    def with_model(self, role: str, model: str) -> EngineChoices:
        """These choices with ``role``'s model replaced (the loop's M_i)."""
        if role == POLICY:
            return self.model_copy(update={"policy": self.policy.model_copy(update={"model": model})})
        return self.model_copy(update={"roles": {**self.roles, role: {**self.roles.get(role, {}), "model": model}}})

    def argv(self) -> list[str]:
        """Options that :func:`engine_choices` parses back into these choices."""
        return [*spec_argv(self.policy), *(a for role, given in self.roles.items() for a in _option_args(role, given))]


def spec_argv(spec: EngineSpec, skip: Collection[str] = ()) -> list[str]:
    """The policy options that parse back into ``spec``: ``--model`` (unless skipped), then the fields that are not the defaults."""
    defaults = EngineSpec()
    return _option_args(POLICY, {n: v for n, v in spec if n not in skip and (n == "model" or v != getattr(defaults, n))})


def _option_args(role: str, values: Mapping[str, Any]) -> list[str]:
    args: list[str] = []
    for name, value in values.items():
        flag = role_flag(role, name)
        if isinstance(value, dict):  # KEY=VALUE pairs; a JSON scalar is YAML that reads back as itself
            args += [a for key, v in value.items() for a in (flag, f"{key}={json.dumps(v)}")]
        elif isinstance(value, bool):
            args.append(flag if value else f"--no-{flag[2:]}")
        else:
            args += [flag, str(value)]
    return args


def engine_choices(values: Mapping[str, Any], roles: Sequence[str] = ()) -> EngineChoices:
    """The engine options among a command's ``values`` (:func:`engine_options`) for the policy and ``roles``; one-line errors.

    Every role's spec is resolved once here, so a bad combination fails before anything loads.
    """

    def given(role: str) -> dict[str, Any]:
        chosen: dict[str, Any] = {}
        for name in EngineSpec.model_fields:
            value = values.get(_param(role, name))
            if name in REPEATED_FLAGS:
                value = parse_engine_args(value, role_flag(role, name)) if value else None
            if value is not None:
                chosen[name] = value
        return chosen

    policy = resolve_spec(EngineSpec(), given(POLICY), POLICY)
    choices = EngineChoices(policy=policy, roles={r: given(r) for r in roles if r != POLICY})
    choices.specs(roles)
    return choices


_TEST_FRACTION_HELP = (
    "Hold this share of the problems out, by problem id, as a test split in OUT/<kind>/test/ (a run dir of its own, "
    "built like the rest): judgeforge train reads only OUT/<kind>/data, eval judge reads the test split, publish uploads it as the test split. "
    "The same problem is held out in every run of a source, whatever the seed or --limit."
)


def shared_build_options(roles: Sequence[str], held_out_split: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every build takes: the source, the engine of every role in ``roles``, the run dir, the seed, sharding, the cache;
    ``--test-fraction`` for a builder whose inputs can be held out (``held_out_split``)."""
    split = [click.option("--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True, help=_TEST_FRACTION_HELP)]
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--source", default="gym:gsm_symbolic", show_default=True, help="Problems: gym:<task>, a local file, or a datasets id/path."),
        click.option("--question-col", default="question", show_default=True, help="Column holding the question (files and datasets)."),
        click.option("--answer-col", default="answer", show_default=True, help="Column holding the gold final answer; 'none' if there is none."),
        click.option("--solution-col", default=None, help="Column holding a gold step-by-step solution, if any."),
        click.option("--id-col", default=None, help="Column holding a stable problem id (default: file name + row number)."),
        click.option("--split", default="train", show_default=True, help="Split to read from a datasets id."),
        click.option(
            "--limit", type=click.IntRange(min=1), default=None, help="Use only the first N inputs (problems; step-labelled solutions for rprm-* and score)."
        ),
        click.option(
            "--offset",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Skip the first N rows of a file or datasets source (--limit counts from there); ids stay the rows' own numbers.",
        ),
        *(engine_options(role) for role in (POLICY, *(r for r in roles if r != POLICY))),
        click.option(
            "--out", type=click.Path(path_type=Path), default=Path("runs"), show_default=True, help="Output directory; the dataset goes to OUT/<kind>/."
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Run seed: the same seed gives the same rows."),
        click.option("--shard", default="0/1", show_default=True, help="Build only slice i of N (i/N), e.g. one Slurm array task each."),
        click.option("--chunk-size", type=click.IntRange(min=1), default=16, show_default=True, help="Problems per Parquet shard (the unit of resume)."),
        *(split if held_out_split else []),
        click.option("--cache", type=click.Path(path_type=Path), default=None, help=_CACHE_HELP),
        click.option(
            "--dry-run",
            is_flag=True,
            default=False,
            help="Print the plan and its cost and stop: inputs, chunks, what OUT already holds (resume, growth or another run), and per role "
            "the requests, completions, prompt tokens (the real prompts of the first inputs, tokenized) and generated tokens (upper bounds). "
            "Loads no model weights and writes nothing.",
        ),
        click.option(
            "--executor",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help="Where chunks are built: this process, or a pool of Ray workers (needs judgeforge[ray]) that each load the engines once.",
        ),
        click.option("--ray-address", default=None, help="Ray cluster to join ('auto': the one `ray start` made on this node; default: start a local one)."),
        click.option("--num-workers", type=click.IntRange(min=1), default=None, help="Ray workers [default: as many as the cluster's CPUs (or GPUs) allow]."),
        click.option(
            "--cpus-per-worker",
            type=click.FloatRange(min=0, min_open=True),
            default=1.0,
            show_default=True,
            help="CPUs Ray gives each worker (its torch threads).",
        ),
        click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True, help="GPUs Ray gives each worker (vLLM on GPU nodes)."),
    ]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def build_params(builder_cls: type[Builder[Any]]) -> list[click.Parameter]:
    """The click parameters of a build of ``builder_cls``: the shared options, then the builder's own."""
    options = shared_build_options(builder_cls.roles, builder_cls.held_out_split)
    return click.command()(options(config_options(builder_cls.Config)(lambda **_: None))).params


def build_options(name: str, values: dict[str, Any]) -> BuildOptions:
    """A build command's option values (:func:`build_params`) as the typed options :func:`run_build` takes."""
    builder_cls = load_builder(name)
    answer_col = None if str(values["answer_col"]).lower() == "none" else values["answer_col"]
    return BuildOptions(
        builder=name,
        config={k: v for k, v in values.items() if k in builder_cls.Config.model_fields},
        source=SourceConfig(
            source=values["source"],
            question_col=values["question_col"],
            answer_col=answer_col,
            solution_col=values["solution_col"],
            id_col=values["id_col"],
            split=values["split"],
            limit=values["limit"],
            offset=values["offset"],
            seed=values["seed"],
        ),
        engines=engine_choices(values, builder_cls.roles).specs(builder_cls.roles),
        out=values["out"],
        seed=values["seed"],
        shard=ShardSpec.parse(values["shard"]),
        chunk_size=values["chunk_size"],
        cache=values["cache"],
        test_fraction=values.get("test_fraction", 0.0),
        command=argv(),
        executor=values["executor"],
        ray=RayOptions(
            address=values["ray_address"],
            num_workers=values["num_workers"],
            cpus_per_worker=values["cpus_per_worker"],
            gpus_per_worker=values["gpus_per_worker"],
        ),
    )
