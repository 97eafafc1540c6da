"""SFT recipe: IFT + EFT (M0 → M1), R-PRM analyses, Self-Taught Evaluator judgments, S2R initialisation.

Every kind trains through TRL's ``SFTTrainer`` on its view, and only on the tokens its paper trains on:
conversational ``prompt`` / ``completion`` for IFT, EFT, R-PRM and Self-Taught judgments (the user turn
is context, the loss covers the assistant turn and its end-of-turn token: ``completion_only_loss``);
pre-tokenised ``input_ids`` / ``labels`` for S2R trajectories, whose ``labels`` carry -100 on the prompt
and on the segments the loss mask turns off (TRL keeps given labels as they are). An example longer
than ``--max-length`` is dropped and counted (``dropped_too_long`` in the training manifest), never
truncated: cutting its end would cut the verdict or the final attempt it exists for. Unset learning
rate, epochs and batch come from the paper behind the data's kind.

    judgeforge train sft --data runs/m1/ift --data runs/m1/eft --out checkpoints/m1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from judgeforge.train.common import RecipeConfig, TrainContext, drop_too_long, opt, run_recipe


@dataclass
class SFTRecipe(RecipeConfig):
    max_length: int = opt(1024, "Longest example in tokens (prompt + completion as trained); longer ones are dropped and counted, never truncated.")


def sequence_length(example: dict[str, Any]) -> int:
    """Tokens of one example as ``SFTTrainer`` prepared it (prompt and completion together)."""
    return len(example["input_ids"])


def train_sft(cfg: SFTRecipe, console: Any = None) -> dict[str, Any]:
    """Fine-tune ``cfg.model`` on the SFT view of ``cfg.data``; returns the training manifest."""
    from trl import SFTConfig, SFTTrainer

    def trainer(ctx: TrainContext) -> Any:
        # max_length=None: TRL must not truncate; drop_too_long drops whole examples instead.
        args = SFTConfig(**ctx.args, max_length=None, completion_only_loss=True)
        built = SFTTrainer(model=ctx.model, args=args, train_dataset=ctx.dataset, processing_class=ctx.tokenizer)
        return drop_too_long(ctx, built, cfg.max_length, sequence_length)

    return run_recipe(cfg, "sft", trainer, console)
