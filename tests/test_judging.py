"""The shared pairwise judge: verdict parsing, both-order scoring, ties, knockout, forced verdicts (scripted engine)."""

from __future__ import annotations

import re

from judgeforge.builders.judging import CandidateGroup, JudgeStats, PairwiseJudge
from judgeforge.engines.base import Completion, Request, SamplingParams
from judgeforge.formats.judge import VERDICT_LEAD, format_judgment, parse_verdict
from tests.scripted import ScriptedEngine, forced


def quality_judge(verdictless: bool = False, position_biased: bool = False, p_a: float | None = None) -> ScriptedEngine:
    """Prefers the candidate with the larger number in it; optionally answers without a verdict, and then a
    forced verdict is the greedy token "A" (``p_a=None``) or has P(A) = ``p_a`` plus a hair for the larger number."""

    def respond(r: Request, params: SamplingParams, k: int) -> Completion | str:
        text = r.messages[-1]["content"]
        a = int(re.search(r"\[Step A\]\n(\d+)", text).group(1))  # type: ignore[union-attr]
        b = int(re.search(r"\[Step B\]\n(\d+)", text).group(1))  # type: ignore[union-attr]
        if r.prefix.endswith(VERDICT_LEAD):  # forced-verdict continuation
            return "A]]" if p_a is None else forced(p_a + (0.01 if a > b else -0.01))
        verdict = "A" if position_biased or a > b else "B"
        return "I compared them." if verdictless else format_judgment("A is bigger" if a > b else "B is bigger", verdict)

    return ScriptedEngine(respond)


def batch_sizes(engine: ScriptedEngine) -> list[int]:
    return [len(batch) for batch in engine.calls]


def group(*cands: str) -> CandidateGroup:
    return CandidateGroup("q", ("Step 1: x",), tuple(cands), seed=1)


def test_parse_verdict() -> None:
    assert parse_verdict("blah\n\nVerdict: [[A]]") == "A"
    assert parse_verdict("[[ B ]]") == "B"
    assert parse_verdict("Final verdict: B") == "B"
    assert parse_verdict("**Verdict:** **A**\nbecause it adds up") == "A"
    assert parse_verdict("VERDICT: Step B.") == "B"
    assert parse_verdict("[[A]] ... actually [[B]]") is None
    assert parse_verdict("no idea") is None
    assert parse_verdict(format_judgment("why", "B")) == "B"


def test_lowercase_or_article_letter_is_not_a_verdict() -> None:
    # The old loose fallback was case-insensitive and read every letter that is not "A" as B.
    assert parse_verdict("Verdict: a") is None
    assert parse_verdict("Verdict: b") is None
    assert parse_verdict("My verdict: a tie") is None
    assert parse_verdict("My verdict: A tie") is None  # an article, not a verdict
    assert parse_verdict("Verdict: A is better") is None  # a sentence: the verdict is forced instead
    assert parse_verdict("[[a]]") is None
    assert parse_verdict("Verdict: AB") is None


def test_contradictory_bracketed_and_loose_verdicts_are_none() -> None:
    # A bracketed verdict used to silence a contradicting loose one.
    assert parse_verdict("Verdict: A\n\nOn reflection, [[B]]") is None
    assert parse_verdict("Verdict: B. Then again: verdict: A.") is None
    assert parse_verdict("Verdict: B\n\n[[B]]") == "B"  # agreeing verdicts are one verdict


def test_forced_verdict_is_never_appended_to_a_contradictory_or_failed_judgment() -> None:
    """Forcing an output that names both verdicts wrote a judgment carrying [[A]] and [[B]]: it stays unparsable,
    counted as contradictory. A failed completion is no judgment at all: it used to be recorded as an empty,
    unparsable judgment; it is dropped and counted as failed, and never forced."""

    def respond(request: Request, params: SamplingParams, k: int) -> Completion | str:
        if request.prefix.endswith(VERDICT_LEAD):
            return forced(0.9)
        if "[Step A]\n1" in request.messages[-1]["content"]:
            return "At first [[A]] seemed right, but on reflection [[B]]."
        return Completion(text="", error="server error")

    judge = PairwiseJudge(ScriptedEngine(respond), SamplingParams(temperature=0))
    [ranking] = judge.rank([group("1", "2")], "all-pairs")
    assert [(j.raw, j.verdict, j.forced) for j in ranking.judgments] == [("At first [[A]] seemed right, but on reflection [[B]].", None, False)]
    stats = judge.stats
    assert stats[JudgeStats.CONTRADICTORY] == 1 and stats[JudgeStats.UNPARSABLE] == 1 and stats[JudgeStats.FORCED] == 0
    assert stats[JudgeStats.FAILED] == 1 and stats[JudgeStats.JUDGMENTS] == 1
    assert ranking.scores == [0, 0] and ranking.tie(0.5) == "exact"


def test_all_pairs_scores_are_pairwise_wins_in_both_orders() -> None:
    engine = quality_judge()
    judge = PairwiseJudge(engine, SamplingParams(temperature=0))
    [ranking] = judge.rank([group("1", "3", "2")], "all-pairs")
    assert ranking.scores == [0, 4, 2] and ranking.wins == [0, 4, 2]  # 3 beats both in both orders; 2 beats 1 in both orders
    assert ranking.best == 1 and ranking.worst == 0 and ranking.tie(0.5) is None and not ranking.decided_by_soft_scores
    assert len(ranking.judgments) == 6 and batch_sizes(engine) == [6]  # one batched call
    assert judge.stats[JudgeStats.PARSED] == 6


def test_groups_share_one_engine_call_and_identical_or_empty_candidates_skip_the_judge() -> None:
    engine = quality_judge()
    judge = PairwiseJudge(engine, SamplingParams(temperature=0))
    r1, r2 = judge.rank([group("5", "5"), group("7", "", "1")], "all-pairs")
    assert r1.judgments == []
    assert r2.scores == [4, 0, 2] and r2.wins == [4, 0, 2]
    assert batch_sizes(engine) == [2]  # only 7 vs 1, both orders
    assert judge.stats[JudgeStats.SKIPPED_IDENTICAL] == 2 and judge.stats[JudgeStats.SKIPPED_EMPTY] == 4


def test_all_identical_candidates_are_not_a_tie() -> None:
    # Compared as the judge sees them (stripped): one distinct candidate is nothing to rank, not a tie.
    judge = PairwiseJudge(quality_judge(), SamplingParams(temperature=0))
    same, two = judge.rank([group("5", " 5", "5 \n"), group("5", " 5", "7")], "all-pairs")
    assert same.identical and same.distinct == 1 and same.tie(0.5) is None and same.judgments == []
    assert not two.identical and two.distinct == 2 and two.best == 2 and two.tie(0.5) is None


def test_position_bias_cancels_into_an_exact_tie() -> None:
    judge = PairwiseJudge(quality_judge(position_biased=True), SamplingParams(temperature=0))
    [ranking] = judge.rank([group("1", "2", "3")], "all-pairs")
    assert ranking.tie(0.5) == "exact" and ranking.tie(0.0) == "exact"


def test_forced_soft_scores_within_epsilon_are_a_tie() -> None:
    # A position-biased forced judge: P(A) = 0.8 ± a hair, so every candidate wins both of its pairs when
    # shown first (a tie on hard verdicts) and the soft scores differ only by the hair.
    judge = PairwiseJudge(quality_judge(verdictless=True, p_a=0.8), SamplingParams(temperature=0))
    [ranking] = judge.rank([group("1", "2", "3")], "all-pairs")
    assert ranking.wins == [2, 2, 2] and 0 < ranking.gap < 0.5
    assert ranking.tie(0.5) == "epsilon"
    assert ranking.tie(0.0) is None and ranking.best == 2 and ranking.decided_by_soft_scores
    assert all(j.forced and j.verdict == "A" and j.p_first is not None for j in ranking.judgments)


def test_knockout_uses_n_minus_one_matches() -> None:
    engine = quality_judge()
    judge = PairwiseJudge(engine, SamplingParams(temperature=0))
    [ranking] = judge.rank([group("4", "9", "2", "6", "1")], "knockout")
    assert ranking.best == 1
    assert len(ranking.judgments) == 2 * 4  # N-1 matches, each in both orders
    assert sum(batch_sizes(engine)) == 8 and len(engine.calls) == 3  # one call per round


def test_forced_verdicts_are_counted_apart() -> None:
    judge = PairwiseJudge(quality_judge(verdictless=True), SamplingParams(temperature=0))
    [ranking] = judge.rank([group("1", "2")], "all-pairs")
    assert judge.stats[JudgeStats.FORCED] == 2 and judge.stats[JudgeStats.PARSED] == 0 and judge.stats[JudgeStats.UNPARSABLE] == 0
    assert all(j.forced and j.raw.endswith("[[A]]") for j in ranking.judgments)
    unforced = PairwiseJudge(quality_judge(verdictless=True), SamplingParams(temperature=0), force_verdict=False)
    [ranking] = unforced.rank([group("1", "2")], "all-pairs")
    assert unforced.stats[JudgeStats.UNPARSABLE] == 2 and ranking.tie(0.5) == "exact"
