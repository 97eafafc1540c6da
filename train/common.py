"""What every recipe shares: the config fields, the papers' defaults, TRL's options, LoRA, and the checkpoint.

A recipe (``sft.py``, ``dpo.py``, ``rl.py``) is a config dataclass that extends :class:`RecipeConfig`
and a function that hands :func:`run_recipe` a factory for its TRL trainer. Everything else lives here,
once: opening the ``--data`` runs, filling unset hyper-parameters from the paper behind the data's kind,
TRL's own config built from judgeforge's values and the user's ``trl:`` fields
(:mod:`judgeforge.train.passthrough`; checked before anything loads), LoRA (:mod:`judgeforge.train.lora`),
an eval split held out by problem, CPU/GPU settings (the same recipe runs on either unchanged), the
effective batch as the papers state it, the atomic checkpoint write (work dir + rename, so a killed run
leaves no half checkpoint; with ``--save-steps`` a re-run resumes from the last intermediate
checkpoint), dropping (and counting) examples longer than ``--max-length`` rather than letting TRL
truncate them (:func:`drop_too_long`), ``training_manifest.json`` (data runs and their manifests'
hashes, base model, library versions, the full effective TRL and peft configs, examples trained on and
dropped, training and eval losses) and the model card (``README.md``). Re-running a finished recipe
with the same settings trains nothing.

Multi-GPU and multi-node training go through ``accelerate launch`` with the configs TRL ships in
``trl/accelerate_configs`` (``zero3.yaml``, ``fsdp2.yaml``, ...): the effective batch is split over
``WORLD_SIZE`` processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import shutil
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import TypeAdapter, ValidationError

from judgeforge import __version__
from judgeforge.errors import UserError
from judgeforge.files import replace_dir, utc_now, write_json
from judgeforge.models import ADAPTER_DIR
from judgeforge.schemas.kind import Method
from judgeforge.schemas.registry import get_kind
from judgeforge.train import lora, passthrough
from judgeforge.train.data import DataRun, HeldOut, hold_out, open_data, trainer_spec, training_dataset

MANIFEST = "training_manifest.json"
MODEL_CARD = "README.md"
TrainerSpec = tuple[str, str, str]  # (module, trainer class, TRL config class), as a kind's View names it


def opt(default: Any, help: str) -> Any:  # noqa: A002 - mirrors click's keyword
    """A config field with its ``--help`` text (the dataclass is the single source of both)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class RecipeConfig:
    """Fields every recipe takes. ``None`` means: the paper's value for the data's kind."""

    data: list[Path] = opt([], "A finished run dir (OUT/<kind>, built or curated) to train on; repeat for several.")
    out: Path = opt(Path("checkpoints/model"), "Directory of the trained checkpoint, its training_manifest.json and model card (README.md).")
    model: str = opt("smollm2", "Model to train: 'smollm2' (embedded SmolLM2-135M-Instruct), a local checkpoint or a Hub id.")
    learning_rate: float | None = opt(None, "Peak learning rate (default: the paper's value for the data's kind).")
    epochs: float | None = opt(None, "Passes over the data (default: the paper's value for the data's kind).")
    batch_size: int | None = opt(None, "Effective batch in examples, as the papers state it (default: the paper's value).")
    micro_batch_size: int = opt(4, "Examples per device per forward pass; gradients accumulate up to --batch-size.")
    max_steps: int = opt(-1, "Stop after this many optimiser steps (-1: run the epochs).")
    seed: int = opt(0, "Training seed (data order, dropout).")
    device: Literal["auto", "cpu", "cuda"] = opt("auto", "Where to train: cuda if available (bf16 autocast), else cpu (fp32).")
    logging_steps: int = opt(10, "Log the loss (and the eval loss, with an eval split) every N optimiser steps; the first and last steps always.")
    save_steps: int = opt(0, "Keep a resumable checkpoint every N optimiser steps (0: none); a killed run re-run with the same command resumes from the last.")
    gradient_checkpointing: bool = opt(True, "Recompute activations in the backward pass: less memory, ~30% more compute (TRL's default).")
    trust_remote_code: bool = opt(False, "Allow custom model code from the checkpoint (off by default).")
    eval_fraction: float | None = opt(
        None, "Hold out this share of the --data problems (by source_id: the same ones every time, never in both splits) and log their eval loss."
    )
    eval_data: list[Path] = opt([], "Evaluate on these finished run dirs instead (kinds --data trains on); repeat for several.")
    lora_r: int | None = opt(None, "Train a LoRA adapter of this rank (peft) instead of every weight; it is saved in OUT/adapter.")
    lora_alpha: int | None = opt(None, "LoRA scaling alpha (default: twice --lora-r).")
    lora_dropout: float = opt(0.05, "Dropout on the LoRA path.")
    lora_target_modules: list[str] = opt(
        [], "A module LoRA adapts (e.g. q_proj); repeat; 'all-linear' for every linear layer (default: peft's per-architecture choice)."
    )
    qlora: bool = opt(False, "QLoRA: load the base in 4-bit NF4 with bitsandbytes (CUDA GPU only) and train the LoRA adapter on it.")
    merge: bool = opt(False, "With LoRA: also write the base with the adapter merged in at OUT, a plain checkpoint builders, eval and loop load.")
    trl: dict[str, Any] = opt({}, "Fields of the trainer's TRL config (--trl.<field>=VALUE, or trl: in a YAML recipe).")
    peft: dict[str, Any] = opt({}, "Fields of peft's LoraConfig (--peft.<field>=VALUE, or peft: in a YAML recipe).")


PASSTHROUGH = ("trl", "peft")
"""Fields that are not click options: the blocks :mod:`judgeforge.train.passthrough` reads."""

# judgeforge options that set a field of the trainer's TRL config: one setting under either name.
TRL_OPTIONS = {
    "learning_rate": "learning_rate",
    "epochs": "num_train_epochs",
    "micro_batch_size": "per_device_train_batch_size",
    "max_steps": "max_steps",
    "seed": "seed",
    "logging_steps": "logging_steps",
    "save_steps": "save_steps",
    "gradient_checkpointing": "gradient_checkpointing",
    "trust_remote_code": "trust_remote_code",
}
OWNED = {"output_dir": (None, "the checkpoint goes to --out (TRL's output_dir is judgeforge's work dir inside it)")}
"""TRL fields every recipe sets itself: field -> (value, what to use instead). A recipe adds its own."""

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
    """What a recipe's trainer factory gets: the data and model loaded, TRL's config built, the LoRA config."""

    config: RecipeConfig
    runs: list[DataRun]
    model: Any
    tokenizer: Any
    dataset: Any
    eval_dataset: Any
    args: Any  # the trainer's TRL config (SFTConfig, DPOConfig, RLOOConfig, GRPOConfig), fully built
    trainer_cls: Any
    peft_config: Any  # peft.LoraConfig, or None for full training
    load_model: Callable[[], Any]
    stats: dict[str, int] = field(default_factory=dict)  # counters the recipe reports; they go into the manifest


def drop_too_long(ctx: TrainContext, trainer: Any, max_length: int, length: Callable[[dict[str, Any]], int]) -> Any:
    """``trainer`` with the prepared examples longer than ``max_length`` tokens dropped, counted in ``ctx.stats``.

    TRL truncates a long example from the end, which silently cuts the very tokens it exists for (an
    R-PRM verdict, S2R's final correct attempt, a chosen step's EOS). So a recipe hands TRL
    ``max_length=None`` and calls this on the datasets the trainer prepared (training and eval):
    ``length`` measures an example exactly as the trainer tokenised it. When nothing is left it fails
    naming ``--max-length``.
    """
    for name, counter in (("train_dataset", "dropped_too_long"), ("eval_dataset", "eval_dropped_too_long")):
        prepared = getattr(trainer, name)
        if prepared is None:
            continue
        kept = prepared.filter(lambda example: length(example) <= max_length, desc=f"Dropping examples longer than {max_length} tokens")
        if len(kept) == 0:
            what = "training" if name == "train_dataset" else "eval"
            raise UserError(f"every one of the {len(prepared):,} {what} examples is longer than --max-length {max_length} tokens: raise --max-length")
        setattr(trainer, name, kept)
        ctx.stats[counter] = len(prepared) - len(kept)
    return trainer


def resolve_defaults(cfg: RecipeConfig, runs: list[DataRun], method: Method, user_set: Collection[str]) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """learning_rate / epochs / batch_size and the paper's TRL fields: the user's value, else the one paper value all data kinds agree on."""
    defaults = [get_kind(kind).train_defaults[method] for kind in sorted({r.kind for r in runs})]
    kinds = ", ".join(sorted({r.kind for r in runs}))
    resolved = {}
    for name in ("learning_rate", "epochs", "batch_size"):
        given = getattr(cfg, name)
        if given is not None:
            resolved[name] = given
            continue
        values = {getattr(d, name) for d in defaults}
        if len(values) > 1:
            raise UserError(f"the papers behind {kinds} give different {name} values ({sorted(values)}); give --{name.replace('_', '-')}")
        resolved[name] = values.pop()
    resolved = {"learning_rate": float(resolved["learning_rate"]), "epochs": float(resolved["epochs"]), "batch_size": int(resolved["batch_size"])}
    paper_trl: dict[str, Any] = {}
    for name in sorted({k for d in defaults for k in d.trl} - set(user_set)):
        found = {json.dumps(d.trl.get(name)) for d in defaults}
        if len(found) > 1:
            raise UserError(f"the papers behind {kinds} give different {name} values ({', '.join(sorted(found))}); set --trl.{name}")
        paper_trl[name] = json.loads(found.pop())
    return resolved, sorted({d.cite for d in defaults}), paper_trl


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


def fold(cfg: ConfigT, block: dict[str, Any], options: Mapping[str, str], where: str) -> ConfigT:
    """``cfg`` with the ``block`` fields that a judgeforge option also sets moved into that option (removed from ``block``).

    Either spelling of a setting works; both with different values is one line.
    """
    defaults = {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default for f in dataclasses.fields(cfg)}
    updates = {}
    for option, name in options.items():
        if name not in block:
            continue
        value, current = block.pop(name), getattr(cfg, option)
        if current != defaults[option] and current != value:
            raise UserError(f"--{option.replace('_', '-')} {current} and {where}.{name}={value} set the same thing; give one")
        updates[option] = value
    if where == "trl" and "gradient_accumulation_steps" in block:
        # The effective batch is judgeforge's --batch-size: accumulation given in TRL's terms sets it.
        implied = cfg.micro_batch_size * block.pop("gradient_accumulation_steps") * int(os.environ.get("WORLD_SIZE", "1"))
        if cfg.batch_size is not None and cfg.batch_size != implied:
            raise UserError(f"--batch-size {cfg.batch_size} and trl.gradient_accumulation_steps (an effective batch of {implied}) disagree; give one")
        updates["batch_size"] = implied
    return dataclasses.replace(cfg, **updates)


def _check_trackers(report_to: Any) -> None:
    """Every tracker in ``report_to`` exists and its package is installed (one line otherwise), before anything loads."""
    from transformers.integrations import get_reporting_integration_callbacks

    try:
        for callback in get_reporting_integration_callbacks(report_to):
            callback()
    except (ValueError, RuntimeError, ImportError) as exc:
        raise UserError(f"trl.report_to={report_to}: {str(exc).strip().splitlines()[0]}") from exc


def _log_last_step_callback(evaluate: bool) -> Any:
    from transformers import TrainerCallback

    class LogLastStep(TrainerCallback):
        """Log (and evaluate) at the final optimiser step too, so the manifest's final losses are the last step's."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step >= state.max_steps:
                control.should_log = True
                control.should_evaluate = control.should_evaluate or evaluate
            return control

    return LogLastStep()


@dataclass(frozen=True)
class _Plan:
    """Everything decided before a model loads: the data, TRL's config, LoRA, the defaults and their sources."""

    cfg: RecipeConfig
    runs: list[DataRun]
    eval_runs: list[DataRun]
    held_out: HeldOut | None
    spec: TrainerSpec
    trl_config: Any
    user_trl: dict[str, Any]
    peft_config: Any
    resolved: dict[str, Any]
    cites: list[str]

    def fingerprint(self, method: Method, weights_hash: str) -> str:
        """What makes two trainings the same: settings, the effective TRL and peft configs, the data's and the base model's hashes."""
        settings = {k: str(v) for k, v in {**dataclasses.asdict(self.cfg), **self.resolved}.items() if k not in ("data", "out", "eval_data", *PASSTHROUGH)}
        payload = {
            "method": method,
            "trainer": list(self.spec),
            "settings": settings,
            "trl": passthrough.effective(self.trl_config),  # effective: a field set to TRL's default is the same training
            "peft": passthrough.effective(self.peft_config) if self.peft_config is not None else None,
            "data": [r.manifest_sha256 for r in self.runs],
            "eval_data": [r.manifest_sha256 for r in self.eval_runs],
            "model": weights_hash,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _plan(cfg: RecipeConfig, method: Method, work: Path, trainer: TrainerSpec | None, owned: Mapping[str, tuple[Any, str]]) -> _Plan:
    """Everything decided before a model loads, each problem a one-line error: data, TRL's config, LoRA, defaults."""
    if cfg.eval_fraction is not None and not 0 < cfg.eval_fraction < 1:
        raise UserError(f"--eval-fraction {cfg.eval_fraction}: give a share between 0 and 1")
    if cfg.eval_fraction is not None and cfg.eval_data:
        raise UserError("--eval-fraction and --eval-data both give an eval split; give one")
    both = open_data([*cfg.data, *cfg.eval_data], method)
    runs, eval_runs = both[: len(cfg.data)], both[len(cfg.data) :]
    spec = trainer or trainer_spec(both, method)
    config_cls = getattr(importlib.import_module("trl"), spec[2])
    owned = {**OWNED, **owned}
    user_trl = passthrough.check(config_cls, cfg.trl, "trl")
    passthrough.refuse(user_trl, {k: why for k, (_, why) in owned.items()}, "trl")
    fields = {f.name for f in dataclasses.fields(config_cls)}
    cfg = fold(cfg, user_trl, {k: v for k, v in TRL_OPTIONS.items() if v in fields}, "trl")
    peft_config = _peft_config(cfg)
    if peft_config is not None:
        cfg = dataclasses.replace(cfg, lora_r=peft_config.r, lora_alpha=peft_config.lora_alpha, lora_dropout=peft_config.lora_dropout)
    resolved, cites, paper_trl = resolve_defaults(cfg, runs, method, user_trl)
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
        **({"trust_remote_code": cfg.trust_remote_code} if "trust_remote_code" in fields else {}),
        **hardware_args(cfg, batch),
    }
    held_out = hold_out(runs, cfg.eval_fraction) if cfg.eval_fraction is not None else None
    if held_out is not None or eval_runs:
        args |= {"eval_strategy": "steps", "per_device_eval_batch_size": args["per_device_train_batch_size"]}
    args |= {k: v for k, v in paper_trl.items() if k in fields}
    args |= {k: v for k, (v, _) in owned.items() if k in fields and k != "output_dir"}
    trl_config = passthrough.build(config_cls, {**args, **user_trl})
    _check_trackers(trl_config.report_to)
    return _Plan(cfg, runs, eval_runs, held_out, spec, trl_config, user_trl, peft_config, resolved, cites)


def _peft_config(cfg: RecipeConfig) -> Any:
    """peft's LoraConfig for the recipe (None: full training); the peft block is checked before anything loads."""
    if cfg.lora_r is None and not cfg.peft and not (cfg.qlora or cfg.merge or cfg.lora_alpha is not None or cfg.lora_target_modules):
        return None
    try:
        from peft import LoraConfig
    except ImportError as exc:
        raise UserError("LoRA needs peft: pip install 'judgeforge[peft]'") from exc
    block = passthrough.check(LoraConfig, cfg.peft, "peft")
    passthrough.refuse(block, {"task_type": "judgeforge trains causal LMs (CAUSAL_LM)"}, "peft")
    if "target_modules" in block and cfg.lora_target_modules:
        raise UserError("--lora-target-modules and peft.target_modules set the same thing; give one")
    cfg = fold(cfg, block, {k: v for k, v in lora.LORA_OPTIONS.items() if v != "target_modules"}, "peft")
    settings = lora.lora_settings(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules, block, cfg.qlora, cfg.merge)
    return None if settings is None else passthrough.build(LoraConfig, settings)


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


def run_recipe(
    cfg: RecipeConfig,
    method: Method,
    make_trainer: Callable[[TrainContext], Any],
    console: Any = None,
    *,
    trainer: TrainerSpec | None = None,
    owned: Mapping[str, tuple[Any, str]] | None = None,
) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.data`` with the trainer ``make_trainer`` builds; returns the training manifest.

    ``trainer`` overrides the trainer the data's kind names (RL's ``--trainer``); ``owned`` are the TRL
    fields the recipe sets itself (field -> (value, what to use instead)), refused in ``trl:``.
    """
    from judgeforge.console import make_console
    from judgeforge.models import resolve_model
    from judgeforge.runs import argv, redact

    console = console or make_console(stderr=True)
    out = Path(cfg.out)
    work = out.with_name(f".{out.name}.partial")
    plan = _plan(cfg, method, work, trainer, owned or {})
    cfg, base = plan.cfg, resolve_model(cfg.model)
    fingerprint = plan.fingerprint(method, base.weights_hash)
    done = finished_checkpoint(out)
    if done is not None:
        if done.get("fingerprint") == fingerprint:
            console.print(f"[green]already trained:[/] {out} (same data, model and settings); delete it to train again")
            return done
        raise UserError(f"--out '{out}' holds a checkpoint trained with other data or settings; choose another --out or delete it")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out '{out}' exists and is not a judgeforge checkpoint; choose another --out")
    checkpoints = _resumable(work, fingerprint)
    main_process = int(os.environ.get("RANK", "0")) == 0  # under accelerate launch, one process owns the files
    fresh = not checkpoints and main_process
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "fingerprint").write_text(fingerprint)
    started, clock = utc_now(), time.perf_counter()
    try:
        ctx, built = _setup(plan, method, base, make_trainer)
    except BaseException:
        if fresh:  # nothing trained yet: a refused setup leaves no work dir behind
            shutil.rmtree(work, ignore_errors=True)
        raise
    eval_dataset = ctx.eval_dataset
    examples = len(built.train_dataset)
    how = f"LoRA r={plan.peft_config.r}" if plan.peft_config is not None else "full"
    console.print(f"[bold]train {method}[/] ({plan.spec[1]}, {how}) {base.name} on {examples:,} examples ({', '.join(r.kind for r in plan.runs)}) → {out}")
    if ctx.stats.get("dropped_too_long"):
        console.print(f"[yellow]dropped[/] {ctx.stats['dropped_too_long']:,} example(s) longer than --max-length tokens (not truncated)")
    if checkpoints:
        console.print(f"[yellow]resuming[/] from {checkpoints[-1].name} of an interrupted run with the same settings")
    result = built.train(resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None)
    built.model.config.use_cache = True  # training turns the KV cache off; the checkpoint is for generation
    # Every process takes part in saving (ZeRO-3 gathers the weights); the main one writes. LoRA saves the adapter.
    built.save_model(str(work / ADAPTER_DIR if plan.peft_config is not None else work))
    manifest = _manifest(method, plan, base, built, result, eval_dataset)
    manifest.update(
        fingerprint=fingerprint,
        command=redact(argv()),
        started_at=started,
        finished_at=utc_now(),
        seconds=round(time.perf_counter() - clock, 3),
        examples=examples,
        eval_examples=None if built.eval_dataset is None else len(built.eval_dataset),
        **ctx.stats,
        resumed_from=checkpoints[-1].name if checkpoints else None,
    )
    if not built.is_world_process_zero():
        return manifest
    ctx.tokenizer.save_pretrained(str(work))
    if (work / "trainer" / "runs").is_dir():  # TensorBoard's event files (report_to tensorboard) outlive the work dir
        shutil.move(str(work / "trainer" / "runs"), str(work / "runs"))
    shutil.rmtree(work / "trainer", ignore_errors=True)
    if plan.peft_config is not None and cfg.merge:
        lora.merge(base, work / ADAPTER_DIR, work, cfg.trust_remote_code)
    (work / "fingerprint").unlink()
    write_json(work / MANIFEST, manifest)
    from judgeforge.train.model_card import render

    (work / MODEL_CARD).write_text(render(manifest, out.name))
    out.parent.mkdir(parents=True, exist_ok=True)
    replace_dir(work, out)
    final_eval = f", final eval loss {manifest['final_eval_loss']:.4f}" if manifest["final_eval_loss"] is not None else ""
    console.print(f"[green]trained[/] {result.global_step} step(s), mean loss {result.training_loss:.4f}{final_eval} → {out}")
    return manifest


def _setup(plan: _Plan, method: Method, base: Any, make_trainer: Callable[[TrainContext], Any]) -> tuple[TrainContext, Any]:
    """Tokenizer, datasets (and the eval split), model (LoRA targets checked) and the recipe's trainer; nothing trained yet."""
    from judgeforge.models import load_tokenizer

    cfg = plan.cfg
    tokenizer = load_tokenizer(base, trust_remote_code=cfg.trust_remote_code)

    def load_model() -> Any:
        from transformers import AutoModelForCausalLM

        # fp32 master weights everywhere: lr 5e-7 updates vanish in pure bf16; on GPU TRL autocasts to bf16.
        return AutoModelForCausalLM.from_pretrained(base.path, trust_remote_code=cfg.trust_remote_code, quantization_config=lora.quantization(cfg.qlora))

    held = plan.held_out
    dataset = training_dataset(plan.runs, method, tokenizer, keep=(lambda sid: sid not in held.source_ids) if held else None)
    if held is not None:
        eval_dataset = training_dataset(plan.runs, method, tokenizer, keep=lambda sid: sid in held.source_ids, what="the eval split (--eval-fraction)")
    else:
        eval_dataset = training_dataset(plan.eval_runs, method, tokenizer, what="--eval-data") if plan.eval_runs else None
    model = load_model()
    if plan.peft_config is not None:
        lora.check_targets(model, plan.peft_config, cfg.model)
    trainer_cls = getattr(importlib.import_module(plan.spec[0]), plan.spec[1])
    ctx = TrainContext(cfg, plan.runs, model, tokenizer, dataset, eval_dataset, plan.trl_config, trainer_cls, plan.peft_config, load_model)
    built = make_trainer(ctx)
    built.add_callback(_log_last_step_callback(eval_dataset is not None))
    return ctx, built


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in ("trl", "transformers", "torch", "peft", "accelerate", "datasets"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _manifest(method: Method, plan: _Plan, base: Any, trainer: Any, result: Any, eval_dataset: Any) -> dict[str, Any]:
    import torch

    cfg, args = plan.cfg, plan.trl_config
    hyper = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items() if k not in ("data", "out", "eval_data", *PASSTHROUGH)}
    hyper.update(plan.resolved)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    history = trainer.state.log_history
    losses = [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h]
    eval_losses = [{"step": h["step"], "eval_loss": h["eval_loss"]} for h in history if "eval_loss" in h]
    if plan.held_out is not None:
        held = plan.held_out.describe()
        eval_split = {**held, "how": f"{held['problems']} of {held['of']} problems held out of --data by source_id (--eval-fraction {held['fraction']})"}
    elif plan.eval_runs:
        eval_split = {"data": [r.describe() for r in plan.eval_runs], "how": "--eval-data " + " ".join(str(r.path) for r in plan.eval_runs)}
    else:
        eval_split = None
    if eval_split is not None:
        eval_split["examples"] = len(eval_dataset)
    peft = plan.peft_config
    reference = getattr(trainer, "ref_model", None)
    return {
        "judgeforge_version": __version__,
        "method": method,
        "trainer": type(trainer).__name__,
        "base_model": base.describe(),
        "data": [r.describe() for r in plan.runs],
        "eval_split": eval_split,
        "versions": _versions(),
        "device": "cpu" if args.use_cpu else torch.cuda.get_device_name(0),
        "hyperparameters": {
            **hyper,
            "learning_rate": args.learning_rate,
            "epochs": args.num_train_epochs,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "world_size": world,
            "effective_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * world,
            "bf16": args.bf16,
        },
        "defaults_from": plan.cites,
        "trl_config": passthrough.effective(args),
        "trl_set": passthrough.effective_values(plan.user_trl),
        "peft_config": passthrough.effective(peft) if peft is not None else None,
        "merged": bool(peft is not None and cfg.merge),
        "reference_model": (
            None
            if not hasattr(trainer, "ref_model")
            else "a separate copy of the starting weights"
            if reference is not None
            else "the trained model with its LoRA adapter disabled (no second copy)"
            if peft is not None
            else "none"
        ),
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "final_loss": losses[-1]["loss"] if losses else None,
        "losses": losses,
        "eval_losses": eval_losses,
        "final_eval_loss": eval_losses[-1]["eval_loss"] if eval_losses else None,
        "log_history": history,
    }
