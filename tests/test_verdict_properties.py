"""Property tests of the pairwise A/B verdict parser (:func:`judgeforge.formats.judge.parse_verdict`).

Generated judge outputs: noise with exactly one verdict, several agreeing or contradicting ones, none,
lower-case letters and articles that only look like verdicts, and keywords in any case. The noise never
contains a verdict keyword or brackets, so what the parser must answer is known by construction.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from judgeforge.formats.judge import format_judgment, parse_verdict

LETTERS = st.sampled_from(["A", "B"])
KEYWORDS = st.sampled_from(["Verdict", "verdict", "VERDICT", "Final verdict", "My verdict", "Final Verdict"])
NOISE = st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyzAB STEP0123456789.,:;!?*()-=+\n")), max_size=40).filter(
    lambda s: "verdict" not in s.lower()
)
BEFORE = st.sampled_from([" ", "\n", "\n\n", ". "])  # a loose verdict's keyword starts a word
AFTER = st.sampled_from(["\n", "\n\n", ". ", "! ", ", so "])  # ... and its letter closes the clause

# Verdict forms a judge writes: (template, whether it is a verdict). "{v}" is the keyword, "{x}" the letter.
VALID = ["[[{x}]]", "[[ {x} ]]", "{v}: [[{x}]]", "{v}: {x}", "**{v}:** {x}", "{v}: **{x}**", "{v} - {x}", "{v}: Step {x}", "{v}: [{x}]", "{v}:{x}"]
LOOKALIKE = ["[[{l}]]", "{v}: {l}", "{v}: {l} tie", "{v}: {x} tie", "{v}: {x} is better", "{v}: {x}{x}", "{v}: [[{l}]]", "{v}: Step {l}"]


@st.composite
def verdict_form(draw: st.DrawFn, letter: str, valid: bool = True) -> str:
    template = draw(st.sampled_from(VALID if valid else LOOKALIKE))
    return template.format(v=draw(KEYWORDS), x=letter, l=letter.lower())


@st.composite
def judge_output(draw: st.DrawFn, letters: list[str], lookalikes: list[str]) -> str:
    """Noise with a verdict form for each of ``letters`` and a look-alike for each of ``lookalikes``, shuffled."""
    forms = [draw(verdict_form(x)) for x in letters] + [draw(verdict_form(x, valid=False)) for x in lookalikes]
    parts = [draw(NOISE)]
    for form in draw(st.permutations(forms)):
        parts += [draw(BEFORE), form, draw(AFTER), draw(NOISE)]
    return "".join(parts)


@settings(max_examples=150, deadline=None)
@given(st.data(), LETTERS)
def test_exactly_one_verdict_in_noise_is_read(data: st.DataObject, letter: str) -> None:
    assert parse_verdict(data.draw(judge_output([letter], []))) == letter


@settings(max_examples=100, deadline=None)
@given(st.data(), LETTERS, st.integers(2, 4))
def test_several_agreeing_verdicts_are_one_verdict(data: st.DataObject, letter: str, n: int) -> None:
    assert parse_verdict(data.draw(judge_output([letter] * n, []))) == letter


@settings(max_examples=100, deadline=None)
@given(st.data(), st.lists(LETTERS, min_size=0, max_size=3))
def test_contradicting_verdicts_are_none(data: st.DataObject, extra: list[str]) -> None:
    assert parse_verdict(data.draw(judge_output(["A", "B", *extra], []))) is None


@settings(max_examples=100, deadline=None)
@given(NOISE)
def test_noise_without_a_verdict_is_none(text: str) -> None:
    assert parse_verdict(text) is None


@settings(max_examples=150, deadline=None)
@given(st.data(), st.lists(LETTERS, min_size=1, max_size=3))
def test_lowercase_letters_and_articles_are_not_verdicts(data: st.DataObject, lookalikes: list[str]) -> None:
    assert parse_verdict(data.draw(judge_output([], lookalikes))) is None


@settings(max_examples=150, deadline=None)
@given(st.data(), LETTERS, st.lists(LETTERS, min_size=1, max_size=3))
def test_lookalikes_neither_add_nor_contradict_a_verdict(data: st.DataObject, letter: str, lookalikes: list[str]) -> None:
    assert parse_verdict(data.draw(judge_output([letter], lookalikes))) == letter


@settings(max_examples=100, deadline=None)
@given(NOISE, LETTERS)
def test_the_canonical_judgment_round_trips(explanation: str, letter: str) -> None:
    assert parse_verdict(format_judgment(explanation, letter)) == letter  # type: ignore[arg-type]
