"""DPO recipe: step-wise DPO on step preferences, R-PRM preference pairs, and DPO + NLL on Self-Taught judgments.

``step_prefs`` runs train through :class:`~judgeforge.train.stepwise_dpo.StepwiseDPOTrainer`: the
prompt is the problem plus the steps so far, chosen/rejected are single next steps, and only a final
step ends in EOS (TRL's own DPO would append EOS to every intermediate step and teach the policy to
stop mid-solution). ``rprm_prefs`` and ``ste_judgments`` runs are conversational pairs for TRL's
``DPOTrainer``; Self-Taught judgments train as the released Llama-3.1 judge was trained, DPO β 0.1 plus
an NLL term on the chosen judgment (TRL 1.16 has no ``rpo_alpha``: it is ``loss_type: [sigmoid, sft]``
with ``loss_weights``, the kind's default). The reference model is a second copy of the starting
weights, or with LoRA the same model with its adapter disabled (no second copy). Neither step-wise DPO
nor R-PRM gives β; 0.1 is TRL's. A pair whose prompt plus longer completion exceeds ``--max-length`` is
dropped and counted (``dropped_too_long`` in the training manifest): TRL would cut the completions'
ends (an R-PRM verdict, a final step's EOS) and train on what is left. Any other DPOConfig field passes
through with --trl.<field>=VALUE (e.g. --trl.beta=0.2).

    judgeforge train dpo --data runs/demo/step_prefs-curated --model checkpoints/m1 --out checkpoints/m2
    judgeforge train dpo --data runs/ste/ste_judgments --lora-r 16 --merge --out checkpoints/judge-dpo
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from judgeforge.train.common import RecipeConfig, TrainContext, drop_too_long, opt, run_recipe


@dataclass
class DPORecipe(RecipeConfig):
    max_length: int = opt(1024, "Longest prompt + chosen or rejected in tokens; longer pairs are dropped and counted, never truncated.")


OWNED = {"max_length": (None, "judgeforge drops pairs longer than --max-length (counted) instead of letting TRL truncate them; use --max-length")}


def pair_length(example: dict[str, Any]) -> int:
    """Tokens of the longer of a prepared pair's two sequences (prompt + chosen, prompt + rejected)."""
    return len(example["prompt_ids"]) + max(len(example["chosen_ids"]), len(example["rejected_ids"]))


def train_dpo(cfg: DPORecipe, console: Any = None) -> dict[str, Any]:
    """Preference-tune ``cfg.model`` on the DPO view of ``cfg.data``; returns the training manifest."""

    def trainer(ctx: TrainContext) -> Any:
        # With LoRA, TRL takes the adapter-disabled model as the reference: no second copy is loaded.
        reference = None if ctx.peft_config is not None else ctx.load_model()
        built = ctx.trainer_cls(
            model=ctx.model,
            ref_model=reference,
            args=ctx.args,
            train_dataset=ctx.dataset,
            eval_dataset=ctx.eval_dataset,
            processing_class=ctx.tokenizer,
            peft_config=ctx.peft_config,
        )
        return drop_too_long(ctx, built, cfg.max_length, pair_length)

    return run_recipe(cfg, "dpo", trainer, console, owned=OWNED)
