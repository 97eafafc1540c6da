"""What every recipe shares: the config fields, the papers' defaults, hardware settings, and the checkpoint.

A recipe (``sft.py``, ``dpo.py``, ``grpo.py``) is a config dataclass that extends :class:`RecipeConfig`
and a function that hands :func:`run_recipe` a factory for its TRL trainer. Everything else lives here,
once: opening the ``--data`` runs, filling unset hyper-parameters from the paper behind the data's kind,
CPU/GPU settings (the same recipe runs on either unchanged), the effective batch as the papers state
it, the atomic checkpoint write (work dir + rename, so a killed run leaves no half checkpoint; with
``--save-steps`` a re-run resumes from the last intermediate checkpoint), dropping (and counting)
examples longer than ``--max-length`` rather than letting TRL truncate them (:func:`drop_too_long`), and
``training_manifest.json``: data runs and their manifests' hashes, base model, library versions,
hyper-parameters, examples trained on and dropped, and losses. Re-running a finished recipe with the
same settings trains nothing.

Multi-GPU and multi-node training go through ``accelerate launch`` with TRL's standard configs, e.g.
``accelerate launch --config_file zero3.yaml -m judgeforge.cli train dpo ...``: the effective batch is
split over ``WORLD_SIZE`` processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import TypeAdapter, ValidationError

from judgeforge import __version__
from judgeforge.errors import UserError
from judgeforge.files import replace_dir, utc_now, write_json
from judgeforge.schemas.kind import Method
from judgeforge.schemas.registry import get_kind
from judgeforge.train.data import DataRun, open_data, training_dataset

MANIFEST = "training_manifest.json"


def opt(default: Any, help: str) -> Any:  # noqa: A002 - mirrors click's keyword
    """A config field with its ``--help`` text (the dataclass is the single source of both)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class RecipeConfig:
    """Fields every recipe takes. ``None`` means: the paper's value for the data's kind."""

    data: list[Path] = opt([], "A finished run dir (OUT/<kind>, built or curated) to train on; repeat for several.")
    out: Path = opt(Path("checkpoints/model"), "Directory of the trained checkpoint and its training_manifest.json.")
    model: str = opt("smollm2", "Model to train: 'smollm2' (embedded SmolLM2-135M-Instruct), a local checkpoint or a Hub id.")
    learning_rate: float | None = opt(None, "Peak learning rate (default: the paper's value for the data's kind).")
    epochs: float | None = opt(None, "Passes over the data (default: the paper's value for the data's kind).")
    batch_size: int | None = opt(None, "Effective batch in examples, as the papers state it (default: the paper's value).")
    micro_batch_size: int = opt(4, "Examples per device per forward pass; gradients accumulate up to --batch-size.")
    max_steps: int = opt(-1, "Stop after this many optimiser steps (-1: run the epochs).")
    seed: int = opt(0, "Training seed (data order, dropout).")
    device: Literal["auto", "cpu", "cuda"] = opt("auto", "Where to train: cuda if available (bf16 autocast), else cpu (fp32).")
    logging_steps: int = opt(10, "Log the loss every N optimiser steps (the first and last steps are always logged).")
    save_steps: int = opt(0, "Keep a resumable checkpoint every N optimiser steps (0: none); a killed run re-run with the same command resumes from the last.")
    gradient_checkpointing: bool = opt(True, "Recompute activations in the backward pass: less memory, ~30% more compute (TRL's default).")
    trust_remote_code: bool = opt(False, "Allow custom model code from the checkpoint (off by default).")


ConfigT = TypeVar("ConfigT", bound=RecipeConfig)


def validate_config(cls: type[ConfigT], values: dict[str, Any], where: str) -> ConfigT:
    """Build a recipe config from untrusted values (a YAML file, the CLI); one-line errors naming the field."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return TypeAdapter(cls).validate_python(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"{where}: field '{'.'.join(str(p) for p in first['loc'])}': {first['msg']}") from exc


@dataclass
class TrainContext:
    """What a recipe's trainer factory gets: the data and model loaded, TRL arguments filled in."""

    config: RecipeConfig
    runs: list[DataRun]
    model: Any
    tokenizer: Any
    dataset: Any
    args: dict[str, Any]
    load_model: Callable[[], Any]
    stats: dict[str, int] = field(default_factory=dict)  # counters the recipe reports; they go into the manifest


def drop_too_long(ctx: TrainContext, trainer: Any, max_length: int, length: Callable[[dict[str, Any]], int]) -> Any:
    """``trainer`` with the prepared examples longer than ``max_length`` tokens dropped, counted in ``ctx.stats``.

    TRL truncates a long example from the end, which silently cuts the very tokens it exists for (an
    R-PRM verdict, S2R's final correct attempt, a chosen step's EOS). So a recipe hands TRL
    ``max_length=None`` and calls this on the dataset the trainer prepared: ``length`` measures an
    example exactly as the trainer tokenised it. When nothing is left it fails naming ``--max-length``.
    """
    prepared = trainer.train_dataset
    kept = prepared.filter(lambda example: length(example) <= max_length, desc=f"Dropping examples longer than {max_length} tokens")
    if len(kept) == 0:
        raise UserError(
            f"every one of the {len(prepared):,} training examples is longer than --max-length {max_length} tokens: nothing to train on; raise --max-length"
        )
    trainer.train_dataset = kept
    ctx.stats["dropped_too_long"] = len(prepared) - len(kept)
    return trainer


def resolve_defaults(cfg: RecipeConfig, runs: list[DataRun], method: Method) -> tuple[dict[str, Any], list[str]]:
    """learning_rate / epochs / batch_size: the user's value, else the one paper value all data kinds agree on."""
    defaults = {get_kind(r.kind).train_defaults[method] for r in runs}
    resolved = {}
    for name in ("learning_rate", "epochs", "batch_size"):
        given = getattr(cfg, name)
        if given is not None:
            resolved[name] = given
            continue
        values = {getattr(d, name) for d in defaults}
        if len(values) > 1:
            kinds = ", ".join(sorted({r.kind for r in runs}))
            raise UserError(f"the papers behind {kinds} give different {name} values ({sorted(values)}); give --{name.replace('_', '-')}")
        resolved[name] = values.pop()
    resolved = {"learning_rate": float(resolved["learning_rate"]), "epochs": float(resolved["epochs"]), "batch_size": int(resolved["batch_size"])}
    cites = sorted({d.cite for d in defaults})
    return resolved, cites


def hardware_args(cfg: RecipeConfig, batch_size: int) -> dict[str, Any]:
    """TRL/transformers arguments for the device and the effective batch (split over WORLD_SIZE processes)."""
    import torch

    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    micro = max(1, min(cfg.micro_batch_size, batch_size // world or 1))
    accumulation = max(1, batch_size // (micro * world))
    return {
        "use_cpu": not cuda,
        "bf16": cuda and torch.cuda.is_bf16_supported(),
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": accumulation,
    }


def _log_last_step_callback() -> Any:
    from transformers import TrainerCallback

    class LogLastStep(TrainerCallback):
        """Log the loss at the final optimiser step too, so the manifest's final_loss is the last step's."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step >= state.max_steps:
                control.should_log = True
            return control

    return LogLastStep()


def _fingerprint(method: Method, cfg: RecipeConfig, resolved: dict[str, Any], runs: list[DataRun], weights_hash: str) -> str:
    settings = {k: str(v) for k, v in {**dataclasses.asdict(cfg), **resolved}.items() if k not in ("data", "out")}
    payload = {"method": method, "settings": settings, "data": [r.manifest_sha256 for r in runs], "model": weights_hash}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _resumable(work: Path, fingerprint: str) -> list[Path]:
    """Checkpoints an interrupted run with the same fingerprint left in its work dir, oldest first."""
    marker = work / "fingerprint"
    if not marker.is_file() or marker.read_text() != fingerprint:
        return []
    # trainer_state.json is the last file a checkpoint gets: without it the checkpoint was cut short.
    found = [p for p in (work / "trainer").glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit() and (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.removeprefix("checkpoint-")))


def finished_checkpoint(out: Path) -> dict[str, Any] | None:
    """The training manifest of a finished checkpoint at ``out``, or None."""
    path = out / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def run_recipe(cfg: RecipeConfig, method: Method, make_trainer: Callable[[TrainContext], Any], console: Any = None) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.data`` with the trainer ``make_trainer`` builds; returns the training manifest."""
    from judgeforge.console import make_console
    from judgeforge.models import load_tokenizer, resolve_model
    from judgeforge.runs import argv, redact

    console = console or make_console(stderr=True)
    runs = open_data(cfg.data, method)
    base = resolve_model(cfg.model)
    resolved, cites = resolve_defaults(cfg, runs, method)
    fingerprint = _fingerprint(method, cfg, resolved, runs, base.weights_hash)
    out = Path(cfg.out)
    done = finished_checkpoint(out)
    if done is not None:
        if done.get("fingerprint") == fingerprint:
            console.print(f"[green]already trained:[/] {out} (same data, model and settings); delete it to train again")
            return done
        raise UserError(f"--out '{out}' holds a checkpoint trained with other data or settings; choose another --out or delete it")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out '{out}' exists and is not a judgeforge checkpoint; choose another --out")
    work = out.with_name(f".{out.name}.partial")
    checkpoints = _resumable(work, fingerprint)
    main_process = int(os.environ.get("RANK", "0")) == 0  # under accelerate launch, one process owns the files
    if not checkpoints and main_process:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "fingerprint").write_text(fingerprint)
    started, clock = utc_now(), time.perf_counter()

    tokenizer = load_tokenizer(base, trust_remote_code=cfg.trust_remote_code)

    def load_model() -> Any:
        from transformers import AutoModelForCausalLM

        # fp32 master weights everywhere: lr 5e-7 updates vanish in pure bf16; on GPU TRL autocasts to bf16.
        return AutoModelForCausalLM.from_pretrained(base.path, trust_remote_code=cfg.trust_remote_code)

    dataset = training_dataset(runs, method, tokenizer)
    batch = int(resolved["batch_size"])
    args = {
        "output_dir": str(work / "trainer"),
        "learning_rate": resolved["learning_rate"],
        "num_train_epochs": resolved["epochs"],
        "max_steps": cfg.max_steps,
        "seed": cfg.seed,
        "logging_steps": cfg.logging_steps,
        "logging_first_step": True,
        "save_strategy": "steps" if cfg.save_steps else "no",
        **({"save_steps": cfg.save_steps, "save_total_limit": 2} if cfg.save_steps else {}),
        "report_to": "none",
        "gradient_checkpointing": cfg.gradient_checkpointing,
        **hardware_args(cfg, batch),
    }
    ctx = TrainContext(cfg, runs, load_model(), tokenizer, dataset, args, load_model)
    trainer = make_trainer(ctx)
    trainer.add_callback(_log_last_step_callback())
    examples = len(trainer.train_dataset)
    console.print(f"[bold]train {method}[/] {base.name} on {examples:,} examples ({', '.join(r.kind for r in runs)}) → {out}")
    if ctx.stats.get("dropped_too_long"):
        console.print(f"[yellow]dropped[/] {ctx.stats['dropped_too_long']:,} example(s) longer than --max-length tokens (not truncated)")
    if checkpoints:
        console.print(f"[yellow]resuming[/] from {checkpoints[-1].name} of an interrupted run with the same settings")
    result = trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None)
    trainer.model.config.use_cache = True  # training turns the KV cache off; the checkpoint is for generation
    trainer.save_model(str(work))  # every process takes part (ZeRO-3 gathers the weights); the main one writes
    losses = [{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h]
    manifest = _manifest(method, cfg, runs, base, resolved, cites, args, trainer, result, losses)
    manifest.update(
        fingerprint=fingerprint,
        command=redact(argv()),
        started_at=started,
        finished_at=utc_now(),
        seconds=round(time.perf_counter() - clock, 3),
        examples=examples,
        **ctx.stats,
        resumed_from=checkpoints[-1].name if checkpoints else None,
    )
    if not trainer.is_world_process_zero():
        return manifest
    tokenizer.save_pretrained(str(work))
    shutil.rmtree(work / "trainer", ignore_errors=True)
    (work / "fingerprint").unlink()
    write_json(work / MANIFEST, manifest)
    out.parent.mkdir(parents=True, exist_ok=True)
    replace_dir(work, out)
    console.print(f"[green]trained[/] {result.global_step} step(s), mean loss {result.training_loss:.4f} → {out}")
    return manifest


def _manifest(
    method: Method,
    cfg: RecipeConfig,
    runs: list[DataRun],
    base: Any,
    resolved: dict[str, Any],
    cites: list[str],
    args: dict[str, Any],
    trainer: Any,
    result: Any,
    losses: list[dict[str, float]],
) -> dict[str, Any]:
    import torch
    import transformers
    import trl

    hyper = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items() if k not in ("data", "out")}
    hyper.update(resolved)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return {
        "judgeforge_version": __version__,
        "method": method,
        "trainer": type(trainer).__name__,
        "base_model": base.describe(),
        "data": [r.describe() for r in runs],
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
        "device": "cpu" if args["use_cpu"] else torch.cuda.get_device_name(0),
        "hyperparameters": {
            **hyper,
            "per_device_train_batch_size": args["per_device_train_batch_size"],
            "gradient_accumulation_steps": args["gradient_accumulation_steps"],
            "world_size": world,
            "effective_batch_size": args["per_device_train_batch_size"] * args["gradient_accumulation_steps"] * world,
            "bf16": args["bf16"],
        },
        "defaults_from": cites,
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "final_loss": losses[-1]["loss"] if losses else None,
        "losses": losses,
        "log_history": trainer.state.log_history,
    }
