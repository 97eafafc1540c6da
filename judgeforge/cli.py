"""The ``judgeforge`` command line.

``judgeforge build <builder>`` is generated from the builder registry: the options every build shares
(source, model, engine, output, sharding) and each builder's own options, from the fields of its pydantic
``Config``, come from :mod:`judgeforge.options` — so ``--help`` always documents exactly what the builder
accepts, and adding a builder adds its subcommand with no CLI code. The build itself is the library call
:func:`judgeforge.executors.build.run_build`; this module only parses and hands over.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from judgeforge import __version__
from judgeforge.builders import builder_names, load_builder
from judgeforge.executors.build import run_build
from judgeforge.executors.dry_run import dry_run, print_dry_run
from judgeforge.options import build_options, build_params

_SHARED_HELP = """
Problems come from --source: gym:<task> (reasoning-gym, offline, with gold answers), a local
.jsonl/.json/.parquet/.csv file, or a datasets id/path. The dataset goes to OUT/<kind>/: Parquet shards
under data/, manifest.json, and the request cache. Re-running the same command resumes: finished shards
are kept and engine calls already made are answered from the cache. Re-running it with a larger --limit
(or on a file with rows added at its end) grows the run: its shards are kept and the new inputs get new
chunks; any other change is refused with the options that differ. Ctrl-C (SIGINT) or SIGTERM marks the run
interrupted, keeping its shards. --dry-run prints the plan and its cost (requests and tokens per role)
without loading a model or writing anything.
"""


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

    def command(**values: Any) -> None:
        opts = build_options(name, values)
        if values["dry_run"]:
            print_dry_run(dry_run(opts))
        else:
            run_build(opts)

    module_doc = (sys.modules[builder_cls.__module__].__doc__ or "").strip().replace("``", "")
    help_text = f"{builder_cls.summary[:1].upper()}{builder_cls.summary[1:]}.\n\n{module_doc}\n{_SHARED_HELP}"
    return click.Command(name, params=build_params(builder_cls), callback=command, help=help_text)


# Top-level commands that live beside the code they drive ("module:attribute" of a click command).
# Their modules must import heavy libraries inside the command, not at import time.
COMMANDS: dict[str, str] = {
    "review": "judgeforge.curation.review:review",
    "card": "judgeforge.data_cards.card:card",
    "publish": "judgeforge.publish:publish",
    "curate": "judgeforge.curation.cli:curate_command",
    "inspect": "judgeforge.curation.cli:inspect_command",
    "runs": "judgeforge.curation.cli:runs_command",
    "audit": "judgeforge.curation.cli:audit_command",
    "score": "judgeforge.train.score:score",
    "train": "judgeforge.train.cli:train",
    "eval": "judgeforge.train.eval_cli:eval_command",
    "loop": "judgeforge.train.cli:loop_command",
}

for _name, _target in COMMANDS.items():
    _module, _, _attr = _target.partition(":")
    main.add_command(getattr(importlib.import_module(_module), _attr), _name)


if __name__ == "__main__":  # pragma: no cover
    main()
