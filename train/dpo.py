"""DPO recipe: step-wise DPO on step preferences, and R-PRM preference pairs.

``step_prefs`` runs train through :class:`~judgeforge.train.stepwise_dpo.StepwiseDPOTrainer`: the
prompt is the problem plus the steps so far, chosen/rejected are single next steps, and only a final
step ends in EOS (TRL's own DPO would append EOS to every intermediate step and teach the policy to
stop mid-solution). ``rprm_prefs`` runs are conversational pairs for TRL's ``DPOTrainer``. The
reference model is a second copy of the starting weights. Neither paper gives beta; 0.1 is TRL's. A
pair whose prompt plus longer completion exceeds ``--max-length`` is dropped and counted
(``dropped_too_long`` in the training manifest): TRL would cut the completions' ends (an R-PRM verdict,
a final step's EOS) and train on what is left.

    judgeforge train dpo --data runs/demo/step_prefs-curated --model checkpoints/m1 --out checkpoints/m2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from judgeforge.train.common import RecipeConfig, TrainContext, drop_too_long, opt, run_recipe
from judgeforge.train.data import trainer_class


@dataclass
class DPORecipe(RecipeConfig):
    beta: float = opt(0.1, "Strength of the pull towards the reference model (not given by the papers; TRL's default).")
    max_length: int = opt(1024, "Longest prompt + chosen or rejected in tokens; longer pairs are dropped and counted, never truncated.")


def pair_length(example: dict[str, Any]) -> int:
    """Tokens of the longer of a prepared pair's two sequences (prompt + chosen, prompt + rejected)."""
    return len(example["prompt_ids"]) + max(len(example["chosen_ids"]), len(example["rejected_ids"]))


def train_dpo(cfg: DPORecipe, console: Any = None) -> dict[str, Any]:
    """Preference-tune ``cfg.model`` on the DPO view of ``cfg.data``; returns the training manifest."""
    from trl import DPOConfig

    def trainer(ctx: TrainContext) -> Any:
        cls = trainer_class(ctx.runs, "dpo")  # the kind's view names it: StepwiseDPOTrainer for step_prefs
        # max_length=None: TRL must not truncate; drop_too_long drops whole pairs instead.
        args = DPOConfig(**ctx.args, beta=cfg.beta, max_length=None)
        built = cls(model=ctx.model, ref_model=ctx.load_model(), args=args, train_dataset=ctx.dataset, processing_class=ctx.tokenizer)
        return drop_too_long(ctx, built, cfg.max_length, pair_length)

    return run_recipe(cfg, "dpo", trainer, console)
