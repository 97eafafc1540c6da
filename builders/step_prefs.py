"""Step-wise preference pairs by self-judged step search (Process-based Self-Rewarding, stage M_i → M_{i+1}).

Zhang et al., "Process-based Self-Rewarding Language Models", ACL Findings 2025, arXiv 2503.03746. For
every problem the policy M_i grows a solution one step at a time. At step l it samples N candidate next
steps (paper: N = 6, T = 0.5, top_p = 0.95, cut at the step delimiter) — one batched engine call for
all problems still searching. The judge (by default M_i itself: self-rewarding) compares candidates
pairwise in both orders; score_i = Σ_{j≠i} O(s_i, s_j). The best step becomes chosen *and* the
continuation, the worst becomes rejected. When best and worst tie, the paper drops that step's pair
and rolls back one step (the previous step and its pair are removed); we bound the rollbacks per
problem so a problem cannot loop forever. The search stops at a final answer or after ``max_steps``
(paper: 20); the finished solution's answer is checked against the gold answer.

Ties. A judgment without a verdict can be forced (:mod:`judgeforge.builders.judging`), and a forced
verdict is soft — the first candidate wins P(A) / (P(A) + P(B)) of it — so exact ties all but vanish
once verdicts are forced, which would silently switch the paper's rollback off. A step is therefore a
tie when best and worst score exactly alike (``tied_steps_exact``) *or* their gap is below
``--tie-epsilon`` (``tied_steps_epsilon``; default half a pairwise win). Parsed verdicts give
whole-number scores, so with parsed verdicts any epsilon in (0, 1] is exactly the paper's rule. A step
accepted although on hard verdicts (each verdict, parsed or forced, one whole win) its best and worst
tie, or the worst has more wins, was decided by soft scores alone: it is kept and counted
(``steps_decided_by_soft_scores``), never silently.

Failed and identical candidates. A candidate whose engine call failed is no candidate: it is dropped
and counted (``failed_candidates``), never judged as an empty step (which could become ``rejected``).
When fewer than two distinct candidates (stripped, as the judge sees them) remain, there is nothing to
compare and nothing to prefer: the step is accepted with that candidate as its continuation, no pair
is written, and it is counted (``identical_steps``) — it is not a tie and spends no rollback. When no
candidate remains, or the one left is blank, there is no step to accept: the search ends
(``no_candidates``, counted as ``empty_steps``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from judgeforge.builders.base import RETRY, Builder, Calls, Loss, Stat, StatFamily, first_inputs
from judgeforge.builders.judging import CandidateGroup, JudgeStats, PairwiseJudge, Ranking, TieKind
from judgeforge.engines.base import Completion, Request, SamplingParams, derive_seed
from judgeforge.formats.judge import judge_user_message
from judgeforge.formats.steps import STEP_STOPS, format_step, next_step_request, solution_text, step_body
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.step_prefs import StepJudgment, StepPrefsRow
from judgeforge.sources import Problem
from judgeforge.verify import check_answer, extract_answer, has_final_answer


class StepPrefsConfig(BaseModel):
    num_candidates: int = Field(6, ge=2, description="candidate next steps sampled per step (paper: 6)")
    max_steps: int = Field(20, ge=1, description="stop a solution after this many steps (paper: 20)")
    temperature: float = Field(0.5, ge=0.0, description="sampling temperature for candidate steps (paper: 0.5)")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling for candidate steps (paper: 0.95)")
    max_step_tokens: int = Field(128, ge=1, description="token budget of one step")
    judge_strategy: Literal["all-pairs", "knockout"] = Field(
        "all-pairs", description="all-pairs: N(N-1) ordered judgments; knockout: a bracket of N-1 matches, for large N"
    )
    judge_temperature: float = Field(0.0, ge=0.0, description="judge sampling temperature (0 = greedy)")
    judge_max_tokens: int = Field(256, ge=1, description="token budget of one judgment")
    force_verdict: bool = Field(True, description="when a judgment has no verdict, continue it with 'Verdict: [[' and read one token")
    tie_epsilon: float = Field(
        0.5,
        ge=0.0,
        description="best and worst tie (pair dropped, search rolled back) when their scores differ by less than this; "
        "parsed verdicts give whole-number scores, so any value in (0, 1] is the paper's exact-tie rule, while forced soft "
        "verdicts (P(A)/(P(A)+P(B))) need it to count as a tie what they split by a hair; 0 = exact ties only. "
        "The manifest counts exact and epsilon ties apart, and steps decided by soft scores although hard verdicts tie",
    )
    max_rollbacks: int = Field(4, ge=0, description="tie rollbacks allowed per problem before its search is abandoned")


SearchStatus = Literal["final_answer", "max_steps", "rollback_limit", "no_candidates"]
STATUSES: tuple[SearchStatus, ...] = ("final_answer", "max_steps", "rollback_limit", "no_candidates")
TIE_KINDS: tuple[TieKind, ...] = ("exact", "epsilon")


class StepPrefsStats(JudgeStats):
    PAIRS = Stat("pairs")
    CANDIDATES = Stat("candidates")
    FAILED_CANDIDATES = Stat("failed_candidates")
    EMPTY_STEPS = Stat("empty_steps")
    IDENTICAL_STEPS = Stat("identical_steps")
    TIED_STEPS = Stat("tied_steps")
    TIED = StatFamily("tied_steps", TIE_KINDS)
    ROLLBACKS = Stat("rollbacks")
    STEPS_DECIDED_BY_SOFT_SCORES = Stat("steps_decided_by_soft_scores")
    STATUS = StatFamily("status", STATUSES)
    SOLUTIONS_CHECKED = Stat("solutions_checked")
    SOLUTIONS_CORRECT = Stat("solutions_correct")
    STEPS = Stat("steps_searched")

    LOSSES = (
        Loss(FAILED_CANDIDATES, CANDIDATES, "candidates", "failed (engine errors)", RETRY),
        Loss(
            EMPTY_STEPS,
            STEPS,
            "steps searched",
            "had no candidate left (every sample failed or was blank) and ended their search",
            "raise --max-step-tokens (now {c[max_step_tokens]})",
        ),
        Loss(
            IDENTICAL_STEPS,
            STEPS,
            "steps searched",
            "had one distinct candidate: nothing to compare, so no pair",
            "raise --temperature (now {c[temperature]:g}) or --num-candidates (now {c[num_candidates]})",
        ),
        Loss(
            TIED_STEPS,
            STEPS,
            "steps searched",
            lambda f: (
                f"tied best and worst candidate ({f.n(StepPrefsStats.TIED['exact']):g} exactly, {f.n(StepPrefsStats.TIED['epsilon']):g} within "
                f"--tie-epsilon {f.c['tie_epsilon']:g}; {f.n(JudgeStats.FORCED):g} of {f.n(JudgeStats.JUDGMENTS):g} verdicts were forced): "
                "a tie writes no pair and rolls the search back"
            ),
            lambda f: (
                "a judge whose verdicts are forced splits candidates by a hair: --tie-epsilon 0 keeps steps decided by soft scores (counted), "
                "or use a stronger --judge-model"
                if f.n(StepPrefsStats.TIED["epsilon"])
                else "raise --num-candidates or --temperature for candidates the judge tells apart, or use a stronger --judge-model"
            ),
        ),
        Loss(
            STATUS["rollback_limit"],
            "inputs",
            "problems",
            "were abandoned after --max-rollbacks {c[max_rollbacks]} ties",
            "raise --max-rollbacks, or see tied_steps",
        ),
    )


@dataclass
class _Pair:
    step_index: int
    previous: list[str]
    candidates: list[str]
    finals: list[bool]
    ranking: Ranking


@dataclass
class _Search:
    problem: Problem
    steps: list[str] = field(default_factory=list)
    pairs: list[_Pair | None] = field(default_factory=list)  # one per step; None for a step accepted without a pair
    attempts: int = 0
    rollbacks: int = 0
    status: SearchStatus | None = None

    @property
    def active(self) -> bool:
        return self.status is None


class StepPrefsBuilder(Builder[StepPrefsConfig]):
    name = "step-prefs"
    version = "0.3.0"
    summary = "step-wise preference pairs from a self-judged step search (step-wise DPO data)"
    row_model = StepPrefsRow
    Config = StepPrefsConfig
    Stats = StepPrefsStats
    roles = ("policy", "judge")

    @classmethod
    def estimate(cls, config: StepPrefsConfig, inputs: Sequence[Problem]) -> list[Calls]:
        cfg = config
        # One prompt per step of each first problem, the earlier steps as their headers ("Step 1:"): the bodies
        # a search writes into them are at most max_step_tokens each, (max_steps - 1) / 2 of them on average.
        partial = [(p, [format_step(i, "") for i in range(1, step)]) for p in first_inputs(inputs) for step in range(1, cfg.max_steps + 1)]
        bodies = cfg.max_step_tokens * (cfg.max_steps - 1) // 2
        attempts = len(inputs) * cfg.max_steps  # every search runs to max_steps; a tie rollback (not counted) adds a step
        n = cfg.num_candidates
        steps = Calls(
            role="policy",
            stage="candidate steps (tie rollbacks not counted)",
            requests=attempts,
            samples=n,
            max_tokens=cfg.max_step_tokens,
            prompts=tuple(next_step_request(p.question, previous, 0) for p, previous in partial),
            added_tokens=bodies,
        )
        judge = Calls(
            role="judge",
            stage="pairwise judgments",
            requests=attempts * (n * (n - 1) if cfg.judge_strategy == "all-pairs" else 2 * (n - 1)),
            max_tokens=cfg.judge_max_tokens,
            prompts=tuple(Request.chat(judge_user_message(p.question, previous, "", "")) for p, previous in partial),
            added_tokens=bodies + 2 * cfg.max_step_tokens,
        )
        return [steps, judge, *([judge.forced()] if cfg.force_verdict else [])]

    def build(self, problems: list[Problem]) -> list[BaseRow]:
        cfg = self.config
        policy, judge_engine = self.ctx.engines["policy"], self.ctx.engines["judge"]
        judge = PairwiseJudge(
            judge_engine,
            SamplingParams(temperature=cfg.judge_temperature, max_tokens=cfg.judge_max_tokens, seed=self.ctx.seed),
            force_verdict=cfg.force_verdict,
        )
        step_params = SamplingParams(
            n=cfg.num_candidates, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_step_tokens, stop=STEP_STOPS, seed=self.ctx.seed
        )
        searches = [_Search(p) for p in problems]
        while active := [s for s in searches if s.active]:
            requests = [
                next_step_request(s.problem.question, s.steps, derive_seed(self.ctx.seed, s.problem.id, "step", len(s.steps) + 1, s.attempts)) for s in active
            ]
            outputs = policy.generate(requests, step_params)
            groups = [self._group(s, completions) for s, completions in zip(active, outputs, strict=True)]
            rankings = judge.rank([g for g, _ in groups], cfg.judge_strategy)
            for search, (group, finals), ranking in zip(active, groups, rankings, strict=True):
                self._advance(search, group, finals, ranking)
                if not search.active:
                    self.ctx.on_inputs_done(1)
        self.stats.merge(judge.stats)
        return [row for s in searches for row in self._rows(s)]

    def _group(self, search: _Search, completions: list[Completion]) -> tuple[CandidateGroup, list[bool]]:
        """The candidates the judge ranks: every completed sample (a failed one is dropped and counted)."""
        bodies, finals = [], []
        for c in completions:
            if not c.ok:
                self.stats.add(StepPrefsStats.FAILED_CANDIDATES)
                continue
            body = step_body(c)
            bodies.append(body)
            finals.append(c.finish_reason == "eos" or has_final_answer(body))
        self.stats.add(StepPrefsStats.CANDIDATES, len(completions))
        seed = derive_seed(self.ctx.seed, search.problem.id, "judge", len(search.steps) + 1, search.attempts)
        return CandidateGroup(search.problem.question, tuple(search.steps), tuple(bodies), seed), finals

    def _advance(self, search: _Search, group: CandidateGroup, finals: list[bool], ranking: Ranking) -> None:
        search.attempts += 1
        self.stats.add(StepPrefsStats.STEPS)
        if ranking.identical:
            if not group.candidates or not group.candidates[0].strip():
                self.stats.add(StepPrefsStats.EMPTY_STEPS)
                search.status = "no_candidates"
                return
            self.stats.add(StepPrefsStats.IDENTICAL_STEPS)
            self._accept(search, group.candidates[0], finals[0], None)
            return
        tie = ranking.tie(self.config.tie_epsilon)
        if tie is not None:
            self.stats.add(StepPrefsStats.TIED_STEPS)
            self.stats.add(StepPrefsStats.TIED[tie])
            if search.rollbacks >= self.config.max_rollbacks:
                search.status = "rollback_limit"
                return
            search.rollbacks += 1
            self.stats.add(StepPrefsStats.ROLLBACKS)
            if search.steps:
                search.steps.pop()
                search.pairs.pop()
            return
        self.stats.add(StepPrefsStats.STEPS_DECIDED_BY_SOFT_SCORES, ranking.decided_by_soft_scores)
        pair = _Pair(len(search.steps) + 1, list(search.steps), list(group.candidates), finals, ranking)
        self._accept(search, group.candidates[ranking.best], finals[ranking.best], pair)

    def _accept(self, search: _Search, body: str, is_final: bool, pair: _Pair | None) -> None:
        """Append the next step (and its pair, if it has one); end the search at a final answer or ``max_steps``."""
        search.pairs.append(pair)
        search.steps.append(format_step(len(search.steps) + 1, body))
        if is_final:
            search.status = "final_answer"
        elif len(search.steps) >= self.config.max_steps:
            search.status = "max_steps"

    def _rows(self, search: _Search) -> list[StepPrefsRow]:
        problem = search.problem
        assert search.status is not None  # rows are made once every search has ended
        self.stats.add(StepPrefsStats.STATUS[search.status])
        solution = solution_text(search.steps)
        correct = check_answer(problem, solution) if search.status == "final_answer" else (False if problem.answer is not None else None)
        if correct is not None:
            self.stats.add(StepPrefsStats.SOLUTIONS_CHECKED)
            self.stats.add(StepPrefsStats.SOLUTIONS_CORRECT, correct)
        rows = []
        for pair in filter(None, search.pairs):
            r = pair.ranking
            rows.append(
                StepPrefsRow(
                    id=f"{problem.id}/step-{pair.step_index}",
                    source_id=problem.id,
                    meta=self.row_meta(),
                    question=problem.question,
                    previous_steps=pair.previous,
                    step_index=pair.step_index,
                    chosen=pair.candidates[r.best],
                    rejected=pair.candidates[r.worst],
                    chosen_is_final=pair.finals[r.best],
                    rejected_is_final=pair.finals[r.worst],
                    chosen_score=r.scores[r.best],
                    rejected_score=r.scores[r.worst],
                    candidates=pair.candidates,
                    candidate_scores=r.scores,
                    judgments=[StepJudgment(**j.model_dump()) for j in r.judgments],
                    judge_unparsable=sum(1 for j in r.judgments if j.verdict is None),
                    gold_answer=problem.answer,
                    final_answer=extract_answer(solution),
                    solution_correct=correct,
                    solution_status=search.status,
                )
            )
        self.stats.add(StepPrefsStats.PAIRS, len(rows))
        return rows

    @classmethod
    def report(cls, stats: Mapping[str, float]) -> list[tuple[str, str]]:
        S = StepPrefsStats

        def n(stat: Stat) -> str:
            return f"{stat.read(stats):g}"

        checked = S.SOLUTIONS_CHECKED.read(stats)
        tied = S.TIED.read(stats)
        return [
            ("preference pairs", n(S.PAIRS)),
            ("candidate steps sampled (failed, dropped)", f"{n(S.CANDIDATES)} ({n(S.FAILED_CANDIDATES)})"),
            ("judgments (failed, dropped)", f"{n(S.JUDGMENTS)} ({n(S.FAILED)})"),
            ("  parsed / forced / unparsable", f"{n(S.PARSED)} / {n(S.FORCED)} / {n(S.UNPARSABLE)}"),
            ("tied steps: exact / epsilon", f"{n(S.TIED_STEPS)}: {tied.get('exact', 0):g} / {tied.get('epsilon', 0):g}"),
            ("steps decided by soft scores", n(S.STEPS_DECIDED_BY_SOFT_SCORES)),
            ("identical steps (no pair)", n(S.IDENTICAL_STEPS)),
            ("final-answer accuracy", f"{S.SOLUTIONS_CORRECT.read(stats) / checked:.1%} of {checked:g}" if checked else "-"),
            ("search ended by", ", ".join(f"{k} {v:g}" for k, v in sorted(S.STATUS.read(stats).items()))),
        ]
