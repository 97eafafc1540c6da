"""The example family's builder: one greedy answer per problem from the policy, checked against gold.

Everything a builder needs from the framework is here and nothing else: a config whose fields become
``judgeforge build short-answers`` options, declared counters, ``estimate`` (the engine calls a build makes, for ``--dry-run``), and ``build`` over a chunk of problems
with one batched engine call. A failed completion is dropped and counted, never written as "".
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from judgeforge.builders.base import Builder, BuilderStats, Calls, Stat, first_inputs
from judgeforge.engines.base import Request, SamplingParams, derive_seed
from judgeforge.formats.steps import policy_user_message
from judgeforge.schemas.base import BaseRow
from judgeforge.sources import Problem
from judgeforge.verify import check_answer, extract_answer
from tests.example_family.schema import ShortAnswerRow


class ShortAnswersConfig(BaseModel):
    max_tokens: int = Field(48, ge=1, description="token budget of one answer")


class ShortAnswersStats(BuilderStats):
    ANSWERS = Stat("answers")
    FAILED = Stat("failed_completions")


class ShortAnswersBuilder(Builder[ShortAnswersConfig]):
    name = "short-answers"
    version = "0.1.0"
    summary = "one greedy answer per problem, labelled by its check against the gold answer (example family)"
    row_model = ShortAnswerRow
    Config = ShortAnswersConfig
    Stats = ShortAnswersStats

    @classmethod
    def estimate(cls, config: ShortAnswersConfig, inputs: Sequence[Problem]) -> list[Calls]:
        prompts = tuple(Request.chat(policy_user_message(p.question)) for p in first_inputs(inputs))
        return [Calls(role="policy", stage="answers", requests=len(inputs), max_tokens=config.max_tokens, prompts=prompts)]

    def build(self, items: list[Problem]) -> list[BaseRow]:
        requests = [Request.chat(policy_user_message(p.question), seed=derive_seed(self.ctx.seed, "answer", p.id)) for p in items]
        params = SamplingParams(n=1, temperature=0.0, max_tokens=self.config.max_tokens, seed=self.ctx.seed)
        rows: list[BaseRow] = []
        for problem, (completion,) in zip(items, self.ctx.engines["policy"].generate(requests, params), strict=True):
            if not completion.ok:
                self.stats.add(ShortAnswersStats.FAILED)
                continue
            rows.append(
                ShortAnswerRow(
                    id=f"{problem.id}/answer",
                    source_id=problem.id,
                    meta=self.row_meta(),
                    question=problem.question,
                    answer=completion.text,
                    gold_answer=problem.answer,
                    final_answer=extract_answer(completion.text),
                    correct=check_answer(problem, completion.text),
                )
            )
        self.stats.add(ShortAnswersStats.ANSWERS, len(rows))
        self.ctx.on_inputs_done(len(items))
        return rows
