"""EFT data: pairwise next-step judgments grounded in Monte-Carlo rollouts (M0 → M1, judge half).

Process-based Self-Rewarding (Zhang et al., 2025, arXiv 2503.03746) builds its EFT set from MCTS
candidate steps ranked by a PRM: the best and worst step at the same depth form a pair, a strong model
writes a pairwise judgment, and the judgment is kept only when it agrees with the PRM in both orders.
Offline we have no PRM, so the label comes from rollouts: for each problem we take a prefix of its gold
solution (random depth, seeded; ``--depth first`` takes none, the only depth a source without gold
solutions allows: the build refuses such a source otherwise), sample candidate next steps from the
policy, estimate each candidate's value as the fraction of R completions from it that reach the gold answer (a candidate that already
states an answer is valued by that answer), and pair the best with the worst when their values differ by
at least ``--min-gap``. Candidates are distinct as the judge sees them (stripped); a candidate none of
whose rollouts finished has no value and is dropped (counted), never ranked as the worst. The judge
(``--judge-model``, default the policy itself) then judges the pair in both orders with the shared
pairwise prompt; only judgments agreeing with the rollout label in both orders are kept, and both
orders are emitted, so "A is better" and "B is better" balance exactly. A candidate sample or a
judgment whose engine call failed is dropped and counted (``failed_candidates``, ``judge_failed``); a pair
missing a judgment in either order is dropped (``dropped_judge_failed``), never judged as empty.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from judgeforge.builders.base import MAP_ANSWERS, RETRY, Builder, Calls, Loss, Need, Stat, StatFamily, first_inputs
from judgeforge.builders.judging import CandidateGroup, JudgeStats, Judgment, PairwiseJudge
from judgeforge.builders.rollouts import RolloutStats, rollout_values
from judgeforge.engines.base import Request, SamplingParams, derive_seed
from judgeforge.formats.judge import VERDICTS, Verdict, format_judgment, judge_user_message
from judgeforge.formats.steps import STEP_STOPS, format_step, gold_steps, next_step_request, step_body
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.eft import EftRow
from judgeforge.sources import Problem
from judgeforge.verify import check_answer, has_final_answer


class EftConfig(BaseModel):
    depth: Literal["random", "last", "first"] = Field(
        "random",
        description="which gold step the candidates replace: a random one (seeded), the last, answer-stating one, or the first "
        "(no gold prefix: the only depth a source without gold solutions allows)",
    )
    num_candidates: int = Field(4, ge=2, description="candidate next steps sampled at the chosen depth")
    rollouts: int = Field(4, ge=1, description="Monte-Carlo completions per candidate step (R)")
    min_gap: float = Field(0.5, ge=0.0, le=1.0, description="minimum rollout-value gap between the better and the worse step")
    temperature: float = Field(0.7, ge=0.0, description="sampling temperature for candidates and rollouts (paper's MCTS: 0.7)")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling for candidates and rollouts (paper: 0.95)")
    max_step_tokens: int = Field(96, ge=1, description="token budget of one candidate step")
    rollout_max_tokens: int = Field(256, ge=1, description="token budget of one rollout (the rest of the solution)")
    judge_temperature: float = Field(0.0, ge=0.0, description="judge sampling temperature (0 = greedy)")
    judge_max_tokens: int = Field(256, ge=1, description="token budget of one judgment")
    force_verdict: bool = Field(True, description="when a judgment has no verdict, continue it with 'Verdict: [[' and read one token")
    allow_forced_verdicts: bool = Field(
        False,
        description="keep pairs whose agreeing judgment was forced as training targets (default: forced verdicts are measured and counted, never trained on)",
    )
    judgment_source: Literal["judge", "rollouts"] = Field(
        "judge",
        description="judge: the judge model writes judgments, kept when they agree with the rollout label in both orders "
        "(the paper); rollouts: write each judgment from the rollout evidence itself (no judge call; for judges too weak to agree)",
    )


class EftStats(JudgeStats, RolloutStats):
    PROBLEMS = Stat("problems")
    NO_GOLD_ANSWER = Stat("no_gold_answer")
    CANDIDATES = Stat("candidates")
    FAILED_CANDIDATES = Stat("failed_candidates")
    CANDIDATES_NO_FINISHED_ROLLOUT = Stat("candidates_no_finished_rollout")
    TOO_FEW_CANDIDATES = Stat("too_few_candidates")
    PAIRS_CONSIDERED = Stat("pairs_considered")
    DROPPED_GAP = Stat("dropped_gap")
    AGREE_GOOD_FIRST = Stat("agree_good_first")
    AGREE_GOOD_SECOND = Stat("agree_good_second")
    DROPPED_JUDGE_FAILED = Stat("dropped_judge_failed")
    DROPPED_INCONSISTENT = Stat("dropped_inconsistent")
    DROPPED_FORCED = Stat("dropped_forced")
    PAIRS_KEPT = Stat("pairs_kept")
    ROWS = Stat("rows")
    LABEL = StatFamily("label", VERDICTS)

    _VERDICTS = "the judge's verdicts: {s[judge_parsed]:g} parsed, {s[judge_forced]:g} forced, {s[judge_unparsable]:g} unparsable"
    LOSSES = (
        Loss(NO_GOLD_ANSWER, PROBLEMS, "problems", "have no gold answer to value candidates by", MAP_ANSWERS),
        Loss(
            CANDIDATES_NO_FINISHED_ROLLOUT,
            CANDIDATES,
            "candidates",
            "had no rollout that finished within --rollout-max-tokens {c[rollout_max_tokens]} ({s[rollouts_unfinished]:g} of {s[rollouts]:g} rollouts were cut)",
            "raise --rollout-max-tokens",
        ),
        Loss(
            TOO_FEW_CANDIDATES,
            PROBLEMS,
            "problems",
            "had fewer than two distinct candidates with a rollout value ({s[candidates]:g} candidates, "
            "{s[candidates_no_finished_rollout]:g} without a finished rollout)",
            "raise --num-candidates (now {c[num_candidates]}) or --rollout-max-tokens (now {c[rollout_max_tokens]})",
        ),
        Loss(
            DROPPED_GAP,
            PAIRS_CONSIDERED,
            "pairs considered",
            "had best and worst rollout values closer than --min-gap {c[min_gap]:g}",
            "lower --min-gap, or raise --rollouts (now {c[rollouts]}) or --num-candidates so values spread",
        ),
        Loss(DROPPED_JUDGE_FAILED, PAIRS_CONSIDERED, "pairs considered", "lost a judgment to a failed engine call", RETRY),
        Loss(
            DROPPED_INCONSISTENT,
            PAIRS_CONSIDERED,
            "pairs considered",
            "were not judged for the better step in both orders (" + _VERDICTS + ")",
            "a stronger --judge-model, or --judgment-source rollouts to write each judgment from the rollout evidence",
        ),
        Loss(
            DROPPED_FORCED,
            PAIRS_CONSIDERED,
            "pairs considered",
            "agreed with the rollouts only through forced verdicts (" + _VERDICTS + ")",
            "--allow-forced-verdicts keeps them as targets; or a stronger --judge-model, or --judgment-source rollouts",
        ),
    )


def distinct_candidates(bodies: Iterable[str]) -> list[str]:
    """Candidate step bodies, one per text the judge sees (stripped), first occurrence kept; empty ones dropped.

    The pairwise judge compares stripped candidates, so two bodies that differ only in surrounding
    whitespace are one candidate: kept apart, they could be paired and get no judgment at all.
    """
    kept: dict[str, str] = {}
    for body in bodies:
        kept.setdefault(body.strip(), body)
    kept.pop("", None)
    return list(kept.values())


def _evidence_judgment(pair: tuple[Problem, list[str], str, str, float, float], rollouts: int, better_slot: Verdict) -> Judgment:
    """A judgment written from the rollout values alone, showing the better step in ``better_slot``."""
    _, _, _, _, v_good, v_bad = pair
    worse_slot = "B" if better_slot == "A" else "A"
    text = (
        f"Continuing the solution from Step {better_slot} reaches the correct final answer {v_good:.0%} of the time "
        f"({rollouts} tries), from Step {worse_slot} only {v_bad:.0%} of the time, so Step {better_slot} is the better next step."
    )
    first, second = (0, 1) if better_slot == "A" else (1, 0)
    return Judgment(first=first, second=second, raw=format_judgment(text, better_slot), verdict=better_slot)


class EftBuilder(Builder[EftConfig]):
    name = "eft"
    version = "0.2.0"
    summary = "pairwise next-step judgments labelled by Monte-Carlo rollouts, kept when consistent in both orders"
    row_model = EftRow
    Config = EftConfig
    Stats = EftStats
    roles = ("policy", "judge")
    held_out_split = True

    @classmethod
    def needs(cls, config: EftConfig) -> tuple[Need, ...]:
        answer = Need("answer", "", "a candidate's value is the share of its rollouts that reach the gold answer")
        if config.depth == "first":
            return (answer,)
        return (answer, Need("solution", f"--depth {config.depth}", "candidates continue a prefix of the gold solution", "--depth first"))

    @classmethod
    def estimate(cls, config: EftConfig, inputs: Sequence[Problem]) -> list[Calls]:
        cfg = config
        problems = [p for p in inputs if p.answer is not None]
        first = first_inputs(problems)
        prefixes = [(p, gold_steps(p)[:-1]) for p in first]  # the longest prefix a seeded depth can give
        candidates = Calls(
            role="policy",
            stage="candidate steps",
            requests=len(problems),
            samples=cfg.num_candidates,
            max_tokens=cfg.max_step_tokens,
            prompts=tuple(next_step_request(p.question, prefix, 0) for p, prefix in prefixes),
        )
        rollouts = Calls(
            role="policy",
            stage="rollouts (one per candidate without an answer)",
            requests=len(problems) * cfg.num_candidates,
            samples=cfg.rollouts,
            max_tokens=cfg.rollout_max_tokens,
            prompts=candidates.prompts,
            added_tokens=cfg.max_step_tokens,
        )
        if cfg.judgment_source == "rollouts":
            return [candidates, rollouts]
        judge = Calls(
            role="judge",
            stage="judgments (the pair in both orders)",
            requests=2 * len(problems),
            max_tokens=cfg.judge_max_tokens,
            prompts=tuple(Request.chat(judge_user_message(p.question, prefix, "", "")) for p, prefix in prefixes),
            added_tokens=2 * cfg.max_step_tokens,
        )
        return [candidates, rollouts, judge, *([judge.forced()] if cfg.force_verdict else [])]

    def build(self, items: list[Problem]) -> list[BaseRow]:
        cfg, seed = self.config, self.ctx.seed
        policy = self.ctx.engines["policy"]
        problems = [p for p in items if p.answer is not None]
        self.stats.add(EftStats.PROBLEMS, len(items))
        self.stats.add(EftStats.NO_GOLD_ANSWER, len(items) - len(problems))
        prefixes = [self._prefix(p) for p in problems]

        step_params = SamplingParams(
            n=cfg.num_candidates, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_step_tokens, stop=STEP_STOPS, seed=seed
        )
        requests = [next_step_request(p.question, prefix, derive_seed(seed, p.id, "eft-step")) for p, prefix in zip(problems, prefixes, strict=True)]
        outputs = policy.generate(requests, step_params)
        self.stats.add(EftStats.FAILED_CANDIDATES, sum(not c.ok for out in outputs for c in out))
        candidates = [distinct_candidates(step_body(c) for c in out if c.ok) for out in outputs]
        self.stats.add(EftStats.CANDIDATES, sum(map(len, candidates)))

        pairs: list[tuple[Problem, list[str], str, str, float, float]] = []
        for problem, prefix, scored in zip(problems, prefixes, self._values(problems, prefixes, candidates), strict=True):
            cands = [c for c, v in scored if v is not None]
            vals = [v for _, v in scored if v is not None]
            self.stats.add(EftStats.CANDIDATES_NO_FINISHED_ROLLOUT, len(scored) - len(cands))
            if len(cands) < 2:
                self.stats.add(EftStats.TOO_FEW_CANDIDATES)
                continue
            self.stats.add(EftStats.PAIRS_CONSIDERED)
            best = max(range(len(cands)), key=lambda i: (vals[i], -i))
            worst = min(range(len(cands)), key=lambda i: (vals[i], -i))
            if vals[best] - vals[worst] < cfg.min_gap:
                self.stats.add(EftStats.DROPPED_GAP)
                continue
            pairs.append((problem, prefix, cands[best], cands[worst], vals[best], vals[worst]))

        rows: list[BaseRow] = []
        if cfg.judgment_source == "rollouts":
            for pair in pairs:
                rows.extend(self._rows(pair, _evidence_judgment(pair, cfg.rollouts, "A"), _evidence_judgment(pair, cfg.rollouts, "B")))
        else:
            judge = PairwiseJudge(
                self.ctx.engines["judge"], SamplingParams(temperature=cfg.judge_temperature, max_tokens=cfg.judge_max_tokens, seed=seed), cfg.force_verdict
            )
            groups = [CandidateGroup(p.question, tuple(prefix), (good, bad), derive_seed(seed, p.id, "eft-judge")) for p, prefix, good, bad, _, _ in pairs]
            for pair, ranking in zip(pairs, judge.rank(groups, "all-pairs"), strict=True):
                by_order = {(j.first, j.second): j for j in ranking.judgments}
                if (0, 1) in by_order and (1, 0) in by_order:
                    rows.extend(self._rows(pair, by_order[(0, 1)], by_order[(1, 0)]))
                else:
                    self.stats.add(EftStats.DROPPED_JUDGE_FAILED)
            self.stats.merge(judge.stats)
        self.ctx.on_inputs_done(len(items))
        return rows

    def _prefix(self, problem: Problem) -> list[str]:
        """A gold-solution prefix ending before the step the candidates replace; empty without gold steps."""
        gold = gold_steps(problem)
        if not gold or self.config.depth == "first":
            return []
        if self.config.depth == "last":
            return gold[:-1]
        return gold[: random.Random(derive_seed(self.ctx.seed, problem.id, "eft-depth")).randint(1, len(gold)) - 1]

    def _values(self, problems: list[Problem], prefixes: list[list[str]], candidates: list[list[str]]) -> list[list[tuple[str, float | None]]]:
        """Every candidate with its rollout value (None: no rollout finished); one that already states an
        answer is valued by it."""
        cfg = self.config
        jobs = [
            (problem, [*prefix, format_step(len(prefix) + 1, body)])
            for problem, prefix, cands in zip(problems, prefixes, candidates, strict=True)
            for body in cands
            if not has_final_answer(body)
        ]
        params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.rollout_max_tokens, seed=self.ctx.seed)
        results = iter(rollout_values(self.ctx.engines["policy"], jobs, cfg.rollouts, params, self.ctx.seed))
        values = []
        for problem, cands in zip(problems, candidates, strict=True):
            row: list[tuple[str, float | None]] = []
            for body in cands:
                if has_final_answer(body):
                    row.append((body, 1.0 if check_answer(problem, body) else 0.0))
                    continue
                result = next(results)
                result.count(self.stats)
                row.append((body, result.value))
            values.append(row)
        return values

    def _rows(self, pair: tuple[Problem, list[str], str, str, float, float], good_first: Judgment, good_second: Judgment) -> list[EftRow]:
        problem, prefix, good, bad, v_good, v_bad = pair
        agree_first, agree_second = good_first.verdict == "A", good_second.verdict == "B"
        self.stats.add(EftStats.AGREE_GOOD_FIRST, agree_first)
        self.stats.add(EftStats.AGREE_GOOD_SECOND, agree_second)
        if not (agree_first and agree_second):
            self.stats.add(EftStats.DROPPED_INCONSISTENT)
            return []
        if (good_first.forced or good_second.forced) and not self.config.allow_forced_verdicts:
            self.stats.add(EftStats.DROPPED_FORCED)
            return []
        self.stats.add(EftStats.PAIRS_KEPT)
        pair_id = f"{problem.id}/eft-step-{len(prefix) + 1}"
        common = dict(
            source_id=problem.id,
            meta=self.row_meta(),
            pair_id=pair_id,
            question=problem.question,
            previous_steps=prefix,
            step_index=len(prefix) + 1,
            rollouts=self.config.rollouts,
            gold_answer=problem.answer,
            judge_raw_better_first=good_first.raw,
            judge_raw_better_second=good_second.raw,
        )
        self.stats.add(EftStats.ROWS, 2)
        self.stats.add(EftStats.LABEL["A"])
        self.stats.add(EftStats.LABEL["B"])
        return [
            EftRow(
                id=f"{pair_id}/AB",
                step_a=good,
                step_b=bad,
                label="A",
                judgment=good_first.raw,
                forced_verdict=good_first.forced,
                value_a=v_good,
                value_b=v_bad,
                **common,
            ),
            EftRow(
                id=f"{pair_id}/BA",
                step_a=bad,
                step_b=good,
                label="B",
                judgment=good_second.raw,
                forced_verdict=good_second.forced,
                value_a=v_bad,
                value_b=v_good,
                **common,
            ),
        ]

    @classmethod
    def report(cls, stats: Mapping[str, float]) -> list[tuple[str, str]]:
        S = EftStats

        def n(stat: Stat) -> str:
            return f"{stat.read(stats):g}"

        def rate(part: float, whole: float) -> str:
            return f"{part:g} / {whole:g} ({part / whole:.0%})" if whole else f"{part:g} / 0"

        considered = S.PAIRS_CONSIDERED.read(stats)
        gap_ok = considered - S.DROPPED_GAP.read(stats)
        labels = S.LABEL.read(stats)
        return [
            ("candidates (dropped: no finished rollout; failed)", f"{n(S.CANDIDATES)} ({n(S.CANDIDATES_NO_FINISHED_ROLLOUT)}; {n(S.FAILED_CANDIDATES)})"),
            ("problems with fewer than two valued candidates", n(S.TOO_FEW_CANDIDATES)),
            ("pairs considered", f"{considered:g}"),
            ("kept by the value gap", rate(gap_ok, considered)),
            ("judgments parsed / forced / unparsable", f"{n(S.PARSED)} / {n(S.FORCED)} / {n(S.UNPARSABLE)} of {n(S.JUDGMENTS)}"),
            ("pairs dropped: a judgment failed", n(S.DROPPED_JUDGE_FAILED)),
            ("consistent in both orders", rate(S.PAIRS_KEPT.read(stats) + S.DROPPED_FORCED.read(stats), gap_ok)),
            ("dropped: a forced verdict (no --allow-forced-verdicts)", n(S.DROPPED_FORCED)),
            ("pairs kept", n(S.PAIRS_KEPT)),
            ("rows (A / B)", f"{n(S.ROWS)} ({labels.get('A', 0):g} / {labels.get('B', 0):g})"),
            ("rollouts (unfinished / failed)", f"{n(S.ROLLOUTS)} ({n(S.ROLLOUTS_UNFINISHED)} / {n(S.ROLLOUTS_FAILED)})"),
        ]
