"""LoRA and QLoRA through peft: the adapter config, the checks made before training, and the merged model.

A recipe trains a LoRA adapter instead of every weight when ``--lora-r`` is given (or ``r`` in a
``peft:`` block); any other field of peft's ``LoraConfig`` passes through ``--peft.<field>=VALUE``. The
trainer gets the ``LoraConfig`` (TRL wraps the model), so DPO's reference is the same model with the
adapter disabled — no second copy of the weights. ``--qlora`` loads the base in 4-bit NF4 with
bitsandbytes, which needs a CUDA GPU: anywhere else it fails with one line before anything loads.

The checkpoint keeps the adapter in ``OUT/adapter/``; ``--merge`` also writes the base with the adapter
merged in at ``OUT`` itself (reloaded unquantised in the base's own dtype, so a QLoRA adapter merges
into full-precision weights), a plain checkpoint that builders, ``eval`` and ``loop`` load like any
other. A bare adapter given as ``--model`` is refused with a line saying to use ``--merge``
(:func:`judgeforge.models.resolve_model`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from judgeforge.errors import UserError
from judgeforge.models import ModelRef

# judgeforge's LoRA options and the LoraConfig fields they set (either spelling, never both).
LORA_OPTIONS = {"lora_r": "r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout", "lora_target_modules": "target_modules"}


def lora_settings(
    r: int | None, alpha: int | None, dropout: float, targets: list[str], peft: dict[str, Any], qlora: bool, merge: bool
) -> dict[str, Any] | None:
    """The LoraConfig fields of a recipe (None: full training), or one line when the options contradict each other."""
    if r is None:
        given = [
            flag for flag, on in (("--qlora", qlora), ("--merge", merge), ("--lora-alpha", alpha is not None), ("--lora-target-modules", bool(targets))) if on
        ]
        given += [f"peft.{name}" for name in peft]
        if given:
            raise UserError(f"{', '.join(given)} configure a LoRA adapter, but LoRA is off: give --lora-r (the adapter's rank) too")
        return None
    if qlora:
        check_qlora()
    settings: dict[str, Any] = {"task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha if alpha is not None else 2 * r, "lora_dropout": dropout}
    if targets:
        settings["target_modules"] = targets[0] if targets == ["all-linear"] else list(targets)
    return {**settings, **peft}


def check_qlora() -> None:
    """QLoRA needs bitsandbytes and a CUDA GPU; say which is missing, in one line."""
    import torch

    missing = [
        what
        for what, ok in (
            ("bitsandbytes (pip install bitsandbytes)", importlib.util.find_spec("bitsandbytes") is not None),
            ("a CUDA GPU", torch.cuda.is_available()),
        )
        if not ok
    ]
    if missing:
        raise UserError(
            f"--qlora loads the base model in 4-bit with bitsandbytes on a CUDA GPU; this machine lacks {' and '.join(missing)} (train LoRA without --qlora)"
        )


def quantization(qlora: bool) -> Any:
    """The 4-bit NF4 loading config of QLoRA (bf16 compute, double quantisation), or None."""
    if not qlora:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True)


def check_targets(model: Any, config: Any, model_name: str) -> None:
    """One line naming a ``target_modules`` entry that matches no module of ``model`` (before the trainer wraps it)."""
    targets = config.target_modules
    if not targets or isinstance(targets, str):  # peft's per-architecture default, "all-linear" or a regex
        return
    names = [name for name, _ in model.named_modules()]
    missing = sorted(t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names))
    if missing:
        import torch

        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise UserError(f"--lora-target-modules: model '{model_name}' has no module named {', '.join(missing)} (its linear layers: {', '.join(linear)})")


def merge(base: ModelRef, adapter: Path, out: Path, trust_remote_code: bool) -> None:
    """Write ``base`` with the adapter at ``adapter`` merged in, as a plain checkpoint at ``out``."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base.path, dtype="auto", trust_remote_code=trust_remote_code)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.config.use_cache = True
    merged.save_pretrained(str(out))
