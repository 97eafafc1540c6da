"""The registry of dataset kinds: one line per kind, ``name -> "module:KIND"``.

Every consumer (curation, review, cards, recipes, the builder registry) finds a kind here, by the name
stamped into its shards' metadata. Declarations are imported on first use, so looking up one kind does
not import the others. Adding a kind is one schema module and one line below.
"""

from __future__ import annotations

import functools
import importlib

from judgeforge.errors import UserError
from judgeforge.schemas.kind import Kind

KINDS: dict[str, str] = {
    "ift": "judgeforge.schemas.ift:KIND",
    "eft": "judgeforge.schemas.eft:KIND",
    "step_prefs": "judgeforge.schemas.step_prefs:KIND",
    "step_labels": "judgeforge.schemas.step_labels:KIND",
    "rprm_sft": "judgeforge.schemas.rprm:SFT_KIND",
    "rprm_prefs": "judgeforge.schemas.rprm:PREFS_KIND",
    "rprm_scores": "judgeforge.schemas.rprm:SCORES_KIND",
    "ste_judgments": "judgeforge.schemas.self_taught:KIND",
    "s2r_trajectories": "judgeforge.schemas.s2r:TRAJECTORIES_KIND",
    "s2r_rl_prompts": "judgeforge.schemas.s2r:RL_PROMPTS_KIND",
}


@functools.cache
def _load(target: str) -> Kind:
    module, _, attr = target.partition(":")
    kind = getattr(importlib.import_module(module), attr)
    if not isinstance(kind, Kind):
        raise TypeError(f"{target} is not a Kind")
    return kind


def get_kind(name: str) -> Kind:
    """The declaration of kind ``name``; a one-line error naming the known kinds otherwise."""
    if name not in KINDS:
        raise UserError(f"unknown kind '{name}' (known kinds: {', '.join(sorted(KINDS))})")
    kind = _load(KINDS[name])
    if kind.name != name:
        raise TypeError(f"registry entry '{name}' points at kind '{kind.name}'")
    return kind


def all_kinds() -> list[Kind]:
    """Every registered kind, in registry order."""
    return [get_kind(name) for name in KINDS]
