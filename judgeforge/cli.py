"""The ``judgeforge`` command line.

``judgeforge build <builder>`` is generated from the builder registry: the options every build shares
(source, model, engine, output, sharding) come from one decorator, and each builder's own options come
from the fields of its pydantic ``Config`` — so ``--help`` always documents exactly what the builder
accepts, and adding a builder adds its subcommand with no CLI code.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel
from rich.console import Console

from judgeforge import __version__
from judgeforge.builders import builder_names, load_builder
from judgeforge.engines import ENGINE_KINDS, Engine, make_engine
from judgeforge.options import field_option

_SHARED_HELP = """
Problems come from --source: gym:<task> (reasoning-gym, offline, with gold answers), a local
.jsonl/.json/.parquet/.csv file, or a datasets id/path. The dataset goes to OUT/<kind>/: Parquet shards
under data/, manifest.json, and the request cache. Re-running the same command resumes: finished shards
are kept and engine calls already made are answered from the cache.
"""

_CACHE_HELP = (
    "Request-cache file (default: OUT/<kind>/cache.sqlite); point runs at one file to share engine calls. "
    "Keyed by engine, weights hash, tokenizer/chat-template hash, prompt, sampling params and seed. "
    "For --engine openai the weights are known only by the URL, the served name and what the server's "
    "/v1/models reports (id, created, owned_by, root, parent...): the cache cannot detect a server that swaps "
    "weights but reports identical metadata (vLLM serving new files under the same name and path does). "
    "Use a fresh --cache (or --out) after changing a served model."
)


def config_options(config_model: type[BaseModel]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Click options for every field of a builder's config (``num_candidates`` → ``--num-candidates``)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for name, field in reversed(list(config_model.model_fields.items())):
            func = field_option(name, field.annotation, field.default, field.description or "", flag=field.alias)(func)
        return func

    return decorate


def shared_build_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--source", default="gym:gsm_symbolic", show_default=True, help="Problems: gym:<task>, a local file, or a datasets id/path."),
        click.option("--question-col", default="question", show_default=True, help="Column holding the question (files and datasets)."),
        click.option("--answer-col", default="answer", show_default=True, help="Column holding the gold final answer; 'none' if there is none."),
        click.option("--solution-col", default=None, help="Column holding a gold step-by-step solution, if any."),
        click.option("--id-col", default=None, help="Column holding a stable problem id (default: file name + row number)."),
        click.option("--split", default="train", show_default=True, help="Split to read from a datasets id."),
        click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N inputs (problems; step-labelled solutions for rprm-* and score)."),
        click.option("--model", default="smollm2", show_default=True, help="Policy model: 'smollm2' (embedded SmolLM2-135M-Instruct), a local checkpoint, a Hub id, or (openai engine) the served model name."),
        click.option("--judge-model", default=None, help="Judge model for builders that judge (default: the policy model itself, i.e. self-rewarding)."),
        click.option("--engine", type=click.Choice(ENGINE_KINDS), default="transformers", show_default=True, help="Generation backend."),
        click.option("--base-url", default=None, help="OpenAI-compatible server URL for --engine openai (API key from OPENAI_API_KEY)."),
        click.option("--tokenizer", default=None, help="Tokenizer/chat template for --engine openai (default: --model)."),
        click.option("--max-concurrency", type=click.IntRange(min=1), default=8, show_default=True, help="Concurrent requests for --engine openai."),
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Sequences decoded together by the transformers engine."),
        click.option("--device", default=None, help="Device for the transformers engine (default: cuda if available, else cpu)."),
        click.option("--trust-remote-code", is_flag=True, default=False, help="Allow custom model code from the checkpoint (off by default)."),
        click.option("--out", type=click.Path(path_type=Path), default=Path("runs"), show_default=True, help="Output directory; the dataset goes to OUT/<kind>/."),
        click.option("--seed", type=int, default=0, show_default=True, help="Run seed: the same seed gives the same rows."),
        click.option("--shard", default="0/1", show_default=True, help="Build only slice i of N (i/N), e.g. one Slurm array task each."),
        click.option("--chunk-size", type=click.IntRange(min=1), default=16, show_default=True, help="Problems per Parquet shard (the unit of resume)."),
        click.option("--cache", type=click.Path(path_type=Path), default=None, help=_CACHE_HELP),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="judgeforge")
def main() -> None:
    """judgeforge: build, curate, review, publish and train on the datasets self-improving LLMs learn from.

    Point it at a checkpoint (or the embedded SmolLM2-135M-Instruct) and a set of problems; get
    versioned, resumable datasets in the formats TRL trains on.
    """
    _quiet_libraries()


def _quiet_libraries() -> None:
    """Our own progress bar and errors are what users read; silence the libraries' bars and retries."""
    import logging
    import warnings

    # transformers 5.2x deprecates the past_key_values keyword our decode loop passes; the warning is noise to users.
    warnings.filterwarnings("ignore", message=".*past_key_values.*deprecated", category=FutureWarning)
    # TRL 1.16's configs default to gradient_checkpointing, which transformers 5.24 renamed; not the user's doing.
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
    for name in ("transformers", "datasets", "huggingface_hub", "httpx", "math_verify"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


class _BuildGroup(click.Group):
    """One subcommand per registered kind's builder, made when it is asked for (so a new kind needs no line here)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return builder_names()

    def get_command(self, ctx: click.Context | None, cmd_name: str) -> click.Command | None:
        return _make_build_command(cmd_name) if cmd_name in builder_names() else None


@main.group(cls=_BuildGroup)
def build() -> None:
    """Build a dataset with one of the builders (one subcommand per dataset family)."""


def _make_build_command(name: str) -> click.Command:
    builder_cls = load_builder(name)

    def command(**kwargs: Any) -> None:
        run_build(name, kwargs)

    module_doc = (sys.modules[builder_cls.__module__].__doc__ or "").strip().replace("``", "")
    help_text = f"{builder_cls.summary[:1].upper()}{builder_cls.summary[1:]}.\n\n{module_doc}\n{_SHARED_HELP}"
    func = shared_build_options(config_options(builder_cls.Config)(command))
    return click.command(name, help=help_text)(func)


def run_build(name: str, kwargs: dict[str, Any]) -> None:
    from judgeforge.runs import RunOptions, ShardSpec, argv, execute, prepare_out, summary_table
    from judgeforge.sources import SourceConfig

    builder_cls = load_builder(name)
    console = Console(stderr=True)
    config = builder_cls.Config(**{k: kwargs.pop(k) for k in list(kwargs) if k in builder_cls.Config.model_fields})
    shard = ShardSpec.parse(kwargs["shard"])
    prepare_out(kwargs["out"])
    answer_col = None if str(kwargs["answer_col"]).lower() == "none" else kwargs["answer_col"]
    source = SourceConfig(
        source=kwargs["source"], question_col=kwargs["question_col"], answer_col=answer_col, solution_col=kwargs["solution_col"],
        id_col=kwargs["id_col"], split=kwargs["split"], limit=kwargs["limit"], seed=kwargs["seed"],
    )
    items = builder_cls.load_inputs(source)
    start = time.perf_counter()
    engines = _engines(builder_cls.roles, kwargs)
    timings = {"load_models_s": round(time.perf_counter() - start, 3)}
    try:
        opts = RunOptions(out=kwargs["out"], seed=kwargs["seed"], shard=shard, chunk_size=kwargs["chunk_size"], cache=kwargs["cache"], command=argv())
        manifest = execute(builder_cls, config, source, items, engines, opts, timings, console)
    finally:
        for engine in {id(e): e for e in engines.values()}.values():
            engine.close()
    where = Path(kwargs["out"]) / builder_cls.row_model.kind
    Console().print(summary_table(builder_cls, manifest, where))
    if manifest["rows_out"] == 0:
        console.print("[yellow]warning:[/] the run produced no rows; see the counters above")


def _engines(roles: tuple[str, ...], kwargs: dict[str, Any]) -> dict[str, Engine]:
    options = {
        "device": kwargs["device"], "batch_size": kwargs["batch_size"], "trust_remote_code": kwargs["trust_remote_code"],
        "base_url": kwargs["base_url"], "tokenizer": kwargs["tokenizer"], "max_concurrency": kwargs["max_concurrency"],
    }
    policy = make_engine(kwargs["engine"], kwargs["model"], **options)
    engines = {"policy": policy}
    if "judge" in roles:
        judge_model = kwargs["judge_model"]
        same = judge_model is None or judge_model == kwargs["model"]
        engines["judge"] = policy if same else make_engine(kwargs["engine"], judge_model, **options)
    return engines


# Top-level commands that live beside the code they drive ("module:attribute" of a click command).
# Their modules must import heavy libraries inside the command, not at import time.
COMMANDS: dict[str, str] = {
    "review": "judgeforge.curation.review:review",
    "card": "judgeforge.data_cards.card:card",
    "publish": "judgeforge.publish:publish",
    "curate": "judgeforge.curation.cli:curate_command",
    "inspect": "judgeforge.curation.cli:inspect_command",
    "audit": "judgeforge.curation.cli:audit_command",
    "score": "judgeforge.builders.rprm_score:score",
    "train": "judgeforge.train.cli:train",
    "eval": "judgeforge.train.cli:eval_command",
    "loop": "judgeforge.train.cli:loop_command",
}

for _name, _target in COMMANDS.items():
    _module, _, _attr = _target.partition(":")
    main.add_command(getattr(importlib.import_module(_module), _attr), _name)


if __name__ == "__main__":  # pragma: no cover
    main()
