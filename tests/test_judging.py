"""The shared pairwise judge: verdict parsing, both-order scoring, knockout, forced verdicts (scripted engine)."""

from __future__ import annotations

import re

from judgeforge.builders.judging import VERDICT_LEAD, CandidateGroup, PairwiseJudge, format_judgment, parse_verdict
from judgeforge.engines.base import Completion, Engine, ProgressFn, Request, SamplingParams


class QualityJudge(Engine):
    """Prefers the candidate with the larger number in it; optionally answers without a verdict."""

    name = "scripted"

    def __init__(self, verdictless: bool = False, position_biased: bool = False) -> None:
        super().__init__("scripted", "none")
        self.verdictless = verdictless
        self.position_biased = position_biased
        self.calls: list[int] = []

    def _generate(self, requests: list[Request], params: SamplingParams, progress: ProgressFn | None) -> list[list[Completion]]:
        self.calls.append(len(requests))
        out = []
        for r in requests:
            if r.prefix.endswith(VERDICT_LEAD):  # forced-verdict continuation
                out.append([Completion(text="A]]")])
                continue
            text = r.messages[-1]["content"]
            a = int(re.search(r"\[Step A\]\n(\d+)", text).group(1))  # type: ignore[union-attr]
            b = int(re.search(r"\[Step B\]\n(\d+)", text).group(1))  # type: ignore[union-attr]
            verdict = "A" if self.position_biased or a > b else "B"
            out.append([Completion(text="I compared them." if self.verdictless else format_judgment("A is bigger" if a > b else "B is bigger", verdict))])
        return out


def group(*cands: str) -> CandidateGroup:
    return CandidateGroup("q", ("Step 1: x",), tuple(cands), seed=1)


def test_parse_verdict() -> None:
    assert parse_verdict("blah\n\nVerdict: [[A]]") == "A"
    assert parse_verdict("[[ B ]]") == "B"
    assert parse_verdict("Final verdict: B") == "B"
    assert parse_verdict("[[A]] ... actually [[B]]") is None
    assert parse_verdict("no idea") is None
    assert parse_verdict(format_judgment("why", "B")) == "B"


def test_all_pairs_scores_are_pairwise_wins_in_both_orders() -> None:
    engine = QualityJudge()
    judge = PairwiseJudge(engine, SamplingParams(temperature=0))
    [ranking] = judge.rank([group("1", "3", "2")], "all-pairs")
    assert ranking.scores == [0, 4, 2]  # 3 beats both in both orders; 2 beats 1 in both orders
    assert ranking.best == 1 and ranking.worst == 0 and not ranking.tied
    assert len(ranking.judgments) == 6 and engine.calls == [6]  # one batched call
    assert judge.stats.parsed == 6


def test_groups_share_one_engine_call_and_identical_or_empty_candidates_skip_the_judge() -> None:
    engine = QualityJudge()
    judge = PairwiseJudge(engine, SamplingParams(temperature=0))
    r1, r2 = judge.rank([group("5", "5"), group("7", "", "1")], "all-pairs")
    assert r1.tied and r1.judgments == []
    assert r2.scores == [4, 0, 2]
    assert engine.calls == [2]  # only 7 vs 1, both orders
    assert judge.stats.skipped_identical == 2 and judge.stats.skipped_empty == 4


def test_position_bias_cancels_into_a_tie() -> None:
    judge = PairwiseJudge(QualityJudge(position_biased=True), SamplingParams(temperature=0))
    [ranking] = judge.rank([group("1", "2", "3")], "all-pairs")
    assert ranking.tied


def test_knockout_uses_n_minus_one_matches() -> None:
    engine = QualityJudge()
    judge = PairwiseJudge(engine, SamplingParams(temperature=0))
    [ranking] = judge.rank([group("4", "9", "2", "6", "1")], "knockout")
    assert ranking.best == 1
    assert len(ranking.judgments) == 2 * 4  # N-1 matches, each in both orders
    assert sum(engine.calls) == 8 and len(engine.calls) == 3  # one call per round


def test_forced_verdicts_are_counted_apart() -> None:
    judge = PairwiseJudge(QualityJudge(verdictless=True), SamplingParams(temperature=0))
    [ranking] = judge.rank([group("1", "2")], "all-pairs")
    assert judge.stats.forced == 2 and judge.stats.parsed == 0 and judge.stats.unparsable == 0
    assert all(j.forced and j.raw.endswith("[[A]]") for j in ranking.judgments)
    unforced = PairwiseJudge(QualityJudge(verdictless=True), SamplingParams(temperature=0), force_verdict=False)
    [ranking] = unforced.rank([group("1", "2")], "all-pairs")
    assert unforced.stats.unparsable == 2 and ranking.tied
