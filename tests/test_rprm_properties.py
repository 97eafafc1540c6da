"""Property tests of R-PRM's Yes/No verdict parser and of the ProcessBench threshold sweep.

The parser (:func:`judgeforge.formats.rprm.parse_analysis`) gets generated analyses: noise with
exactly one verdict line in the prompt's format, several agreeing or contradicting ones, none, verdicts
in another case, and verdict lines whose answer only looks like a verdict ("No idea", "Yesterday"). The
noise never contains the verdict lead, so what the parser must answer is known by construction. The
sweep (:func:`judgeforge.builders.rprm_score.processbench`) is checked against trying every candidate.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from judgeforge.builders.rprm_score import (
    SolutionRewards,
    ThresholdChoice,
    processbench,
    score_at,
    threshold_candidates,
)
from judgeforge.errors import UserError
from judgeforge.formats.rprm import VERDICT_LEAD, parse_analysis

WORDS = st.sampled_from(["Yes", "No"])
NOISE = st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyzYN STEP0123456789.,:;!?*()-=+\n")), max_size=40).filter(
    lambda s: "verification" not in s.lower()
)
LEADS = st.sampled_from([VERDICT_LEAD, "Verification:  Is the step correct ( Yes / No )?", "Verification: Is the\nstep correct (Yes/No)?"])
OFF_LEADS = st.sampled_from(
    ["verification: is the step correct (yes/no)?", "VERIFICATION: IS THE STEP CORRECT (YES/NO)?", "Verification: is the step correct (Yes/No)?"]
)
# How the answer follows the lead ({w}: the verdict word) and what ends its line: nothing that names a verdict.
ANSWERS = ["{lead} {w}", "{lead}  {w}", "{lead}{w}", "{lead}\n{w}", "{lead}\n\n  {w}", "{lead} **{w}**", "{lead} *{w}*", "{lead} __{w}__", "{lead} **{w}.**"]
ENDS = st.sampled_from(["\n", "\n\n", ".\n", "!\n", ". The sum 2 + 12 = 14 checks out.\n", ", since 3 * 4 = 12\n"])
# Answers that only look like a verdict: a word or phrase that starts like one.
LOOKALIKES = st.sampled_from(["Yesterday", "No idea", "Nothing is wrong", "Yes because it adds up", "Nope", "Noon", "Yess", "No1", "Not sure", "Yes-ish"])


def case_variant(word: str) -> st.SearchStrategy[str]:
    """``word`` in any case but the one the format spells."""
    return (
        st.lists(st.booleans(), min_size=len(word), max_size=len(word))
        .map(lambda upper: "".join(c.upper() if u else c.lower() for c, u in zip(word, upper, strict=True)))
        .filter(lambda w: w != word)
    )


@st.composite
def verdict_line(draw: st.DrawFn, word: str, in_format: bool = True) -> str:
    """A verdict line naming ``word``: in the prompt's format, or off it (another case of the word or the lead)."""
    lead = draw(LEADS)
    if not in_format:
        if draw(st.booleans()):
            word = draw(case_variant(word))
        else:
            lead = draw(OFF_LEADS)
    return draw(st.sampled_from(ANSWERS)).format(lead=lead, w=word) + draw(ENDS)


@st.composite
def lookalike_line(draw: st.DrawFn) -> str:
    return f"{draw(LEADS)} {draw(LOOKALIKES)}{draw(ENDS)}"


@st.composite
def analysis(draw: st.DrawFn, lines: list[str]) -> str:
    """Noise around ``lines`` (verdict and look-alike lines), in a drawn order."""
    parts = [draw(NOISE), "\n"]
    for line in draw(st.permutations(lines)):
        parts += [line, draw(NOISE), "\n"]
    return "".join(parts)


@settings(max_examples=200, deadline=None)
@given(st.data(), WORDS, st.integers(0, 2))
def test_exactly_one_format_verdict_in_noise_is_read_and_kept_up_to_it(data: st.DataObject, word: str, lookalikes: int) -> None:
    text = data.draw(analysis([data.draw(verdict_line(word)), *(data.draw(lookalike_line()) for _ in range(lookalikes))]))
    parsed = parse_analysis(text, "eos")
    assert (parsed.verdict, parsed.status) == (word, "ok")
    assert text.startswith(parsed.text) and re.sub(r"[*_.]+$", "", parsed.text).endswith(word)
    assert parse_analysis(parsed.text)[:2] == (word, "ok")  # the kept target re-parses to its verdict


@settings(max_examples=100, deadline=None)
@given(st.data(), WORDS, st.lists(st.booleans(), min_size=2, max_size=4))
def test_several_agreeing_verdicts_are_several(data: st.DataObject, word: str, formats: list[bool]) -> None:
    text = data.draw(analysis([data.draw(verdict_line(word, in_format)) for in_format in formats]))
    assert parse_analysis(text)[:2] == (None, "several")


@settings(max_examples=100, deadline=None)
@given(st.data(), st.lists(WORDS, max_size=2), st.lists(st.booleans(), min_size=4, max_size=4))
def test_contradicting_verdicts_are_contradictory(data: st.DataObject, extra: list[str], formats: list[bool]) -> None:
    words = ["Yes", "No", *extra]
    text = data.draw(analysis([data.draw(verdict_line(w, f)) for w, f in zip(words, formats, strict=False)]))
    assert parse_analysis(text)[:2] == (None, "contradictory")


@settings(max_examples=100, deadline=None)
@given(st.data(), st.integers(0, 3), st.sampled_from(["eos", "stop", "length"]))
def test_no_verdict_is_none_or_truncated(data: st.DataObject, lookalikes: int, finish: str) -> None:
    text = data.draw(analysis([data.draw(lookalike_line()) for _ in range(lookalikes)]))
    assert parse_analysis(text, finish)[:2] == (None, "truncated" if finish == "length" else "none")


@settings(max_examples=150, deadline=None)
@given(st.data(), WORDS, st.integers(0, 2))
def test_a_verdict_in_another_case_is_off_the_format(data: st.DataObject, word: str, lookalikes: int) -> None:
    text = data.draw(analysis([data.draw(verdict_line(word, in_format=False)), *(data.draw(lookalike_line()) for _ in range(lookalikes))]))
    assert parse_analysis(text, "eos")[:2] == (None, "off_format")


@settings(max_examples=100, deadline=None)
@given(st.data(), st.sampled_from(["Yes/No", "Yes or No", "No, wait: yes", "yes/no", "**Yes** / **No**"]))
def test_a_verdict_line_naming_both_is_both(data: st.DataObject, answer: str) -> None:
    text = data.draw(analysis([f"{data.draw(LEADS)} {answer}\n"]))
    assert parse_analysis(text)[:2] == (None, "both")


# --- the ProcessBench threshold sweep ------------------------------------------------------------------

REWARDS = st.sampled_from([i / 20 for i in range(21)])  # a coarse grid: repeated rewards and ties are common


@st.composite
def solution(draw: st.DrawFn, subset: str = "s") -> SolutionRewards:
    """A scored solution: every step of a correct one, the steps up to the first wrong one of an erroneous one."""
    first_wrong = draw(st.integers(-1, 3))
    length = draw(st.integers(1, 4)) if first_wrong == -1 else first_wrong + 1
    return SolutionRewards(id=str(draw(st.uuids())), subset=subset, first_wrong=first_wrong, rewards=draw(st.lists(REWARDS, min_size=length, max_size=length)))


@settings(max_examples=150, deadline=None)
@given(st.lists(solution(), min_size=2, max_size=12))
def test_the_sweep_picks_the_lowest_threshold_of_best_f1(solutions: list[SolutionRewards]) -> None:
    kinds = {s.first_wrong == -1 for s in solutions}
    choice = ThresholdChoice(threshold="sweep", threshold_split="s")
    if len(kinds) < 2:
        with pytest.raises(UserError, match="needs both"):
            processbench(solutions, choice)
        return
    chosen = processbench(solutions, choice).threshold
    f1 = {t: score_at(solutions, t).f1 for t in threshold_candidates(r for s in solutions for r in s.rewards)}
    best = max(v for v in f1.values() if v is not None)
    assert f1[chosen] == best and chosen == min(t for t, v in f1.items() if v == best)
    assert all((score_at(solutions, t).f1 or 0.0) <= best for t in (i / 100 for i in range(101)))  # no threshold in [0, 1] does better


@settings(max_examples=100, deadline=None)
@given(st.lists(solution("a"), min_size=1, max_size=8), st.lists(solution("b"), min_size=1, max_size=8), REWARDS)
def test_the_figure_is_the_mean_of_the_subsets_f1s(a: list[SolutionRewards], b: list[SolutionRewards], threshold: float) -> None:
    result = processbench([*a, *b], ThresholdChoice(threshold=threshold))
    f1s = [score_at(a, threshold).f1, score_at(b, threshold).f1]
    assert result.f1 == (None if None in f1s else pytest.approx(sum(f for f in f1s if f is not None) / 2))
    assert processbench(a, ThresholdChoice(threshold=threshold)).f1 == score_at(a, threshold).f1  # one subset: the pooled F1


def test_sweep_ties_go_to_the_lowest_threshold_and_undefined_subsets_leave_the_mean_undefined() -> None:
    # Rewards 0.05, 0.1, 0.15, 0.2, 0.3: candidates 0, 0.075, 0.125, 0.175, 0.25, 1. "e" is judged right above 0.1, "c1" up to
    # 0.2, "c2" up to 0.05: 0.125 and 0.175 both judge e and c1 right (F1 2/3); the lower is chosen.
    solutions = [
        SolutionRewards(id="e", subset="s", first_wrong=0, rewards=[0.1]),
        SolutionRewards(id="c1", subset="s", first_wrong=-1, rewards=[0.2, 0.3]),
        SolutionRewards(id="c2", subset="s", first_wrong=-1, rewards=[0.15, 0.05]),
    ]
    assert threshold_candidates(r for s in solutions for r in s.rewards) == pytest.approx([0.0, 0.075, 0.125, 0.175, 0.25, 1.0])
    result = processbench(solutions, ThresholdChoice(threshold="sweep", threshold_split="s"))
    assert result.threshold == pytest.approx(0.125) and result.f1 == pytest.approx(2 / 3)
    assert score_at(solutions, 0.175).f1 == result.f1
    with pytest.raises(UserError, match="has 0 erroneous and 2 correct solutions"):
        processbench(solutions[1:], ThresholdChoice(threshold="sweep", threshold_split="s"))
    mixed = processbench([*solutions, SolutionRewards(id="x", subset="t", first_wrong=-1, rewards=[0.9])], ThresholdChoice())
    assert mixed.subsets["t"].f1 is None and mixed.f1 is None
