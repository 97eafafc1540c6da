"""SFT recipe: IFT + EFT (M0 → M1), R-PRM analyses, Self-Taught Evaluator judgments, S2R initialisation.

Every kind trains through TRL's ``SFTTrainer`` on its view: chat ``messages`` for IFT, EFT, R-PRM and
Self-Taught judgments; pre-tokenised ``input_ids`` / ``labels`` for S2R trajectories, whose ``labels``
carry -100 on the prompt and on the segments the loss mask turns off (TRL keeps given labels as they
are). Unset learning rate, epochs and batch come from the paper behind the data's kind.

    judgeforge train sft --data runs/m1/ift --data runs/m1/eft --out checkpoints/m1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from judgeforge.train.common import RecipeConfig, TrainContext, opt, run_recipe


@dataclass
class SFTRecipe(RecipeConfig):
    max_length: int = opt(1024, "Truncate examples to this many tokens.")


def train_sft(cfg: SFTRecipe, console: Any = None) -> dict[str, Any]:
    """Fine-tune ``cfg.model`` on the SFT view of ``cfg.data``; returns the training manifest."""
    from trl import SFTConfig, SFTTrainer

    def trainer(ctx: TrainContext) -> Any:
        args = SFTConfig(**ctx.args, max_length=cfg.max_length)
        return SFTTrainer(model=ctx.model, args=args, train_dataset=ctx.dataset, processing_class=ctx.tokenizer)

    return run_recipe(cfg, "sft", trainer, console)
