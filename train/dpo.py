"""DPO recipe: step-wise DPO on step preferences, and R-PRM preference pairs.

``step_prefs`` runs train through :class:`~judgeforge.train.stepwise_dpo.StepwiseDPOTrainer`: the
prompt is the problem plus the steps so far, chosen/rejected are single next steps, and only a final
step ends in EOS (TRL's own DPO would append EOS to every intermediate step and teach the policy to
stop mid-solution). ``rprm_prefs`` runs are conversational pairs for TRL's ``DPOTrainer``. The
reference model is a second copy of the starting weights. Neither paper gives beta; 0.1 is TRL's.

    judgeforge train dpo --data runs/demo/step_prefs-curated --model checkpoints/m1 --out checkpoints/m2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from judgeforge.train.common import RecipeConfig, TrainContext, opt, run_recipe


@dataclass
class DPORecipe(RecipeConfig):
    beta: float = opt(0.1, "Strength of the pull towards the reference model (not given by the papers; TRL's default).")
    max_length: int = opt(1024, "Truncate prompt + completion to this many tokens.")


def train_dpo(cfg: DPORecipe, console: Any = None) -> dict[str, Any]:
    """Preference-tune ``cfg.model`` on the DPO view of ``cfg.data``; returns the training manifest."""
    from trl import DPOConfig, DPOTrainer

    from judgeforge.train.stepwise_dpo import StepwiseDPOTrainer

    def trainer(ctx: TrainContext) -> Any:
        cls = StepwiseDPOTrainer if ctx.runs[0].kind == "step_prefs" else DPOTrainer
        args = DPOConfig(**ctx.args, beta=cfg.beta, max_length=cfg.max_length)
        return cls(model=ctx.model, ref_model=ctx.load_model(), args=args, train_dataset=ctx.dataset, processing_class=ctx.tokenizer)

    return run_recipe(cfg, "dpo", trainer, console)
