"""Self-Taught Evaluator data: a judge M_t labels synthetic response pairs; its correct judgments train M_{t+1}.

Wang et al., "Self-Taught Evaluators", 2024, arXiv 2408.02666 (repo facebookresearch/RAM,
projects/self_taught_evaluator). No human preference labels: the pair's label is known by construction.
Per chunk of instructions x, each stage is one batched engine call:

1. The model writes a "similar but different" instruction x' (close in topic, asking something else)
between markers, so it parses; outputs without the end marker, empty ones and copies of x are counted
as parse failures and dropped (failed engine calls too, counted apart).

2. y^w = a response to x, y^l = a response to x' (plausibly a worse answer to x). Where x has a gold
answer both are checked against it; ``--require-verified`` keeps only pairs where y^w verifies and
y^l does not.

3. The judge (``--judge-model``, default the model itself) samples N judgments of (x, y^w, y^l) (paper:
T = 0.7, top_p = 0.9, both orders): a seeded coin decides whether judgment 0 shows y^w as A or B, then
the orders alternate, so with N >= 2 every pair is judged both ways. A judgment is reasoning +
``[[A]]``/``[[B]]`` (the shared judge format); with ``--force-verdict`` a verdict-less one is continued
with ``Verdict: [[`` and its verdict drawn from the judge's probabilities of A and B at the judge
temperature, as if the judge had sampled that token itself. A forced verdict is a measurement, counted
apart from parsed verdicts; an output that already names a verdict (one contradicting itself) is never
forced, so no text carries both ``[[A]]`` and ``[[B]]`` (judgeforge.formats.verdicts). A judgment whose
engine call failed is no judgment: dropped and counted (``judge_failed``), never an empty text and
never forced. A verdict is correct when it picks y^w.

4. A training target is a judgment whose stored text parses (:func:`parse_verdict`) to exactly the label;
forced verdicts are targets only with ``--allow-forced-verdicts`` (a forced coin flip at P(A) ~ 0.5 would
otherwise become a "correct" judgment for almost every pair); what is excluded and why is counted. Keep
``--keep-per-pair`` targets per pair at random (optionally only for pairs where at least
``--min-correct-fraction`` of the N are targets), then balance: drop a seeded random surplus so
"A is better" and "B is better" rows are equal in number, as the paper does. Balancing happens per
chunk, the unit of resume, so the whole dataset is balanced too.

5. Each row also records which of its pair's judgments may be the *rejected* side of a preference pair
against the kept one (``rejected_indices``, for DPO + NLL as the released Llama-3.1 judge was trained):
judgments shown in the same order whose verdict names the worse response and whose stored text parses
to that verdict; forced ones only under the same ``--allow-forced-verdicts`` as targets; in a seeded
order (the DPO view takes the first). Rows with none are counted (``rows_without_rejected``).

The correct-verdict rate (correct parsed verdicts over parsed verdicts; forced verdicts agreeing with
the label are reported apart) is the judge's accuracy on its own synthetic pairs, the number the
method's iterations should raise (paper: RewardBench 75.4 → 88.3 over five iterations of
Llama-3-70B-Instruct).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from pydantic import BaseModel, Field

from judgeforge.builders.base import RETRY, Builder, Calls, Loss, Need, Stat, StatFamily, first_inputs
from judgeforge.builders.judging import JudgeStats
from judgeforge.engines.base import Completion, Request, SamplingParams, derive_seed
from judgeforge.formats.judge import JUDGMENT, VERDICTS, Verdict, parse_verdict, response_judge_message
from judgeforge.formats.verdicts import SlotReading, draw, settle
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.self_taught import SampledJudgment, SelfTaughtRow
from judgeforge.sources import Problem
from judgeforge.verify import check_answer

T = TypeVar("T")

NEW_INSTRUCTION_START = "[NEW INSTRUCTION]"
NEW_INSTRUCTION_END = "[END]"
SIMILAR_INSTRUCTION_PROMPT = (
    "Write a new instruction that is close in topic to the instruction below and looks similar to it, but asks "
    "for something different, so that a good response to the new instruction would be a poor response to the "
    f"original one. Write only the new instruction, between the lines {NEW_INSTRUCTION_START} and {NEW_INSTRUCTION_END}."
    f"\n\n[INSTRUCTION]\n{{instruction}}\n{NEW_INSTRUCTION_END}"
)
ANSWER_HINT = 'If this asks for an answer, end your response with "The answer is X".'
SimilarOutcome = Literal["ok", "failed", "unfinished", "empty", "copy"]
TargetExclusion = Literal["forced", "not_reparsed"]


class SelfTaughtStats(JudgeStats):
    INSTRUCTIONS = Stat("instructions")
    SIMILAR_PARSE_FAILURES = Stat("similar_parse_failures")
    SIMILAR = StatFamily("similar", ("failed", "unfinished", "empty", "copy"))
    PAIRS_FAILED = Stat("pairs_failed")
    PAIRS_EMPTY_OR_IDENTICAL = Stat("pairs_empty_or_identical")
    PAIRS_CHECKED = Stat("pairs_checked")
    BETTER_VERIFIED = Stat("better_verified")
    WORSE_VERIFIED = Stat("worse_verified")
    DROPPED_UNVERIFIED = Stat("dropped_unverified")
    PAIRS_BUILT = Stat("pairs_built")
    JUDGMENTS = Stat("judgments")  # this builder's name for the judge's judgments (the loop reads it)
    JUDGMENTS_CORRECT = Stat("judgments_correct")
    FORCED_AGREEING = Stat("forced_agreeing")
    TARGETS_EXCLUDED = StatFamily("targets_excluded", ("forced", "not_reparsed"))
    PAIRS_NO_CORRECT = Stat("pairs_no_correct")
    DROPPED_MIN_CORRECT = Stat("dropped_min_correct")
    KEPT_BEFORE_BALANCE = Stat("kept_before_balance")
    DROPPED_BALANCE = Stat("dropped_balance")
    ROWS = Stat("rows")
    ROWS_BY_LABEL = StatFamily("rows", VERDICTS)
    ROWS_WITHOUT_REJECTED = Stat("rows_without_rejected")

    LOSSES = (
        Loss(
            SIMILAR_PARSE_FAILURES,
            INSTRUCTIONS,
            "instructions",
            "got no usable similar instruction x' ({s[similar_unfinished]:g} cut by --instruction-max-tokens {c[instruction_max_tokens]} "
            "before the end marker, {s[similar_empty]:g} empty, {s[similar_copy]:g} copies of x, {s[similar_failed]:g} failed)",
            "raise --instruction-max-tokens (x' must end with the end marker within it)",
        ),
        Loss(PAIRS_FAILED, INSTRUCTIONS, "instructions", "lost a response to a failed engine call", RETRY),
        Loss(
            PAIRS_EMPTY_OR_IDENTICAL,
            INSTRUCTIONS,
            "instructions",
            "got an empty response, or the same response to x and x'",
            "raise --response-max-tokens (now {c[response_max_tokens]}) or --temperature",
        ),
        Loss(
            DROPPED_UNVERIFIED,
            INSTRUCTIONS,
            "instructions",
            "had a pair whose y^w did not verify or whose y^l did",
            "drop --require-verified, or use problems the model solves",
        ),
        Loss(
            PAIRS_NO_CORRECT,
            PAIRS_BUILT,
            "pairs built",
            "had no judgment that picks y^w and may be a target ({s[judge_parsed]:g} verdicts parsed, {s[judge_forced]:g} forced, "
            "{s[judge_unparsable]:g} unparsable; of the correct verdicts, {s[targets_excluded_forced]:g} forced)",
            lambda f: (
                "a judge that seldom writes its verdict itself leaves only forced verdicts: --allow-forced-verdicts makes them targets, "
                "or raise --judge-max-tokens (now {}) or use a stronger --judge-model".format(f.c["judge_max_tokens"])
                if f.n(SelfTaughtStats.TARGETS_EXCLUDED["forced"])
                else "raise --num-judgments (now {}), or use a stronger --judge-model".format(f.c["num_judgments"])
            ),
        ),
        Loss(DROPPED_MIN_CORRECT, PAIRS_BUILT, "pairs built", "had fewer correct targets than --min-correct-fraction", "lower --min-correct-fraction"),
        Loss(
            DROPPED_BALANCE,
            KEPT_BEFORE_BALANCE,
            "kept judgments",
            "were dropped to balance A and B (a position-biased judge's correct verdicts are mostly one label)",
            "raise --limit or --num-judgments (now {c[num_judgments]}) so both labels have correct verdicts",
        ),
    )


class SelfTaughtConfig(BaseModel):
    iteration: int = Field(0, ge=0, description="t of the judge M_t writing the judgments (recorded in every row, so loop can chain M_t -> data -> M_t+1)")
    num_judgments: int = Field(
        4,
        ge=1,
        description="judgments sampled per pair (N), in alternating presentation orders (the seed picks the first), so N >= 2 judges every pair both ways",
    )
    keep_per_pair: int = Field(1, ge=1, description="correct judgments kept per pair (paper: 1)")
    min_correct_fraction: float | None = Field(
        None, ge=0.0, le=1.0, description="keep a pair only if at least this fraction of its N judgments is a correct training target (e.g. 0.5: a majority)"
    )
    require_verified: bool = Field(
        False, description="keep a pair only if y^w verifies against the gold answer and y^l does not (pairs without gold are dropped)"
    )
    answer_hint: bool = Field(True, description='ask both responses to end with "The answer is X", so y^w can be checked against gold answers')
    temperature: float = Field(0.7, ge=0.0, description="sampling temperature for x' and the responses")
    top_p: float = Field(0.9, gt=0.0, le=1.0, description="nucleus sampling for x' and the responses")
    instruction_max_tokens: int = Field(128, ge=1, description="token budget of the similar instruction x'")
    response_max_tokens: int = Field(256, ge=1, description="token budget of each response y^w, y^l")
    judge_temperature: float = Field(0.7, ge=0.0, description="judge sampling temperature (paper: 0.7)")
    judge_top_p: float = Field(0.9, gt=0.0, le=1.0, description="judge nucleus sampling (paper: 0.9)")
    judge_max_tokens: int = Field(256, ge=1, description="token budget of one judgment")
    force_verdict: bool = Field(
        True, description="when a judgment has no verdict, continue it with 'Verdict: [[' and draw A or B from the judge's probabilities at --judge-temperature"
    )
    allow_forced_verdicts: bool = Field(
        False, description="let forced verdicts that pick y^w be training targets too (default: they are measured and counted, never trained on)"
    )


@dataclass
class _Pair:
    problem: Problem
    similar: str
    better: str
    worse: str
    better_verified: bool | None
    worse_verified: bool | None
    judgments: list[SampledJudgment] = field(default_factory=list)


def similar_instruction_request(instruction: str, seed: int) -> Request:
    """Ask for x' with the assistant turn already opened by the start marker."""
    return Request.chat(SIMILAR_INSTRUCTION_PROMPT.format(instruction=instruction.strip()), prefix=NEW_INSTRUCTION_START + "\n", seed=seed)


def parse_similar_instruction(completion: Completion, original: str) -> tuple[str | None, SimilarOutcome]:
    """x' from a completion of :func:`similar_instruction_request`, or None and why not (failed/unfinished/empty/copy)."""
    if not completion.ok:
        return None, "failed"
    if completion.finish_reason == "length":
        return None, "unfinished"
    text = completion.text.strip()
    if not text:
        return None, "empty"
    if " ".join(text.lower().split()) == " ".join(original.lower().split()):
        return None, "copy"
    return text, "ok"


def response_message(instruction: str, answer_hint: bool) -> str:
    """The user turn that asks for a response to an instruction (x for y^w, x' for y^l)."""
    return f"{instruction.strip()}\n\n{ANSWER_HINT}" if answer_hint else instruction.strip()


def presentation_order(seed: int, item_id: str, sample: int) -> Verdict:
    """Where y^w is shown in judgment ``sample`` of pair ``item_id``: a seeded coin for sample 0, then alternating.

    Alternating (not a coin per sample) means any two consecutive samples show the pair both ways.
    """
    first_a = derive_seed(seed, item_id, "ste-order", 0) % 2 == 0
    return "A" if first_a == (sample % 2 == 0) else "B"


def target_exclusion(judgment: SampledJudgment, allow_forced: bool) -> TargetExclusion | None:
    """Why a judgment that picks y^w may not be a training target, or None when it may.

    A target's stored text must parse to exactly its label; a forced verdict is one only when allowed.
    """
    if judgment.forced and not allow_forced:
        return "forced"
    if parse_verdict(judgment.text) != judgment.better_shown_as:
        return "not_reparsed"
    return None


def rejected_judgments(judgments: Sequence[SampledJudgment], kept: SampledJudgment, allow_forced: bool, seed: int) -> list[int]:
    """Indices of the judgments that may stand against ``kept`` as a preference pair's rejected side, in a seeded order.

    Same presentation order as ``kept`` (the same prompt), a verdict naming the worse response, a stored
    text that parses to it, and not forced unless forced verdicts may be targets.
    """
    wrong = [
        j.index
        for j in judgments
        if j.better_shown_as == kept.better_shown_as
        and j.verdict is not None
        and not j.correct
        and parse_verdict(j.text) == j.verdict
        and (allow_forced or not j.forced)
    ]
    random.Random(seed).shuffle(wrong)
    return wrong


def choose_judgments(options: Sequence[Sequence[tuple[int, Verdict]]], keep: int, seeds: Sequence[int]) -> list[list[int]]:
    """Up to ``keep`` of each pair's correct judgments (index, verdict), in a seeded random order per pair.

    Where a pair offers both verdicts, the one kept so far less often is taken, so that balancing later
    has less to drop; otherwise the choice is random.
    """
    tally: Counter[str] = Counter()
    chosen: list[list[int]] = []
    for opts, seed in zip(options, seeds, strict=True):
        pool = list(opts)
        random.Random(seed).shuffle(pool)
        picked: list[int] = []
        while pool and len(picked) < keep:
            scarce = None if tally["A"] == tally["B"] else min("AB", key=lambda v: tally[v])
            pick = next((o for o in pool if o[1] == scarce), pool[0])
            pool.remove(pick)
            picked.append(pick[0])
            tally[pick[1]] += 1
        chosen.append(picked)
    return chosen


def balance_verdicts(items: Sequence[T], verdict: Callable[[T], str], seed: int) -> list[T]:
    """``items`` minus a seeded random surplus of the commoner verdict, so "A" and "B" are equally many; order kept."""
    by_verdict = {v: [i for i, item in enumerate(items) if verdict(item) == v] for v in ("A", "B")}
    n = min(map(len, by_verdict.values()))
    rng = random.Random(seed)
    keep = {i for indices in by_verdict.values() for i in rng.sample(indices, n)}
    return [item for i, item in enumerate(items) if i in keep]


class SelfTaughtBuilder(Builder[SelfTaughtConfig]):
    name = "self-taught"
    version = "0.4.0"
    summary = "synthetic pairwise judge data: responses to x vs. to a similar x', judged by M_t, correct verdicts kept and A/B-balanced"
    row_model = SelfTaughtRow
    Config = SelfTaughtConfig
    Stats = SelfTaughtStats
    roles = ("policy", "judge")
    held_out_split = True

    @classmethod
    def needs(cls, config: SelfTaughtConfig) -> tuple[Need, ...]:
        if config.require_verified:
            return (Need("answer", "--require-verified", "y^w must verify against the gold answer and y^l must not", "drop --require-verified"),)
        return ()

    chunk_scoped = "it balances A/B verdicts over each chunk"

    @classmethod
    def estimate(cls, config: SelfTaughtConfig, inputs: Sequence[Problem]) -> list[Calls]:
        cfg, first = config, first_inputs(inputs)
        similar = Calls(
            role="policy",
            stage="similar instructions x'",
            requests=len(inputs),
            max_tokens=cfg.instruction_max_tokens,
            prompts=tuple(similar_instruction_request(p.question, 0) for p in first),
        )
        responses = Calls(
            role="policy",
            stage="responses y^w (to x) and y^l (to x')",
            requests=2 * len(inputs),
            max_tokens=cfg.response_max_tokens,
            prompts=tuple(Request.chat(response_message(p.question, cfg.answer_hint)) for p in first),
            added_tokens=cfg.instruction_max_tokens // 2,  # half the prompts hold x' instead of x
        )
        judge = Calls(
            role="judge",
            stage="judgments",
            requests=len(inputs) * cfg.num_judgments,
            max_tokens=cfg.judge_max_tokens,
            prompts=tuple(Request.chat(response_judge_message(p.question, "", "")) for p in first),
            added_tokens=2 * cfg.response_max_tokens,
        )
        return [similar, responses, judge, *([judge.forced()] if cfg.force_verdict else [])]

    def build(self, problems: list[Problem]) -> list[BaseRow]:
        self.stats.add(SelfTaughtStats.INSTRUCTIONS, len(problems))
        similar = self._similar_instructions(problems)
        pairs = self._pairs([(p, s) for p, s in zip(problems, similar, strict=True) if s is not None])
        self._judge(pairs)
        rows = self._rows(pairs, derive_seed(self.ctx.seed, "ste-balance", *(p.id for p in problems)))
        self.ctx.on_inputs_done(len(problems))
        return rows

    def _params(self, max_tokens: int, stop: tuple[str, ...] = ()) -> SamplingParams:
        cfg = self.config
        return SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=max_tokens, stop=stop, seed=self.ctx.seed)

    def _similar_instructions(self, problems: list[Problem]) -> list[str | None]:
        requests = [similar_instruction_request(p.question, derive_seed(self.ctx.seed, p.id, "ste-similar")) for p in problems]
        outputs = self.ctx.engines["policy"].generate(requests, self._params(self.config.instruction_max_tokens, (NEW_INSTRUCTION_END,)))
        similar = []
        for problem, [completion] in zip(problems, outputs, strict=True):
            text, why = parse_similar_instruction(completion, problem.question)
            if text is None:
                self.stats.add(SelfTaughtStats.SIMILAR_PARSE_FAILURES)
                self.stats.add(SelfTaughtStats.SIMILAR[why])
            similar.append(text)
        return similar

    def _pairs(self, items: list[tuple[Problem, str]]) -> list[_Pair]:
        cfg, seed = self.config, self.ctx.seed
        requests = [
            Request.chat(response_message(text, cfg.answer_hint), seed=derive_seed(seed, p.id, role))
            for p, similar in items
            for text, role in ((p.question, "ste-response-w"), (similar, "ste-response-l"))
        ]
        outputs = self.ctx.engines["policy"].generate(requests, self._params(cfg.response_max_tokens))
        pairs = []
        for k, (problem, similar) in enumerate(items):
            [good], [bad] = outputs[2 * k], outputs[2 * k + 1]
            if not (good.ok and bad.ok):
                self.stats.add(SelfTaughtStats.PAIRS_FAILED)
                continue
            better, worse = good.text.strip(), bad.text.strip()
            if not better or not worse or better == worse:
                self.stats.add(SelfTaughtStats.PAIRS_EMPTY_OR_IDENTICAL)
                continue
            pair = _Pair(problem, similar, better, worse, check_answer(problem, better), check_answer(problem, worse))
            if pair.better_verified is not None:
                self.stats.add(SelfTaughtStats.PAIRS_CHECKED)
                self.stats.add(SelfTaughtStats.BETTER_VERIFIED, pair.better_verified)
                self.stats.add(SelfTaughtStats.WORSE_VERIFIED, bool(pair.worse_verified))
            if cfg.require_verified and not (pair.better_verified and pair.worse_verified is False):
                self.stats.add(SelfTaughtStats.DROPPED_UNVERIFIED)
                continue
            pairs.append(pair)
        self.stats.add(SelfTaughtStats.PAIRS_BUILT, len(pairs))
        return pairs

    def _judge(self, pairs: list[_Pair]) -> None:
        """Sample N judgments per pair in alternating orders (one call), force missing verdicts (one call)."""
        cfg, seed = self.config, self.ctx.seed
        slots: list[tuple[_Pair, int, Verdict]] = []
        requests: list[Request] = []
        for pair in pairs:
            for k in range(cfg.num_judgments):
                shown = presentation_order(seed, pair.problem.id, k)
                a, b = (pair.better, pair.worse) if shown == "A" else (pair.worse, pair.better)
                requests.append(Request.chat(response_judge_message(pair.problem.question, a, b), seed=derive_seed(seed, pair.problem.id, "ste-judge", k)))
                slots.append((pair, k, shown))
        judge = self.ctx.engines["judge"]
        params = SamplingParams(temperature=cfg.judge_temperature, top_p=cfg.judge_top_p, max_tokens=cfg.judge_max_tokens, seed=seed)
        outputs = [c[0] for c in judge.generate(requests, params)]

        def choose(i: int, reading: SlotReading[Verdict]) -> Verdict | None:  # drawn as a sampled token would be
            pair, k, _ = slots[i]
            return draw(reading, cfg.judge_temperature, random.Random(derive_seed(seed, pair.problem.id, "ste-forced", k)))

        settled = settle(judge, JUDGMENT, list(zip(requests, outputs, strict=True)), seed, cfg.force_verdict, choose)
        S = SelfTaughtStats
        for (pair, k, shown), judgment in zip(slots, settled, strict=True):
            if judgment is None:
                self.stats.add(S.FAILED)
                continue
            S.count(self.stats, judgment)
            forced = judgment.forced is not None
            self.stats.add(S.FORCED_AGREEING if forced else S.JUDGMENTS_CORRECT, judgment.verdict == shown)
            pair.judgments.append(
                SampledJudgment(
                    index=k,
                    better_shown_as=shown,
                    text=judgment.text,
                    verdict=judgment.verdict,
                    forced=forced,
                    p_a=judgment.weight("A") if forced else None,
                    correct=judgment.verdict == shown,
                )
            )

    def _rows(self, pairs: list[_Pair], balance_seed: int) -> list[BaseRow]:
        cfg, seed = self.config, self.ctx.seed
        eligible: list[tuple[_Pair, list[SampledJudgment]]] = []
        for pair in pairs:
            targets = []
            for judgment in (j for j in pair.judgments if j.correct):
                why = target_exclusion(judgment, cfg.allow_forced_verdicts)
                if why is None:
                    targets.append(judgment)
                else:
                    self.stats.add(SelfTaughtStats.TARGETS_EXCLUDED[why])
            if not targets:
                self.stats.add(SelfTaughtStats.PAIRS_NO_CORRECT)
            elif cfg.min_correct_fraction is not None and len(targets) / len(pair.judgments) < cfg.min_correct_fraction:
                self.stats.add(SelfTaughtStats.DROPPED_MIN_CORRECT)
            else:
                eligible.append((pair, targets))
        options = [[(j.index, j.better_shown_as) for j in targets] for _, targets in eligible]
        seeds = [derive_seed(seed, pair.problem.id, "ste-keep") for pair, _ in eligible]
        by_index = [{j.index: j for j in targets} for _, targets in eligible]  # a failed judgment left a gap in the indices
        chosen = choose_judgments(options, cfg.keep_per_pair, seeds)
        kept = [(pair, judgments[k]) for (pair, _), judgments, picked in zip(eligible, by_index, chosen, strict=True) for k in picked]
        balanced = balance_verdicts(kept, lambda item: item[1].better_shown_as, balance_seed)
        self.stats.add(SelfTaughtStats.KEPT_BEFORE_BALANCE, len(kept))
        self.stats.add(SelfTaughtStats.DROPPED_BALANCE, len(kept) - len(balanced))
        rows = [self._row(pair, judgment) for pair, judgment in balanced]
        self.stats.add(SelfTaughtStats.ROWS, len(rows))
        self.stats.add(SelfTaughtStats.ROWS_WITHOUT_REJECTED, sum(not row.rejected_indices for row in rows))
        for _, judgment in balanced:
            self.stats.add(SelfTaughtStats.ROWS_BY_LABEL[judgment.better_shown_as])
        built: list[BaseRow] = list(rows)
        return built

    def _row(self, pair: _Pair, kept: SampledJudgment) -> SelfTaughtRow:
        counts = Counter("unparsable" if j.verdict is None else "forced" if j.forced else "parsed" for j in pair.judgments)
        return SelfTaughtRow(
            id=f"{pair.problem.id}/ste-{kept.index}",
            source_id=pair.problem.id,
            meta=self.row_meta(),
            instruction=pair.problem.question,
            similar_instruction=pair.similar,
            better_response=pair.better,
            worse_response=pair.worse,
            gold_answer=pair.problem.answer,
            better_verified=pair.better_verified,
            worse_verified=pair.worse_verified,
            label=kept.better_shown_as,
            judgment=kept.text,
            judgment_index=kept.index,
            judgment_forced=kept.forced,
            judgments=pair.judgments,
            rejected_indices=rejected_judgments(
                pair.judgments, kept, self.config.allow_forced_verdicts, derive_seed(self.ctx.seed, pair.problem.id, "ste-rejected", kept.index)
            ),
            num_judgments=len(pair.judgments),
            num_correct=sum(j.correct for j in pair.judgments),
            num_parsed=counts["parsed"],
            num_forced=counts["forced"],
            num_unparsable=counts["unparsable"],
            iteration=self.config.iteration,
            judge_model=self.ctx.engines["judge"].model_id,
        )

    @classmethod
    def report(cls, stats: Mapping[str, float]) -> list[tuple[str, str]]:
        S = SelfTaughtStats

        def g(stat: Stat) -> float:
            return stat.read(stats)

        def rate(part: float, whole: float) -> str:
            return f"{part:g} / {whole:g} ({part / whole:.0%})" if whole else f"{part:g} / 0"

        similar, excluded, rows = S.SIMILAR.read(stats), S.TARGETS_EXCLUDED.read(stats), S.ROWS_BY_LABEL.read(stats)
        why = " / ".join(f"{similar.get(w, 0):g}" for w in ("failed", "unfinished", "empty", "copy"))
        return [
            ("instructions in", f"{g(S.INSTRUCTIONS):g}"),
            ("x' parse failures (failed / unfinished / empty / copy)", f"{g(S.SIMILAR_PARSE_FAILURES):g} ({why})"),
            (
                "pairs dropped (failed / empty or identical / unverified)",
                f"{g(S.PAIRS_FAILED):g} / {g(S.PAIRS_EMPTY_OR_IDENTICAL):g} / {g(S.DROPPED_UNVERIFIED):g}",
            ),
            ("pairs built", f"{g(S.PAIRS_BUILT):g}"),
            ("gold checks: y^w verified / y^l verified", f"{g(S.BETTER_VERIFIED):g} / {g(S.WORSE_VERIFIED):g} of {g(S.PAIRS_CHECKED):g}"),
            ("judgments sampled (failed, dropped)", f"{g(S.JUDGMENTS):g} ({g(S.FAILED):g})"),
            ("  parsed / forced / unparsable", f"{g(S.PARSED):g} / {g(S.FORCED):g} / {g(S.UNPARSABLE):g}"),
            ("  unparsable because they name both verdicts (never forced)", f"{g(S.CONTRADICTORY):g}"),
            ("correct-verdict rate (parsed verdicts)", rate(g(S.JUDGMENTS_CORRECT), g(S.PARSED))),
            ("forced verdicts agreeing with the label", rate(g(S.FORCED_AGREEING), g(S.FORCED))),
            (
                "correct, not a target: forced (no --allow-forced-verdicts) / text not parsing to the label",
                f"{excluded.get('forced', 0):g} / {excluded.get('not_reparsed', 0):g}",
            ),
            ("pairs with no correct target / below min fraction", f"{g(S.PAIRS_NO_CORRECT):g} / {g(S.DROPPED_MIN_CORRECT):g}"),
            ("kept rows (A / B)", f"{g(S.ROWS):g} ({rows.get('A', 0):g} / {rows.get('B', 0):g})"),
            ("dropped to balance A/B", f"{g(S.DROPPED_BALANCE):g} of {g(S.KEPT_BEFORE_BALANCE):g}"),
            ("kept rows with no incorrect judgment in their order (no DPO pair)", f"{g(S.ROWS_WITHOUT_REJECTED):g}"),
        ]
