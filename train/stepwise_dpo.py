"""``DPOTrainer`` for step-wise preferences: tokenise completions exactly as given, add no EOS.

TRL's ``DPOTrainer`` appends EOS to every string completion. For step-wise DPO that is wrong: the
chosen and rejected texts are single *intermediate* steps, and training them to end in EOS teaches the
policy to stop mid-solution. The step-prefs DPO view (:func:`judgeforge.schemas.step_prefs.dpo_view`)
already ends an intermediate step with the step delimiter and a final step with EOS; this subclass
replaces TRL's dataset preparation with a plain tokenisation that keeps those endings as they are.
The prompt is tokenised on its own, as the policy saw it at generation time.
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset
from trl import DPOTrainer


class StepwiseDPOTrainer(DPOTrainer):
    """A ``DPOTrainer`` whose string completions are tokenised verbatim (no EOS appended)."""

    def _prepare_dataset(self, dataset: Dataset, processing_class: Any, args: Any, dataset_name: str) -> Dataset:
        tokenizer = getattr(processing_class, "tokenizer", processing_class)

        def tokenize(example: dict[str, str]) -> dict[str, list[int]]:
            return {
                "prompt_ids": tokenizer(example["prompt"], add_special_tokens=False)["input_ids"],
                "chosen_ids": tokenizer(example["chosen"], add_special_tokens=False)["input_ids"],
                "rejected_ids": tokenizer(example["rejected"], add_special_tokens=False)["input_ids"],
            }

        # Over-long pairs are dropped and counted by the recipe (judgeforge.train.common.drop_too_long).
        return dataset.map(tokenize, desc=f"Tokenizing {dataset_name} step-wise pairs")
