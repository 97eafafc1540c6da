"""SFT recipe: IFT + EFT (M0 → M1), R-PRM analyses, Self-Taught Evaluator judgments, S2R initialisation.

Every kind trains through TRL's ``SFTTrainer`` on its view, and only on the tokens its paper trains on:
conversational ``prompt`` / ``completion`` for IFT, EFT, R-PRM and Self-Taught judgments (the user turn
is context, the loss covers the assistant turn and its end-of-turn token: ``completion_only_loss``);
pre-tokenised ``input_ids`` / ``labels`` for S2R trajectories, whose ``labels`` carry -100 on the prompt
and on the segments the loss mask turns off (TRL keeps given labels as they are). An example longer
than ``--max-length`` is dropped and counted (``dropped_too_long`` in the training manifest), never
truncated: cutting its end would cut the verdict or the final attempt it exists for. Unset learning
rate, epochs and batch come from the paper behind the data's kind; any other SFTConfig field passes
through with --trl.<field>=VALUE.

    judgeforge train sft --data runs/m1/ift --data runs/m1/eft --out checkpoints/m1
    judgeforge train sft --data runs/m1/ift --lora-r 16 --merge --trl.lr_scheduler_type=cosine --trl.warmup_steps=0.03 --out checkpoints/m1-lora
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from judgeforge.train.common import RecipeConfig, TrainContext, drop_too_long, opt, run_recipe


@dataclass
class SFTRecipe(RecipeConfig):
    max_length: int = opt(1024, "Longest example in tokens (prompt + completion as trained); longer ones are dropped and counted, never truncated.")


OWNED = {
    "max_length": (None, "judgeforge drops examples longer than --max-length (counted) instead of letting TRL truncate them; use --max-length"),
    "completion_only_loss": (True, "each kind's SFT view says which tokens are targets, as its paper trains them (the completion only)"),
}


def sequence_length(example: dict[str, Any]) -> int:
    """Tokens of one example as ``SFTTrainer`` prepared it (prompt and completion together)."""
    return len(example["input_ids"])


def train_sft(cfg: SFTRecipe, console: Any = None) -> dict[str, Any]:
    """Fine-tune ``cfg.model`` on the SFT view of ``cfg.data``; returns the training manifest."""

    def trainer(ctx: TrainContext) -> Any:
        built = ctx.trainer_cls(
            model=ctx.model,
            args=ctx.args,
            train_dataset=ctx.dataset,
            eval_dataset=ctx.eval_dataset,
            processing_class=ctx.tokenizer,
            peft_config=ctx.peft_config,
        )
        return drop_too_long(ctx, built, cfg.max_length, sequence_length)

    return run_recipe(cfg, "sft", trainer, console, owned=OWNED)
