"""IFT data: step-by-step solutions in the step format, for the M0 → M1 fine-tune (policy half).

Process-based Self-Rewarding (Zhang et al., 2025, arXiv 2503.03746) fine-tunes the base model on
solutions segmented into ``Step n:`` steps without changing their content, so the model learns the step
layout the later step-wise search continues. ``--from gold`` takes the source's gold solutions (e.g.
reasoning-gym ``gsm_symbolic`` chains) and normalises them into steps; ``--from samples`` samples K
solutions per problem from ``--model`` (rejection sampling) and keeps those whose final answer verifies against the
gold answer (at most ``--keep-per-problem``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from judgeforge.builders.base import Builder, BuilderStats, Calls, Loss, Need, Stat, first_inputs
from judgeforge.engines.base import Request, SamplingParams, derive_seed
from judgeforge.formats.steps import gold_steps, normalise_steps, policy_user_message, solution_text, split_steps, step_header
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.ift import IftRow
from judgeforge.sources import Problem
from judgeforge.verify import check_answer, extract_answer


class IftConfig(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    mode: Literal["gold", "samples"] = Field(
        "gold", alias="from", description="gold: normalise the source's gold solutions; samples: rejection-sample solutions from --model"
    )
    samples_per_problem: int = Field(4, ge=1, description="solutions sampled per problem with --from samples")
    keep_per_problem: int = Field(1, ge=1, description="verified solutions kept per problem with --from samples")
    temperature: float = Field(0.7, ge=0.0, description="sampling temperature with --from samples")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling with --from samples")
    max_tokens: int = Field(256, ge=1, description="token budget of one sampled solution")


class IftStats(BuilderStats):
    ROWS = Stat("rows")
    NO_GOLD_SOLUTION = Stat("no_gold_solution")
    SAMPLED = Stat("sampled")
    FAILED = Stat("failed")
    CUT = Stat("cut_by_max_tokens")
    VERIFIED = Stat("verified")
    NO_VERIFIED_SAMPLE = Stat("problems_without_verified_sample")

    LOSSES = (
        Loss(
            NO_GOLD_SOLUTION,
            "inputs",
            "problems",
            "have no gold solution to normalise",
            "name the column of worked solutions with --solution-col, or build --from samples",
        ),
        Loss(
            NO_VERIFIED_SAMPLE,
            "inputs",
            "problems",
            "had no sampled solution whose final answer verified ({s[verified]:g} of {s[sampled]:g} samples verified; "
            "{s[cut_by_max_tokens]:g} were cut by --max-tokens {c[max_tokens]}, {s[failed]:g} failed)",
            "raise --samples-per-problem (now {c[samples_per_problem]}) or --max-tokens, use easier problems, or build --from gold with --solution-col",
        ),
    )


class IftBuilder(Builder[IftConfig]):
    name = "ift"
    version = "0.2.0"
    summary = "step-by-step solutions {x, y} for instruction fine-tuning (gold or rejection-sampled)"
    row_model = IftRow
    Config = IftConfig
    Stats = IftStats

    @classmethod
    def needs(cls, config: IftConfig) -> tuple[Need, ...]:
        if config.mode == "gold":
            return (Need("solution", "--from gold", "it normalises them into steps", "build --from samples"),)
        return (Need("answer", "--from samples", "a sampled solution is kept when its final answer verifies", "build --from gold with --solution-col"),)

    @classmethod
    def estimate(cls, config: IftConfig, inputs: Sequence[Problem]) -> list[Calls]:
        if config.mode == "gold":
            return []  # gold solutions are rows as they are
        return [
            Calls(
                role="policy",
                stage="solutions",
                requests=len(inputs),
                samples=config.samples_per_problem,
                max_tokens=config.max_tokens,
                prompts=tuple(Request.chat(policy_user_message(p.question), prefix=step_header(1)) for p in first_inputs(inputs)),
            )
        ]

    def build(self, items: list[Problem]) -> list[BaseRow]:
        rows = self._from_gold(items) if self.config.mode == "gold" else self._from_samples(items)
        self.ctx.on_inputs_done(len(items))
        self.stats.add(IftStats.ROWS, len(rows))
        return rows

    def _row(self, problem: Problem, steps: list[str], index: int, verified: bool | None) -> IftRow:
        meta = self.row_meta()
        if self.config.mode == "gold":
            meta = meta.model_copy(update={"model": "gold"})
        return IftRow(
            id=f"{problem.id}/ift-{index}",
            source_id=problem.id,
            meta=meta,
            question=problem.question,
            steps=steps,
            solution=solution_text(steps),
            gold_answer=problem.answer,
            final_answer=extract_answer(solution_text(steps)),
            origin=self.config.mode,
            verified=verified,
        )

    def _from_gold(self, problems: list[Problem]) -> list[BaseRow]:
        rows: list[BaseRow] = []
        for problem in problems:
            steps = gold_steps(problem)
            if not steps:
                self.stats.add(IftStats.NO_GOLD_SOLUTION)
                continue
            rows.append(self._row(problem, steps, 0, check_answer(problem, solution_text(steps))))
        return rows

    def _from_samples(self, problems: list[Problem]) -> list[BaseRow]:
        cfg = self.config
        params = SamplingParams(n=cfg.samples_per_problem, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=self.ctx.seed)
        requests = [Request.chat(policy_user_message(p.question), prefix=step_header(1), seed=derive_seed(self.ctx.seed, p.id, "ift")) for p in problems]
        rows: list[BaseRow] = []
        for problem, completions in zip(problems, self.ctx.engines["policy"].generate(requests, params), strict=True):
            kept: list[str] = []
            for completion in completions:
                self.stats.add(IftStats.SAMPLED)
                if not completion.ok:
                    self.stats.add(IftStats.FAILED)
                    continue
                self.stats.add(IftStats.CUT, completion.finish_reason == "length")
                steps = normalise_steps(split_steps(step_header(1) + completion.text), None)
                verified = bool(steps) and check_answer(problem, solution_text(steps))
                self.stats.add(IftStats.VERIFIED, bool(verified))
                text = solution_text(steps)
                if verified and text not in kept and len(kept) < cfg.keep_per_problem:
                    kept.append(text)
                    rows.append(self._row(problem, steps, len(kept) - 1, True))
            self.stats.add(IftStats.NO_VERIFIED_SAMPLE, not kept)
        return rows

    @classmethod
    def report(cls, stats: Mapping[str, float]) -> list[tuple[str, str]]:
        S = IftStats
        lines = [("IFT rows", f"{S.ROWS.read(stats):g}")]
        if S.SAMPLED.read(stats):
            lines.append(("solutions sampled / failed / verified", f"{S.SAMPLED.read(stats):g} / {S.FAILED.read(stats):g} / {S.VERIFIED.read(stats):g}"))
            lines.append(("  cut by --max-tokens", f"{S.CUT.read(stats):g}"))
        if S.NO_GOLD_SOLUTION.read(stats):
            lines.append(("problems without a gold solution", f"{S.NO_GOLD_SOLUTION.read(stats):g}"))
        return lines
