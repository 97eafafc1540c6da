"""The pairwise LLM-as-a-judge: one ranking procedure over the judge format of :mod:`judgeforge.formats.judge`.

Step-prefs judges candidate next steps with it; EFT trains models on judgments in exactly this format,
so a model trained on EFT judges in the format the step search parses. The prompt follows the
MT-Bench pairwise style (Zheng et al., 2023): the problem, the previous steps, step A, step B, a short
explanation, then a verdict ``[[A]]`` or ``[[B]]``. Every pair is judged in both presentation orders to
cancel position bias; a candidate's score is its number of pairwise wins, score_i = Σ_{j≠i} O(s_i, s_j)
(Zhang et al., 2025, arXiv 2503.03746). When an output carries no verdict the judge can *force* one by
continuing its own output with ``Verdict: [[`` and reading the next token (:mod:`judgeforge.formats.verdicts`)
— counted separately, so the manifest tells parsed, forced and unparsable verdicts apart. A judgment
whose engine call failed is no judgment: it is dropped and counted (``judge_failed``), never forced and
never recorded as an empty text. A forced verdict is soft when the engine
returns log-probabilities: the first candidate wins P(A) / (P(A) + P(B)) of the comparison and the second
the rest, so a judge that merely prefers whichever step it saw first scores both candidates alike
instead of handing out arbitrary wins. Parsed verdicts are hard wins, as in the paper.

A :class:`Ranking` keeps both signals: ``scores`` (the soft wins above, what orders candidates) and
``wins`` (every judgment's verdict, parsed or forced, as one whole win), plus the number of distinct
candidates as the judge saw them (stripped). Fewer than two distinct candidates is not a tie: there is
nothing to compare. Whether best and worst tie is :meth:`Ranking.tie`'s question, asked with the
caller's epsilon: an exact tie (equal scores) or a score gap below the epsilon. Parsed verdicts give
whole-number scores, so any epsilon in (0, 1] is the paper's exact-tie rule; forced soft verdicts can
separate two candidates by a hair, and :meth:`Ranking.decided_by_soft_scores` tells when a step the
caller accepts would have tied (or gone the other way) on hard verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from judgeforge.builders.base import BuilderStats, Counters, Stat
from judgeforge.engines.base import Engine, Request, SamplingParams, derive_seed
from judgeforge.formats.judge import JUDGMENT, Verdict, judge_user_message
from judgeforge.formats.verdicts import Settled, settle

Strategy = Literal["all-pairs", "knockout"]


class Judgment(BaseModel):
    """One ordered comparison: candidate ``first`` shown as A, ``second`` as B."""

    first: int
    second: int
    raw: str
    verdict: str | None
    forced: bool = False
    p_first: float | None = None


@dataclass(frozen=True)
class CandidateGroup:
    """The candidates for one next step of one problem, to be ranked against each other."""

    question: str
    previous_steps: tuple[str, ...]
    candidates: tuple[str, ...]
    seed: int


TieKind = Literal["exact", "epsilon"]
_FLOAT_NOISE = 1e-9
"""Score gaps this small are summation noise, not a judgment: they count as exact ties."""


@dataclass
class Ranking:
    """One group's outcome: soft ``scores`` (the ranking signal), hard ``wins``, every judgment."""

    scores: list[float]
    wins: list[int]
    distinct: int
    judgments: list[Judgment] = field(default_factory=list)

    @property
    def best(self) -> int:
        return max(range(len(self.scores)), key=lambda i: (self.scores[i], -i))

    @property
    def worst(self) -> int:
        return min(range(len(self.scores)), key=lambda i: (self.scores[i], -i))

    @property
    def identical(self) -> bool:
        """Fewer than two distinct candidates (as the judge sees them): nothing was compared."""
        return self.distinct < 2

    @property
    def gap(self) -> float:
        return self.scores[self.best] - self.scores[self.worst]

    def tie(self, epsilon: float) -> TieKind | None:
        """Whether best and worst tie: ``exact`` (equal scores) or ``epsilon`` (a gap below ``epsilon``)."""
        if self.identical:
            return None
        if self.gap <= _FLOAT_NOISE:
            return "exact"
        return "epsilon" if self.gap < epsilon else None

    @property
    def decided_by_soft_scores(self) -> bool:
        """Best beats worst on soft scores only: on hard verdicts they tie, or worst has more wins."""
        return not self.identical and self.wins[self.best] <= self.wins[self.worst]


class JudgeStats(BuilderStats):
    """The pairwise judge's counters, shared by the builders that rank with it (their ``Stats`` extend these)."""

    JUDGMENTS = Stat("judge_judgments")
    PARSED = Stat("judge_parsed")
    FORCED = Stat("judge_forced")
    UNPARSABLE = Stat("judge_unparsable")
    CONTRADICTORY = Stat("judge_contradictory")
    FAILED = Stat("judge_failed")
    SKIPPED_IDENTICAL = Stat("judge_skipped_identical")
    SKIPPED_EMPTY = Stat("judge_skipped_empty")

    @classmethod
    def count(cls, stats: Counters, judgment: Settled[Verdict]) -> None:
        """Count one judgment by how its verdict came."""
        stats.add(cls.JUDGMENTS)
        stats.add(cls.CONTRADICTORY, judgment.status == "contradictory")
        stats.add({"parsed": cls.PARSED, "forced": cls.FORCED, "unparsable": cls.UNPARSABLE}[judgment.how])


Match = tuple[int, int, int]
"""(group, x, y): candidates x and y of one group, judged in both orders."""


class PairwiseJudge:
    """Ranks groups of candidates with batched pairwise judgments (all groups share each engine call)."""

    def __init__(self, engine: Engine, params: SamplingParams, force_verdict: bool = True) -> None:
        self.engine = engine
        self.params = params
        self.force_verdict = force_verdict
        self.stats = Counters(JudgeStats)
        for stat in JudgeStats.plain():  # every judge counter is in the manifest, 0 when nothing was judged
            self.stats.add(stat, 0)

    def rank(self, groups: Sequence[CandidateGroup], strategy: Strategy) -> list[Ranking]:
        rankings = [Ranking(scores=[0.0] * len(g.candidates), wins=[0] * len(g.candidates), distinct=len({c.strip() for c in g.candidates})) for g in groups]
        if strategy == "all-pairs":
            matches = [(g, i, j) for g, group in enumerate(groups) for i in range(len(group.candidates)) for j in range(i + 1, len(group.candidates))]
            self._play(groups, rankings, matches)
            return rankings
        alive = [list(range(len(g.candidates))) for g in groups]
        while any(len(a) > 1 for a in alive):
            matches = [(g, a[k], a[k + 1]) for g, a in enumerate(alive) for k in range(0, len(a) - 1, 2)]
            margins = self._play(groups, rankings, matches)
            for g, a in enumerate(alive):
                winners = [x if margins[(g, x, y)] >= 0 else y for x, y in zip(a[0::2], a[1::2], strict=False)]
                alive[g] = winners + (a[-1:] if len(a) % 2 else [])
        return rankings

    def _play(self, groups: Sequence[CandidateGroup], rankings: list[Ranking], matches: list[Match]) -> dict[Match, float]:
        """Judge every match in both orders; add soft and hard wins; return x's soft wins minus y's per match."""
        requests: list[Request] = []
        slots: list[tuple[Match, int, int]] = []
        margin: dict[Match, float] = {}
        for match in matches:
            g, x, y = match
            group = groups[g]
            margin[match] = 0.0
            cx, cy = group.candidates[x].strip(), group.candidates[y].strip()
            if cx == cy:
                self.stats.add(JudgeStats.SKIPPED_IDENTICAL, 2)
                continue
            if not cx or not cy:
                self.stats.add(JudgeStats.SKIPPED_EMPTY, 2)
                winner = x if cx else y
                rankings[g].scores[winner] += 2
                rankings[g].wins[winner] += 2
                margin[match] = 2.0 if winner == x else -2.0
                continue
            for first, second in ((x, y), (y, x)):
                text = judge_user_message(group.question, group.previous_steps, group.candidates[first], group.candidates[second])
                requests.append(Request.chat(text, seed=derive_seed(group.seed, "judge", first, second)))
                slots.append((match, first, second))
        outputs = [c[0] for c in self.engine.generate(requests, self.params)]
        settled = settle(self.engine, JUDGMENT, list(zip(requests, outputs, strict=True)), self.params.seed, self.force_verdict)
        for (match, first, second), judgment in zip(slots, settled, strict=True):
            if judgment is None:
                self.stats.add(JudgeStats.FAILED)
                continue
            JudgeStats.count(self.stats, judgment)
            weight = judgment.weight("A")
            ranking = rankings[match[0]]
            ranking.judgments.append(
                Judgment(
                    first=first,
                    second=second,
                    raw=judgment.text,
                    verdict=judgment.verdict,
                    forced=judgment.forced is not None,
                    p_first=weight if judgment.forced else None,
                )
            )
            if weight is not None:
                ranking.scores[first] += weight
                ranking.scores[second] += 1 - weight
                ranking.wins[first if judgment.verdict == "A" else second] += 1
                margin[match] += (2 * weight - 1) * (1 if first == match[1] else -1)
        return margin
