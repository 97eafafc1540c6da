"""GRPO recipe: S2R reinforcement learning with outcome- and process-level rewards.

The policy samples ``num_generations`` self-verifying completions per ``s2r_rl_prompts`` prompt; TRL
adds the weighted rewards of :mod:`judgeforge.train.rewards` (outcome: is the last attempt right;
process: are the self-verifications right about their attempts). ``--process-weight 0`` is the
outcome-level variant. The paper's repo uses an RLOO-style trainer with KL 0.01; here GRPO with the
same KL coefficient (``--beta``). ``--use-vllm`` generates with vLLM on a GPU (TRL's colocate mode).

    judgeforge train grpo --data runs/s2r/s2r_rl_prompts --model checkpoints/s2r-sft --out checkpoints/s2r-rl
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from judgeforge.errors import UserError
from judgeforge.train.common import RecipeConfig, TrainContext, opt, run_recipe


@dataclass
class GRPORecipe(RecipeConfig):
    num_generations: int = opt(4, "Completions sampled per prompt (at least 2; the effective batch must be a multiple).")
    max_completion_length: int = opt(512, "Longest completion sampled, in tokens.")
    temperature: float = opt(0.7, "Sampling temperature of the completions (S2R samples at 0.7).")
    beta: float = opt(0.01, "KL coefficient towards the reference model (S2R: 0.01).")
    outcome_weight: float = opt(1.0, "Weight of the outcome-level reward (final answer right).")
    process_weight: float = opt(1.0, "Weight of the process-level reward (self-verifications right); 0 for outcome-only.")
    use_vllm: bool = opt(False, "Generate with vLLM (GPU; needs the vllm extra).")


def train_grpo(cfg: GRPORecipe, console: Any = None) -> dict[str, Any]:
    """Train ``cfg.model`` with GRPO on ``cfg.data`` prompts and the S2R rewards; returns the training manifest."""
    from trl import GRPOConfig, GRPOTrainer

    from judgeforge.train.rewards import reward_setup

    if cfg.num_generations < 2:
        raise UserError("--num-generations must be at least 2 (GRPO compares completions of one prompt)")
    funcs, weights = reward_setup(cfg.outcome_weight, cfg.process_weight)

    def trainer(ctx: TrainContext) -> Any:
        per_step = ctx.args["per_device_train_batch_size"] * ctx.args["gradient_accumulation_steps"]
        if per_step % cfg.num_generations:
            raise UserError(f"the effective batch ({per_step}) must be a multiple of --num-generations ({cfg.num_generations})")
        args = GRPOConfig(
            **ctx.args,
            num_generations=cfg.num_generations,
            max_completion_length=cfg.max_completion_length,
            temperature=cfg.temperature,
            beta=cfg.beta,
            reward_weights=weights,
            use_vllm=cfg.use_vllm,
        )
        ctx.tokenizer.padding_side = "left"  # prompts are left-padded for batched generation
        return GRPOTrainer(
            model=ctx.model,
            reward_funcs=funcs,  # type: ignore[arg-type]
            args=args,
            train_dataset=ctx.dataset,
            processing_class=ctx.tokenizer,
        )

    return run_recipe(cfg, "grpo", trainer, console)
