"""The ``judgeforge train`` and ``judgeforge loop`` commands (see :data:`judgeforge.cli.COMMANDS`; ``eval`` lives in :mod:`judgeforge.train.eval_cli`).

``train``'s subcommands are generated from the recipes' config dataclasses, so ``--help`` lists exactly
the fields a recipe takes; ``--trl.<field>=VALUE`` and ``--peft.<field>=VALUE`` pass any field of the
trainer's TRL config or of peft's LoraConfig through (:mod:`judgeforge.train.passthrough`).
``judgeforge train RECIPE.yaml`` runs a YAML recipe: its ``recipe:`` key names sft, dpo or rl and its
other keys are that recipe's fields (``trl:`` and ``peft:`` blocks included), which options on the
command line override. Heavy libraries are imported when a command runs, so the CLI starts fast.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import click
import yaml
from rich.table import Table

from judgeforge.console import make_console
from judgeforge.errors import UserError
from judgeforge.executors.build import POLICY
from judgeforge.options import engine_choices, engine_options, engine_params, field_option
from judgeforge.train.common import PASSTHROUGH, RecipeConfig, validate_config
from judgeforge.train.dpo import DPORecipe, train_dpo
from judgeforge.train.passthrough import parse_args
from judgeforge.train.rl import RLRecipe, train_rl
from judgeforge.train.sft import SFTRecipe, train_sft

LOOP_ROLE = "judge"
"""The role the loop's builders (step-prefs, self-taught) have besides the policy."""

RECIPES: dict[str, tuple[type[RecipeConfig], Callable[..., dict[str, Any]]]] = {
    "sft": (SFTRecipe, train_sft),
    "dpo": (DPORecipe, train_dpo),
    "rl": (RLRecipe, train_rl),
}
TRL_CONFIGS = {"sft": "SFTConfig", "dpo": "DPOConfig", "rl": "RLOOConfig (--trainer rloo) or GRPOConfig (--trainer grpo)"}


def shipped_recipes() -> Path:
    return Path(str(resources.files("judgeforge.train") / "recipes"))


def _recipe_file(name: str) -> Path | None:
    """A YAML recipe given as a path, or by the name of one shipped in judgeforge/train/recipes/."""
    if not name.endswith((".yaml", ".yml")):
        return None
    path = Path(name)
    if path.is_file():
        return path
    shipped = shipped_recipes() / path.name
    if shipped.is_file():
        return shipped
    raise UserError(f"recipe file '{name}' not found (shipped recipes: {', '.join(sorted(p.name for p in shipped_recipes().glob('*.yaml')))})")


def load_recipe(path: Path) -> tuple[str, dict[str, Any]]:
    """The method and field values of a YAML recipe, checked against the recipe's fields."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict) or data.get("recipe") not in RECIPES:
        raise UserError(f"{path}: needs a 'recipe:' key, one of {', '.join(RECIPES)}")
    method = data.pop("recipe")
    for key in ("data", "eval_data"):
        if isinstance(data.get(key), str):
            data[key] = [data[key]]
    for block in PASSTHROUGH:
        if not isinstance(data.get(block, {}), dict):
            raise UserError(f"{path}: '{block}:' must be a mapping of field: value")
    validate_config(RECIPES[method][0], {"data": [], **data}, str(path))
    return method, data


class TrainGroup(click.Group):
    """``train sft|dpo|rl`` plus ``train RECIPE.yaml``: the file's values become the recipe's option defaults."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        path = _recipe_file(cmd_name)
        if path is None:
            return super().get_command(ctx, cmd_name)
        method, values = load_recipe(path)
        ctx.default_map = {**(ctx.default_map or {}), cmd_name: values}
        return super().get_command(ctx, method)


def _passthrough_help(method: str) -> str:
    return (
        f"TRL's own options: --trl.<field>=VALUE sets any field of {TRL_CONFIGS[method]} (repeat for several; VALUE is read as YAML: "
        "1e-5, true, cosine, '[a, b]'), e.g. --trl.lr_scheduler_type=cosine --trl.warmup_steps=0.03 --trl.report_to=tensorboard; "
        "--peft.<field>=VALUE any field of peft's LoraConfig. In a YAML recipe: trl: and peft: blocks. "
        "Precedence, highest first: --trl.<field> on the command line > trl: in the YAML recipe > judgeforge's value "
        "(the paper's default for the data's kind, the options above, the CPU/GPU settings) > TRL's default. "
        "An option above that sets a TRL field (--learning-rate is learning_rate, --epochs num_train_epochs) is the same setting: give one. "
        "Fields the recipe sets itself (output_dir, max_length, ...) and *_token fields are refused with what to use instead."
    )


def _recipe_command(method: str) -> click.Command:
    cls, train = RECIPES[method]

    def command(**kwargs: Any) -> None:
        ctx = click.get_current_context()
        given = parse_args(ctx.args, [o for p in ctx.command.params for o in p.opts])
        from_file = ctx.default_map or {}
        kwargs |= {block: {**from_file.get(block, {}), **given[block]} for block in PASSTHROUGH}
        kwargs["data"], kwargs["eval_data"] = list(kwargs["data"]), list(kwargs["eval_data"])
        cfg = validate_config(cls, kwargs, f"judgeforge train {method}")
        manifest = train(cfg)
        table = Table(title=f"judgeforge train {method} · {cfg.out}")
        for name in ("examples", "dropped (too long)", "steps", "train loss", "final loss", "final eval loss", "seconds", "device"):
            table.add_column(name, justify="right")
        final, dropped, final_eval = manifest["final_loss"], manifest.get("dropped_too_long"), manifest.get("final_eval_loss")
        table.add_row(
            f"{manifest['examples']:,}",
            "-" if dropped is None else f"{dropped:,}",
            str(manifest["steps"]),
            f"{manifest['train_loss']:.4f}",
            "-" if final is None else f"{final:.4f}",
            "-" if final_eval is None else f"{final_eval:.4f}",
            f"{manifest['seconds']:.1f}",
            manifest["device"],
        )
        make_console().print(table)

    func: Callable[..., Any] = command
    hints = typing.get_type_hints(cls)
    for f in reversed(dataclasses.fields(cls)):
        if f.name in PASSTHROUGH:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        func = field_option(f.name, hints[f.name], default, f.metadata["help"])(func)
    doc = (sys.modules[train.__module__].__doc__ or "").strip()
    return click.command(
        method,
        help=doc.replace("``", ""),
        epilog=_passthrough_help(method),
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )(func)


@click.group("train", cls=TrainGroup)
def train() -> None:
    """Train the next model on built runs with a thin TRL recipe.

    \b
      judgeforge train sft --data RUN_DIR [--data RUN_DIR ...] --model M --out DIR [options]
      judgeforge train dpo --data RUN_DIR --model M --out DIR [options]
      judgeforge train rl  --data RUN_DIR --model M --out DIR [--trainer rloo|grpo] [--reward outcome|process]
      judgeforge train RECIPE.yaml [options that override the file]

    Each recipe maps the runs' kind to its TRL view, refuses a kind it cannot train on, and writes the
    checkpoint plus training_manifest.json (data runs and manifest hashes, base model, library versions,
    the full effective TRL and peft configs, train and eval losses) and a model card (README.md) to
    --out; re-running a finished recipe trains nothing. Unset learning rate, epochs, batch and the
    paper's TRL fields come from the paper behind the data's kind; any field of the trainer's TRL
    config passes through with --trl.<field>=VALUE (or a trl: block in a YAML recipe), and the user's
    value wins. --lora-r N trains a LoRA adapter (peft; --qlora on a CUDA GPU with bitsandbytes),
    --merge also writes the merged model. --eval-fraction F (or --eval-data RUN) logs an eval loss on
    held-out problems. Shipped YAML recipes (by file name): see judgeforge/train/recipes/. The same
    command runs on CPU or GPU; for several GPUs or nodes use accelerate with the configs TRL ships in
    trl/accelerate_configs (zero3.yaml, fsdp2.yaml, ...):

    \b
      accelerate launch --config_file ZERO3_YAML --num_processes 8 -m judgeforge.cli train dpo --data ... --out ...
    """


for _method in RECIPES:
    train.add_command(_recipe_command(_method))


@click.command("loop")
@click.option(
    "--method",
    type=click.Choice(["self-rewarding", "self-taught"]),
    required=True,
    help="self-rewarding: step-prefs + step-wise DPO; self-taught: judge data + SFT.",
)
@click.option("--iterations", type=click.IntRange(min=1), default=3, show_default=True, help="How many models to train (M1 → M2 → ... → M{T+1}).")
@click.option(
    "--model",
    default="smollm2",
    show_default=True,
    help="M1, the model the loop starts from (M0 with --from-m0; for self-taught also the seed model each iteration fine-tunes).",
)
@click.option(
    "--from-m0",
    is_flag=True,
    help="Self-rewarding from the base model, as the paper: --model is M0; build IFT and EFT with it, SFT M0 → M1, evaluate M1, then the DPO iterations.",
)
@click.option(
    "--ift-from",
    type=click.Choice(["gold", "samples"]),
    default="gold",
    show_default=True,
    help="--from-m0: IFT from the source's gold solutions, or rejection-sampled from M0.",
)
@click.option(
    "--m0-limit", type=click.IntRange(min=1), default=None, help="--from-m0: problems the IFT and EFT builds use (the first block).  [default: --limit]"
)
@click.option(
    "--problems-per-iteration",
    default=None,
    metavar="N[,N...]",
    help="New problems each iteration builds: one count, or one per iteration (the paper: 400,800,1200).  [default: --limit]",
)
@engine_options(POLICY, skip=("model",))
@engine_options(LOOP_ROLE)
@click.option(
    "--source",
    default="gym:gsm_symbolic",
    show_default=True,
    help=("Training problems, new ones every build: gym:<task> (one seed each), or a local file / datasets id (the next block of rows each: --offset)."),
)
@click.option("--limit", type=click.IntRange(min=1), default=16, show_default=True, help="Problems built per iteration (and by the M0 → M1 stage).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the first build; each later build (iteration, after the M0 stage) uses the next.")
@click.option("--eval-source", default=None, help="Held-out problems (default: the --source gym task under --eval-seed).")
@click.option("--eval-limit", type=click.IntRange(min=1), default=50, show_default=True, help="Held-out problems evaluated per model.")
@click.option("--eval-seed", type=int, default=10_000, show_default=True, help="reasoning-gym seed of the held-out problems.")
@click.option("--eval-max-tokens", type=click.IntRange(min=1), default=256, show_default=True, help="Longest held-out solution (and judgment), in tokens.")
@click.option(
    "--judge-eval-pairs",
    default=None,
    metavar="FILE_OR_RUN",
    help="Held-out pairs (as for eval judge: an EFT or Self-Taught run, a RewardBench or chosen/rejected file): every model's judge accuracy on them is recorded and plotted beside its held-out accuracy.",
)
@click.option("--spec", default=None, help="Curation spec (a YAML path or a shipped spec's name; default: the kind's default spec).")
@click.option("--build-args", default="", help='Extra options for every build, e.g. "--num-candidates 4 --max-steps 8".')
@click.option(
    "--train-args", default="", help='Extra options for every training run, e.g. "--max-steps 50 --batch-size 8" or "--lora-r 16 --merge --trl.beta=0.2".'
)
@click.option("--ift-args", default="", help='--from-m0: extra options for the IFT build, e.g. "--samples-per-problem 8".')
@click.option("--eft-args", default="", help='--from-m0: extra options for the EFT build, e.g. "--num-candidates 6 --rollouts 8".')
@click.option("--sft-args", default="", help='--from-m0: extra options for the M0 → M1 SFT, e.g. "--max-steps 100 --lora-r 16 --merge".')
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="Loop directory: iter-<i>/ per iteration, loop.json, loop.png.")
def loop_command(out: Path, **values: Any) -> None:
    """Close the self-improvement loop: build with M_i → curate → train M_{i+1} → evaluate, T times.

    Every stage is a judgeforge command run in a child process and shown before it runs; each
    iteration's runs and checkpoint live under OUT/iter-<i>/. With --from-m0 (self-rewarding) the loop
    begins at the base model M0, as the paper does: it builds IFT (--ift-from gold|samples) and EFT with
    M0, fine-tunes M0 → M1 on both (SFT), evaluates M1, then runs the step-wise DPO iterations from M1;
    that stage lives under OUT/m0/ and in loop.json's "m0" record. Every build takes new problems: a
    gym: task under the next seed, a file or datasets source the next block of rows (--m0-limit for the
    M0 stage, then --problems-per-iteration or --limit each). OUT/loop.json records per iteration rows
    built and kept, the judge's parse-failure rate, the builder's quality signal (step-search accuracy;
    correct-verdict rate), training loss, held-out accuracy and, with --judge-eval-pairs, held-out judge
    accuracy (as eval judge measures it), and is updated after every stage: re-run
    the same command after a crash or kill and the loop resumes at the first unfinished stage.

    The engine options go to every build and eval. The model trained each iteration replaces the model
    of the role it plays (self-rewarding: the policy, which the judge follows unless --judge-model fixes
    it, e.g. a larger judge on a server with --judge-base-url; self-taught: the judge, while the seed
    model writes the pairs on the policy's engine). That role runs a new local checkpoint each
    iteration, so it cannot use --engine openai.
    """
    from judgeforge.train.loop import Loop, build_settings

    roles = (POLICY, LOOP_ROLE)
    settings = build_settings(engines=engine_choices(values, roles), **{k: v for k, v in values.items() if k not in engine_params(roles)})
    console = make_console()
    loop = Loop(settings, out, console)
    loop.run()
    console.print(loop.table())
    console.print(f"loop.json and loop.png in {out}")
