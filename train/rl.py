"""RL recipe: S2R reinforcement learning with RLOO (S2R's own trainer is RLOO-style) or GRPO, one reward variant per run.

The policy samples ``num_generations`` self-verifying completions per ``s2r_rl_prompts`` prompt and is
rewarded by one of the two variants the paper compares (:mod:`judgeforge.train.rewards`; never their
sum): ``--reward outcome`` (is the answer standing at the end right) or ``--reward process`` (are the
self-verifications right about their attempts). ``--trainer rloo`` (the default for s2r_rl_prompts:
TRL's RLOOTrainer, leave-one-out baseline) or ``grpo`` (GRPOTrainer, group-normalised advantages). The
kind's defaults are S2R's: lr 5e-7, KL 0.01 (``beta``), sampling at T = 0.7; any other field of the
trainer's config passes through with --trl.<field>=VALUE (e.g. --trl.num_generations=4
--trl.max_completion_length=1024, --trl.use_vllm=true on a GPU). The effective batch counts completions
and must be a multiple of num_generations.

    judgeforge train rl --data runs/s2r/s2r_rl_prompts --model checkpoints/s2r-sft --reward outcome --out checkpoints/s2r-orl
    judgeforge train rl --data runs/s2r/s2r_rl_prompts --model checkpoints/s2r-sft --reward process --out checkpoints/s2r-prl
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from judgeforge.errors import UserError
from judgeforge.schemas.kind import TRL_GRPO, TRL_RLOO
from judgeforge.train.common import RecipeConfig, TrainContext, opt, run_recipe
from judgeforge.train.rewards import REWARDS, Variant

TRAINERS = {"rloo": TRL_RLOO, "grpo": TRL_GRPO}


@dataclass
class RLRecipe(RecipeConfig):
    trainer: Literal["rloo", "grpo"] | None = opt(None, "TRL trainer: rloo (RLOOTrainer) or grpo (GRPOTrainer) (default: the kind's; rloo for s2r_rl_prompts).")
    reward: Variant = opt("outcome", "Reward variant: outcome (the final answer standing is right) or process (the self-verifications are right).")


OWNED = {"reward_weights": (None, "one reward variant per run: --reward outcome|process (S2R compares the two; it does not add them)")}


def train_rl(cfg: RLRecipe, console: Any = None) -> dict[str, Any]:
    """Train ``cfg.model`` by RL on ``cfg.data`` prompts with one S2R reward variant; returns the training manifest."""

    def trainer(ctx: TrainContext) -> Any:
        per_step = ctx.args.per_device_train_batch_size * ctx.args.gradient_accumulation_steps
        if per_step % ctx.args.num_generations:
            raise UserError(f"the effective batch ({per_step} completions) must be a multiple of num_generations ({ctx.args.num_generations})")
        ctx.tokenizer.padding_side = "left"  # prompts are left-padded for batched generation
        return ctx.trainer_cls(
            model=ctx.model,
            reward_funcs=[REWARDS[cfg.reward]],
            args=ctx.args,
            train_dataset=ctx.dataset,
            eval_dataset=ctx.eval_dataset,
            processing_class=ctx.tokenizer,
            peft_config=ctx.peft_config,
        )

    return run_recipe(cfg, "rl", trainer, console, trainer=TRAINERS[cfg.trainer] if cfg.trainer else None, owned=OWNED)
