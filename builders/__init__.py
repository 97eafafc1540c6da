"""Dataset builders, one module per family.

The registry maps a CLI name to ``module:Class`` and imports builders lazily, so importing one builder
(or a schema that shares its step layout) never drags in all the others. Adding a builder is one file
plus one line here.
"""

from __future__ import annotations

import importlib
from typing import Any

from judgeforge.builders.base import Builder

REGISTRY: dict[str, str] = {
    "step-prefs": "judgeforge.builders.step_prefs:StepPrefsBuilder",
    "ift": "judgeforge.builders.ift:IftBuilder",
    "eft": "judgeforge.builders.eft:EftBuilder",
    "s2r-trajectories": "judgeforge.builders.s2r:S2RTrajectoriesBuilder",
    "s2r-rl-prompts": "judgeforge.builders.s2r_prompts:S2RPromptsBuilder",
    "self-taught": "judgeforge.builders.self_taught:SelfTaughtBuilder",
    "step-labels": "judgeforge.builders.step_labels:StepLabelsBuilder",
    "rprm-sft": "judgeforge.builders.rprm:RprmSftBuilder",
    "rprm-prefs": "judgeforge.builders.rprm:RprmPrefsBuilder",
    "rprm-score": "judgeforge.builders.rprm_score:RprmScoreBuilder",
}


def load_builder(name: str) -> type[Builder[Any]]:
    module, _, attr = REGISTRY[name].partition(":")
    builder: type[Builder[Any]] = getattr(importlib.import_module(module), attr)
    return builder
