"""R-PRM training data: reasoned step analyses kept by their verdict (SFT) and paired against each other (DPO).

She et al., "R-PRM: Reasoning-Driven Process Reward Modeling", EMNLP 2025, arXiv 2503.21295 (repository
NJUNLP/R-PRM). Inputs are step-labelled evaluation inputs — a problem, the previous steps, the now step
and its label Yes/No — read by judgeforge.builders.step_inputs from a file in a public layout (PRM800K,
Math-Shepherd, ProcessBench, TRL stepwise supervision) or from a step_labels run (--source
OUT/step_labels); --limit keeps the first N inputs, and --source gym:... is refused. For every input the
analysis model (--model; the paper used Llama-3.3-70B-Instruct) writes K analyses (--k; paper: 4) in
one batched call, with the prompt of judgeforge.formats.rprm: previous-steps analysis, now-step
analysis, calculation analysis, then "Verification: Is the step correct (Yes/No)? Yes|No". An analysis
whose engine call failed is dropped and counted (analyses_failed), never parsed as an empty text.

Verdicts are parsed by judgeforge.formats.rprm: only the verdict line the prompt asks for counts ("Yes"
or "No" spelt so, standing alone after the lead). Analyses with none, with both Yes and No, with several
(agreeing or contradictory) verdict lines, with their verdict off the format (another case) or cut by
the token budget are malformed: counted per kind and never kept. With --force-verdict an analysis
without a verdict (none, truncated) is continued with the verdict lead and its verdict is drawn from the
model's own Yes/No distribution there (P(Yes) from the softmax over the two tokens, at --temperature;
the greedy token when the engine gives no log-probabilities; judgeforge.formats.verdicts), counted as
forced (a failed call at the slot leaves it malformed, counted as verdict_slots_failed), and such an analysis
is a training target like any other: rows mark it (forced_verdict; chosen_forced_verdict /
rejected_forced_verdict). The paper drops such analyses, hence off by default.

rprm-sft keeps the distinct analyses whose verdict matches the label, at most --keep-per-input.
rprm-prefs pairs a matching analysis (chosen) with a non-matching one (rejected), at most
--max-pairs-per-input pairs (the paper's filter: 2), preferring pairs that reuse no analysis; inputs
whose valid analyses all agree with each other yield nothing.

The Yes/No balance of the inputs and of the rows is reported; --balance first keeps a seeded
balanced subset of the inputs (every input of the rarer label and as many drawn of the other, over the
whole input set, so shards and resumed runs agree).
"""

from __future__ import annotations

import random
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any, ClassVar, TypeVar, cast

from pydantic import BaseModel, Field

from judgeforge.builders.base import RETRY, Builder, BuilderStats, Calls, Loss, Stat, StatFamily
from judgeforge.builders.step_inputs import analysis_calls, load_step_inputs
from judgeforge.engines.base import SamplingParams, derive_seed
from judgeforge.errors import UserError
from judgeforge.formats.rprm import ANALYSIS, MALFORMED, Status, analysis_request
from judgeforge.formats.step_inputs import Label, StepInput
from judgeforge.formats.verdicts import SlotReading, draw, settle
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.rprm import RprmCaseRow, RprmPrefsRow, RprmSftRow
from judgeforge.sources import GYM_PREFIX, SourceConfig


class RprmConfig(BaseModel):
    k: int = Field(4, ge=1, description="analyses sampled per evaluation input (paper's seed data: 4)")
    temperature: float = Field(0.7, ge=0.0, description="sampling temperature of the analyses (not given in the paper)")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling of the analyses")
    max_tokens: int = Field(512, ge=1, description="token budget of one analysis; an analysis cut by it has a truncated verdict")
    force_verdict: bool = Field(
        False,
        description="give an analysis without a verdict one: continue it with the verdict lead and draw Yes/No from the model's "
        "P(Yes) there at --temperature; forced analyses are counted, marked in their rows and kept as training targets "
        "(off: they are malformed and dropped, as in the paper)",
    )
    balance: bool = Field(False, description="keep only a seeded Yes/No-balanced subset of the inputs")


class RprmSftConfig(RprmConfig):
    keep_per_input: int = Field(4, ge=1, description="label-matching analyses kept per input, at most")


class RprmPrefsConfig(RprmConfig):
    max_pairs_per_input: int = Field(2, ge=1, description="preference pairs per input, at most (the paper's filter: 2)")


@dataclass
class Analysis:
    """One sampled analysis: the assistant turn (up to its verdict when parsed), verdict and status."""

    index: int
    text: str
    verdict: Label | None
    status: Status
    forced: bool = False


@dataclass
class Case:
    """An evaluation input and its analyses."""

    item: StepInput
    analyses: list[Analysis] = field(default_factory=list)

    def valid(self) -> list[Analysis]:
        """Distinct analyses with a verdict, in sampling order."""
        seen: set[str] = set()
        out = []
        for a in self.analyses:
            if a.verdict is not None and a.text not in seen:
                seen.add(a.text)
                out.append(a)
        return out

    def matching(self) -> list[Analysis]:
        return [a for a in self.valid() if a.verdict == self.item.label]

    def mismatching(self) -> list[Analysis]:
        return [a for a in self.valid() if a.verdict != self.item.label]

    def counts(self) -> dict[str, int]:
        return {
            "num_analyses": len(self.analyses),
            "num_matching": sum(a.verdict == self.item.label for a in self.analyses),
            "num_mismatching": sum(a.verdict is not None and a.verdict != self.item.label for a in self.analyses),
            "num_malformed": sum(a.verdict is None for a in self.analyses),
        }


ConfigT = TypeVar("ConfigT", bound=RprmConfig)
STATUSES: tuple[Status, ...] = ("ok", *MALFORMED)
LABELS = ("yes", "no")
UNPAIRED_REASONS = ("all_matching", "all_mismatching", "no_valid_analysis")


class RprmStats(BuilderStats):
    INPUTS = StatFamily("inputs", LABELS)
    INPUTS_DROPPED_BY_BALANCE = Stat("inputs_dropped_by_balance")
    ANALYSES = Stat("analyses")
    ANALYSES_FAILED = Stat("analyses_failed")
    VERDICTS = StatFamily("verdicts", STATUSES)
    VERDICTS_FORCED = Stat("verdicts_forced")
    VERDICT_SLOTS_FAILED = Stat("verdict_slots_failed")
    ANALYSES_MATCHING = Stat("analyses_matching")
    ANALYSES_MISMATCHING = Stat("analyses_mismatching")
    ROWS = Stat("rows")
    ROWS_BY_LABEL = StatFamily("rows", LABELS)

    LOSSES: ClassVar[tuple[Loss, ...]] = (
        Loss(INPUTS_DROPPED_BY_BALANCE, "inputs", "inputs", "were left out to balance Yes and No", "drop --balance"),
        Loss(ANALYSES_FAILED, None, "analyses", "failed (engine errors)", RETRY),
        Loss(
            VERDICTS["truncated"],
            ANALYSES,
            "analyses",
            "were cut by --max-tokens {c[max_tokens]} before their verdict",
            lambda f: (
                "raise --max-tokens"
                + ("" if f.c["force_verdict"] else ", or --force-verdict to draw their verdict from the model's P(Yes) (counted, marked in the rows)")
            ),
        ),
        Loss(
            VERDICTS["none"],
            ANALYSES,
            "analyses",
            "ended without a verdict",
            lambda f: (
                "a stronger --model"
                if f.c["force_verdict"]
                else "--force-verdict draws one from the model's P(Yes) (counted, marked in the rows), or a stronger --model"
            ),
        ),
        Loss(VERDICTS["contradictory"], ANALYSES, "analyses", "had verdict lines that disagree", "a stronger --model"),
        Loss(VERDICTS["several"], ANALYSES, "analyses", "repeated their verdict line (a kept analysis ends with it once)", "a stronger --model"),
        Loss(VERDICTS["both"], ANALYSES, "analyses", "named both Yes and No in their verdict", "a stronger --model"),
        Loss(VERDICTS["off_format"], ANALYSES, "analyses", "stated their verdict off the format", "a stronger --model"),
    )


class RprmSftStats(RprmStats):
    INPUTS_WITHOUT_MATCH = Stat("inputs_without_match")

    LOSSES: ClassVar[tuple[Loss, ...]] = (
        *RprmStats.LOSSES,
        Loss(
            INPUTS_WITHOUT_MATCH,
            "inputs",
            "inputs",
            "got no analysis whose verdict is the step's label ({s[analyses_matching]:g} of {s[analyses]:g} analyses matched it, "
            "{s[analyses_mismatching]:g} stated the other label)",
            "raise --k (now {c[k]}) for more analyses per input, or use a stronger --model",
        ),
    )


class RprmPrefsStats(RprmStats):
    UNPAIRED = StatFamily("inputs", UNPAIRED_REASONS)

    LOSSES: ClassVar[tuple[Loss, ...]] = (
        *RprmStats.LOSSES,
        Loss(
            UNPAIRED["no_valid_analysis"],
            "inputs",
            "inputs",
            "had no analysis with a verdict",
            lambda f: "raise --max-tokens (now {}){}".format(f.c["max_tokens"], "" if f.c["force_verdict"] else ", or --force-verdict"),
        ),
        Loss(
            UNPAIRED["all_matching"],
            "inputs",
            "inputs",
            "had only analyses matching the label: no rejected side",
            "raise --k (now {c[k]}) or --temperature (now {c[temperature]:g}) for analyses that disagree",
        ),
        Loss(
            UNPAIRED["all_mismatching"],
            "inputs",
            "inputs",
            "had only analyses stating the other label: no chosen side",
            "raise --k (now {c[k]}) or --temperature (now {c[temperature]:g}), or use a stronger --model",
        ),
    )


class _RprmBuilder(Builder[ConfigT]):
    """What both R-PRM builders share: step-labelled inputs, K analyses per input, verdict counting."""

    @classmethod
    def estimate(cls, config: ConfigT, inputs: Sequence[StepInput]) -> list[Calls]:
        cfg = config
        kept = [i for i in inputs if i.in_balanced_subset or not cfg.balance]
        analyses = analysis_calls(kept, cfg.k, cfg.max_tokens)
        return [analyses, *([analyses.forced()] if cfg.force_verdict else [])]

    def build(self, items: list[StepInput]) -> list[BaseRow]:
        rows = [row for case in self.analyse(items) for row in self.rows(case)]
        for row in rows:
            self.stats.add(RprmStats.ROWS_BY_LABEL[row.label.lower()])
        self.stats.add(RprmStats.ROWS, len(rows))
        return list(rows)

    @abstractmethod
    def rows(self, case: Case) -> Sequence[RprmCaseRow]:
        """The rows one analysed input yields."""

    @classmethod
    def load_inputs(cls, source: SourceConfig) -> list[BaseModel]:
        if source.source.startswith(GYM_PREFIX):
            raise UserError(
                f"{cls.name} reads step-labelled inputs (a PRM800K, Math-Shepherd, ProcessBench or TRL stepwise file, or a "
                f"step_labels run dir), not '{source.source}'; build one with `judgeforge build step-labels --source {source.source}`"
            )
        if source.offset:
            raise UserError(f"{cls.name}: --offset skips rows of a problem source; step-labelled inputs take --limit only")
        return list(load_step_inputs(source.source, source.limit, source.seed))

    def analyse(self, items: list[StepInput]) -> list[Case]:
        """K analyses per input (one batched call), verdicts parsed, missing verdicts forced if asked."""
        cfg, seed = self.config, self.ctx.seed
        for item in items:
            self.stats.add(RprmStats.INPUTS[item.label.lower()])
        kept = [i for i in items if i.in_balanced_subset or not cfg.balance]
        self.stats.add(RprmStats.INPUTS_DROPPED_BY_BALANCE, len(items) - len(kept))
        engine = self.ctx.engines["policy"]
        params = SamplingParams(n=cfg.k, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=seed)
        requests = [analysis_request(item, derive_seed(seed, item.id, "analysis")) for item in kept]
        cases = [Case(item) for item in kept]
        outputs = [
            (case, index, request, completion)
            for case, request, completions in zip(cases, requests, engine.generate(requests, params), strict=True)
            for index, completion in enumerate(completions)
        ]

        def choose(n: int, reading: SlotReading[Label]) -> Label | None:  # drawn at the sampling temperature, seeded per analysis
            case, index = outputs[n][0], outputs[n][1]
            return draw(reading, cfg.temperature, random.Random(derive_seed(seed, case.item.id, "verdict", index)))

        settled = settle(engine, ANALYSIS, [(request, completion) for _, _, request, completion in outputs], seed, cfg.force_verdict, choose)
        for (case, index, _, _), analysis in zip(outputs, settled, strict=True):
            if analysis is None:
                self.stats.add(RprmStats.ANALYSES_FAILED)
                continue
            status = cast(Status, "ok" if analysis.verdict is not None else analysis.status)
            case.analyses.append(Analysis(index, analysis.text, analysis.verdict, status, forced=analysis.forced is not None))
            self.stats.add(RprmStats.ANALYSES)
            self.stats.add(RprmStats.VERDICTS[status])
            self.stats.add(RprmStats.VERDICTS_FORCED, analysis.forced is not None)
            self.stats.add(RprmStats.VERDICT_SLOTS_FAILED, analysis.slot_failed)
            if analysis.verdict is not None:
                self.stats.add(RprmStats.ANALYSES_MATCHING if analysis.verdict == case.item.label else RprmStats.ANALYSES_MISMATCHING)
        self.ctx.on_inputs_done(len(items))
        return cases

    def case_fields(self, case: Case) -> dict[str, Any]:
        item = case.item
        return dict(
            source_id=item.id,
            meta=self.row_meta(),
            question=item.question,
            previous_steps=item.previous_steps,
            now_step=item.now_step,
            step_index=item.step_index,
            label=item.label,
            gold_answer=item.gold_answer,
            **case.counts(),
        )

    @classmethod
    def report(cls, stats: Mapping[str, float]) -> list[tuple[str, str]]:
        S = RprmStats
        inputs, verdicts, rows = S.INPUTS.read(stats), S.VERDICTS.read(stats), S.ROWS_BY_LABEL.read(stats)
        yes, no = inputs.get("yes", 0), inputs.get("no", 0)
        matching, forced = S.ANALYSES_MATCHING.read(stats), S.VERDICTS_FORCED.read(stats)
        valid = matching + S.ANALYSES_MISMATCHING.read(stats)
        return [
            ("inputs Yes / No", f"{yes:g} / {no:g}" + (f" ({yes / (yes + no):.0%} Yes)" if yes + no else "")),
            ("inputs dropped by --balance", f"{S.INPUTS_DROPPED_BY_BALANCE.read(stats):g}"),
            ("analyses (failed, dropped)", f"{S.ANALYSES.read(stats):g} ({S.ANALYSES_FAILED.read(stats):g})"),
            ("verdicts parsed / forced (slot calls failed)", f"{verdicts.get('ok', 0) - forced:g} / {forced:g} ({S.VERDICT_SLOTS_FAILED.read(stats):g})"),
            ("malformed: " + " / ".join(MALFORMED), " / ".join(f"{verdicts.get(s, 0):g}" for s in MALFORMED)),
            ("verdicts matching the label", f"{matching:g} of {valid:g}" + (f" ({matching / valid:.0%})" if valid else "")),
            ("rows (label Yes / No)", f"{S.ROWS.read(stats):g} ({rows.get('yes', 0):g} / {rows.get('no', 0):g})"),
        ]


class RprmSftBuilder(_RprmBuilder[RprmSftConfig]):
    name = "rprm-sft"
    version = "0.2.0"
    summary = "R-PRM SFT data: sampled step analyses whose Yes/No verdict matches the step label"
    row_model = RprmSftRow
    Config = RprmSftConfig
    Stats = RprmSftStats

    def rows(self, case: Case) -> list[RprmSftRow]:
        kept = case.matching()[: self.config.keep_per_input]
        if not kept:
            self.stats.add(RprmSftStats.INPUTS_WITHOUT_MATCH)
        return [
            RprmSftRow(
                id=f"{case.item.id}/analysis-{a.index}",
                analysis=a.text,
                verdict=a.verdict or "",
                forced_verdict=a.forced,
                analysis_index=a.index,
                **self.case_fields(case),
            )
            for a in kept
        ]

    @classmethod
    def report(cls, stats: Mapping[str, float]) -> list[tuple[str, str]]:
        return [*super().report(stats), ("inputs without a matching analysis", f"{RprmSftStats.INPUTS_WITHOUT_MATCH.read(stats):g}")]


class RprmPrefsBuilder(_RprmBuilder[RprmPrefsConfig]):
    name = "rprm-prefs"
    version = "0.2.0"
    summary = "R-PRM preference pairs: a label-matching step analysis (chosen) against a non-matching one (rejected)"
    row_model = RprmPrefsRow
    Config = RprmPrefsConfig
    Stats = RprmPrefsStats

    def rows(self, case: Case) -> list[RprmPrefsRow]:
        chosen, rejected = case.matching(), case.mismatching()
        if not chosen or not rejected:
            reason = "no_valid_analysis" if not chosen and not rejected else "all_matching" if chosen else "all_mismatching"
            self.stats.add(RprmPrefsStats.UNPAIRED[reason])
            return []
        rng = random.Random(derive_seed(self.ctx.seed, case.item.id, "pairs"))
        rng.shuffle(chosen)
        rng.shuffle(rejected)
        return [
            RprmPrefsRow(
                id=f"{case.item.id}/pair-{c.index}-{r.index}",
                chosen=c.text,
                rejected=r.text,
                chosen_verdict=c.verdict or "",
                rejected_verdict=r.verdict or "",
                chosen_forced_verdict=c.forced,
                rejected_forced_verdict=r.forced,
                chosen_index=c.index,
                rejected_index=r.index,
                **self.case_fields(case),
            )
            for c, r in _pairs(chosen, rejected, self.config.max_pairs_per_input)
        ]

    @classmethod
    def report(cls, stats: Mapping[str, float]) -> list[tuple[str, str]]:
        unpaired = ", ".join(f"{r.replace('_', ' ')} {RprmPrefsStats.UNPAIRED[r].read(stats):g}" for r in UNPAIRED_REASONS)
        return [*super().report(stats), ("inputs without a pair", unpaired)]


def _pairs(chosen: list[Analysis], rejected: list[Analysis], limit: int) -> list[tuple[Analysis, Analysis]]:
    """Up to ``limit`` (chosen, rejected) pairs, first those that reuse no analysis already paired."""
    used: set[int] = set()
    fresh, rest = [], []
    for c, r in product(chosen, rejected):
        if c.index in used or r.index in used:
            rest.append((c, r))
        else:
            fresh.append((c, r))
            used.update((c.index, r.index))
    return (fresh + rest)[:limit]
