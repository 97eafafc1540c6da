"""Click options generated from typed config fields, shared by ``build`` (pydantic) and ``train`` (dataclasses).

A config class is the single source of an option's name, type, default and help, so ``--help`` always
documents exactly what the code accepts. The options every build shares (source, models, engine, output,
sharding) are declared here once too, with :func:`build_options` turning a build command's values into
the typed :class:`~judgeforge.executors.build.BuildOptions` that
:func:`~judgeforge.executors.build.run_build` takes — so ``judgeforge build`` and ``judgeforge score``
offer the same options and neither imports the other.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from judgeforge.builders import load_builder
from judgeforge.builders.base import Builder
from judgeforge.engines import ENGINE_KINDS
from judgeforge.executors.build import BuildOptions, EngineOptions
from judgeforge.executors.local import ShardSpec
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


def shared_build_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every build takes: the source, the models and engine, the run dir, the seed, sharding, the cache."""
    options = [
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
            "--model",
            default="smollm2",
            show_default=True,
            help="Policy model: 'smollm2' (embedded SmolLM2-135M-Instruct), a local checkpoint, a Hub id, or (openai engine) the served model name.",
        ),
        click.option("--judge-model", default=None, help="Judge model for builders that judge (default: the policy model itself, i.e. self-rewarding)."),
        click.option("--engine", type=click.Choice(ENGINE_KINDS), default="transformers", show_default=True, help="Generation backend."),
        click.option("--base-url", default=None, help="OpenAI-compatible server URL for --engine openai (API key from OPENAI_API_KEY)."),
        click.option("--tokenizer", default=None, help="Tokenizer/chat template for --engine openai (default: --model)."),
        click.option("--max-concurrency", type=click.IntRange(min=1), default=8, show_default=True, help="Concurrent requests for --engine openai."),
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Sequences decoded together by the transformers engine."),
        click.option("--device", default=None, help="Device for the transformers engine (default: cuda if available, else cpu)."),
        click.option("--trust-remote-code", is_flag=True, default=False, help="Allow custom model code from the checkpoint (off by default)."),
        click.option(
            "--out", type=click.Path(path_type=Path), default=Path("runs"), show_default=True, help="Output directory; the dataset goes to OUT/<kind>/."
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Run seed: the same seed gives the same rows."),
        click.option("--shard", default="0/1", show_default=True, help="Build only slice i of N (i/N), e.g. one Slurm array task each."),
        click.option("--chunk-size", type=click.IntRange(min=1), default=16, show_default=True, help="Problems per Parquet shard (the unit of resume)."),
        click.option("--cache", type=click.Path(path_type=Path), default=None, help=_CACHE_HELP),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_params(builder_cls: type[Builder[Any]]) -> list[click.Parameter]:
    """The click parameters of a build of ``builder_cls``: the shared options, then the builder's own."""
    return click.command()(shared_build_options(config_options(builder_cls.Config)(lambda **_: None))).params


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
            seed=values["seed"],
        ),
        engines=EngineOptions(**{k: values[k] for k in EngineOptions.model_fields}),
        out=values["out"],
        seed=values["seed"],
        shard=ShardSpec.parse(values["shard"]),
        chunk_size=values["chunk_size"],
        cache=values["cache"],
        command=argv(),
    )
