"""S2R RL prompts: the questions, as the policy sees them, with what the S2R rewards grade against.

Ma et al., "S2R: Teaching LLMs to Self-verify and Self-correct via Reinforcement Learning", ACL 2025,
arXiv 2502.12853. After the SFT stage (s2r-trajectories), S2R trains the policy with RL on problems with
gold answers, rewarding the outcome (is the final answer right?) or the process (is each
self-verification right about its attempt?). Each row holds the conversational prompt (the same user
turn as Stage-0 sampling and the SFT data), the gold answer, and the whole problem as JSON so that
reasoning-gym tasks are graded by their own scorer. Problems that cannot be graded (no gold answer, no
scorer) are skipped and counted. Train with TRL's GRPOTrainer and judgeforge.train.rewards.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from judgeforge.builders.base import MAP_ANSWERS, Builder, BuilderStats, Calls, Loss, Need, Stat
from judgeforge.formats.s2r import policy_messages
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.s2r import ChatMessage, S2RPromptRow
from judgeforge.sources import Problem


class S2RPromptsConfig(BaseModel):
    """No options of its own: the prompt is the Stage-0 user turn, the rest comes from the source."""


class S2RPromptsStats(BuilderStats):
    PROMPTS = Stat("prompts")
    SKIPPED_NO_GOLD_ANSWER = Stat("skipped_no_gold_answer")

    LOSSES = (
        Loss(
            SKIPPED_NO_GOLD_ANSWER,
            "inputs",
            "problems",
            "have no gold answer (nor a reasoning-gym scorer) to reward",
            MAP_ANSWERS,
        ),
    )


class S2RPromptsBuilder(Builder[S2RPromptsConfig]):
    name = "s2r-rl-prompts"
    version = "0.1.0"
    summary = "S2R RL prompts with gold answers, for GRPO with the outcome- and process-level rewards"
    row_model = S2RPromptRow
    Config = S2RPromptsConfig
    Stats = S2RPromptsStats

    @classmethod
    def needs(cls, config: S2RPromptsConfig) -> tuple[Need, ...]:
        return (Need("answer", "", "the RL rewards grade answers against it"),)

    @classmethod
    def estimate(cls, config: S2RPromptsConfig, inputs: Sequence[Problem]) -> list[Calls]:
        return []  # prompts are made from the problems, with no engine call

    def build(self, problems: list[Problem]) -> list[BaseRow]:
        rows: list[BaseRow] = []
        for problem in problems:
            if not problem.gradable:
                self.stats.add(S2RPromptsStats.SKIPPED_NO_GOLD_ANSWER)
                continue
            rows.append(
                S2RPromptRow(
                    id=problem.id,
                    source_id=problem.id,
                    meta=self.row_meta(),
                    question=problem.question,
                    prompt=[ChatMessage(**m) for m in policy_messages(problem.question)],
                    answer=problem.answer,
                    problem=problem.model_dump_json(),
                )
            )
        self.stats.add(S2RPromptsStats.PROMPTS, len(rows))
        self.ctx.on_inputs_done(len(problems))
        return rows
