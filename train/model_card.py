"""The model card (``README.md``) a recipe writes into its checkpoint dir, from the training manifest.

It says what the model is, in the order a reader asks: the base model and the method (trainer, LoRA or
full), the data (each run's kind, rows and run id; the held-out eval split), the settings that were
not TRL's defaults, the training and eval losses per logged step, and the command that made it. The
YAML front matter is the Hub's model-card metadata. Everything comes from ``training_manifest.json``,
which stays the full record (the effective TRL and peft configs, library versions, hashes).
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render(manifest: dict[str, Any], name: str) -> str:
    """The card's markdown for the checkpoint ``name`` trained as ``manifest`` records."""
    base, peft = manifest["base_model"], manifest.get("peft_config")
    front = {
        "library_name": "peft" if peft and not manifest.get("merged") else "transformers",
        "tags": ["judgeforge", "trl", manifest["method"], manifest["trainer"], *(["lora"] if peft else [])],
    }
    if base["model_id"].count("/") == 1 and not base["model_id"].startswith(("/", ".")):
        front["base_model"] = base["model_id"]
    hyper = manifest["hyperparameters"]
    if peft:
        targets = peft["target_modules"]
        on = ", ".join(sorted({t.rsplit(".", 1)[-1] for t in targets})) if isinstance(targets, list) else targets or "peft's defaults"
        how = f"a LoRA adapter (r {peft['r']}, alpha {peft['lora_alpha']}, on {on}) in `adapter/`"
        how += ", merged into the base at the top level" if manifest.get("merged") else "; no merged model (train with --merge for one)"
    else:
        how = "every weight (full fine-tuning)"
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {name}",
        "",
        f"`{base['name']}` (weights `{base['weights_hash'][:12]}`) trained with `judgeforge train {manifest['method']}` "
        f"({manifest['trainer']}, TRL {manifest['versions']['trl']}): {how}. {manifest['steps']} optimiser steps on "
        f"{manifest['examples']:,} examples, learning rate {hyper['learning_rate']:g}, effective batch {hyper['effective_batch_size']}, "
        f"on {manifest['device']}.",
        "",
        "## Data",
        "",
        "| run | kind | rows | run id |",
        "|---|---|---|---|",
        *(f"| `{d['path']}` | {d['kind']} | {d['rows']:,} | `{d['run_id']}` |" for d in manifest["data"]),
        "",
    ]
    split = manifest.get("eval_split")
    if split:
        lines += [f"Eval split: {split['how']}; {split['examples']:,} examples.", ""]
    if manifest.get("defaults_from"):
        lines += ["Defaults from: " + "; ".join(manifest["defaults_from"]) + ".", ""]
    if manifest.get("trl_set"):
        lines += ["Set through `trl:` / `--trl.*`: " + ", ".join(f"`{k}={v}`" for k, v in manifest["trl_set"].items()) + ".", ""]
    evals = {e["step"]: e["eval_loss"] for e in manifest.get("eval_losses", [])}
    steps = sorted({r["step"] for r in manifest["losses"]} | set(evals))
    train = {r["step"]: r["loss"] for r in manifest["losses"]}
    lines += ["## Losses", "", "| step | train loss | eval loss |", "|---|---|---|"]
    lines += [f"| {s} | {_fmt(train.get(s, '-'))} | {_fmt(evals.get(s, '-'))} |" for s in steps]
    lines += ["", f"Mean training loss {manifest['train_loss']:.4f}; final eval loss {_fmt(manifest.get('final_eval_loss') or '-')}.", ""]
    lines += ["## Reproduce", "", "```bash", shlex.join(manifest["command"]), "```", ""]
    lines += ["`training_manifest.json` holds the full record: the effective TRL and peft configs, library versions and data hashes.", ""]
    return "\n".join(lines)
