"""Property tests of the S2R text format: the verdict parser and the segmentation the builder and rewards share.

Generated verifications hold exactly one verdict line, several (agreeing or contradicting) or none,
in mixed case and markdown, among noise that mentions the verdict words in every way that must not count
("The verdict: correct", "Verdict: not correct", "Verdict: correct or incorrect", "Verdict: correctly").
Generated trajectories are laid out with the builder's own segment functions and must be cut back into
exactly those segments.
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from judgeforge.formats.s2r import (
    RETRY_LEAD,
    VERDICT_LEAD,
    VERIFY_LEAD,
    Verdict,
    attempt_segment,
    parse_trajectory,
    parse_verdict,
    verification_segment,
)

PROSE = st.text(st.sampled_from("abcxyz 0123456789.,!?+=()"), max_size=20)  # no ":" and no newline: never a verdict line
NEAR_MISSES = st.sampled_from(
    [
        "The verdict: correct",
        "My verdict: incorrect",
        "Verdict: not correct",
        "Verdict: not incorrect",
        "Verdict: correct or incorrect",
        "Verdict: incorrect or correct",
        "Verdict: correctly",
        "Verdict: incorrectness",
        "Verdict: in correct",
        "Verdict: correct, since it fits",
        "Verdict: correct?",
        "Verdict: (in)correct",
        "verdict:correct answer",
        "XVerdict: correct",
        "correct",
        "incorrect",
        "CORRECT!",
        "",
    ]
)


@st.composite
def noise_line(draw: st.DrawFn) -> str:
    """A line that mentions verdicts but is no verdict line."""
    return draw(PROSE) + draw(NEAR_MISSES) + draw(PROSE)


@st.composite
def mixed_case(draw: st.DrawFn, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if up else c.lower() for c, up in zip(word, flips, strict=True))


@st.composite
def verdict_line(draw: st.DrawFn, verdict: Verdict) -> str:
    """A verdict line in any case, with markdown, blanks and one final mark around it."""
    mark = draw(st.sampled_from(["", "**", "*", "_"]))
    return (
        draw(st.sampled_from(["", " ", "  ", "\t", "> ", "## "]))
        + mark
        + draw(mixed_case(VERDICT_LEAD))
        + draw(st.sampled_from(["", "**", mark]))
        + draw(st.sampled_from([" ", "", "  ", "\t"]))
        + draw(st.sampled_from(["", "**", "_"]))
        + draw(mixed_case(verdict))
        + draw(st.sampled_from(["", "**", "_"]))
        + draw(st.sampled_from(["", ".", "!"]))
        + draw(st.sampled_from(["", " ", "\r"]))
    )


def verification(noise: list[list[str]], verdicts: list[str]) -> tuple[str, int]:
    """Noise blocks with the verdict lines between them, and where the first verdict line starts."""
    lines, start = list(noise[0]), -1
    for line, block in zip(verdicts, noise[1:], strict=True):
        if start < 0:
            start = sum(len(x) + 1 for x in lines)
        lines += [line, *block]
    return "\n".join(lines), start


NOISE = st.lists(noise_line(), max_size=4)
VERDICTS = st.sampled_from(["correct", "incorrect"])


@given(noise=st.lists(NOISE, min_size=2, max_size=2), verdict=VERDICTS, data=st.data())
def test_s2r_verdict_exactly_one_verdict_line_gives_its_verdict(noise: list[list[str]], verdict: Verdict, data: st.DataObject) -> None:
    text, start = verification(noise, [data.draw(verdict_line(verdict))])
    assert parse_verdict(text) == (verdict, start, 1)


@given(verdict=VERDICTS, data=st.data(), count=st.integers(2, 4))
def test_s2r_verdict_several_agreeing_lines_give_their_verdict(verdict: Verdict, data: st.DataObject, count: int) -> None:
    noise = data.draw(st.lists(NOISE, min_size=count + 1, max_size=count + 1))
    text, start = verification(noise, [data.draw(verdict_line(verdict)) for _ in range(count)])
    assert parse_verdict(text) == (verdict, start, count)


@given(data=st.data(), order=st.permutations(["correct", "incorrect"]), extra=st.lists(VERDICTS, max_size=2))
def test_s2r_verdict_contradicting_lines_give_none(data: st.DataObject, order: list[Verdict], extra: list[Verdict]) -> None:
    verdicts = [*order, *extra]
    noise = data.draw(st.lists(NOISE, min_size=len(verdicts) + 1, max_size=len(verdicts) + 1))
    text, _ = verification(noise, [data.draw(verdict_line(v)) for v in verdicts])
    parsed = parse_verdict(text)
    assert parsed.verdict is None and parsed.contradictory and parsed.lines == len(verdicts)


@given(noise=NOISE)
def test_s2r_verdict_no_verdict_line_gives_none(noise: list[str]) -> None:
    parsed = parse_verdict("\n".join(noise))
    assert parsed == (None, -1, 0) and not parsed.contradictory


# Segment texts: prose and newlines, with the connectors (mid-line or starting a line) and verdict words mixed in.
SEGMENT_TEXT = st.lists(
    st.sampled_from(
        ["The answer is \\boxed{5}.", "x", " ", "\n", "\n\n", "2 + 3", f"so {VERIFY_LEAD}", f"so {RETRY_LEAD}", VERIFY_LEAD, RETRY_LEAD, "the verdict: correct"]
    ),
    min_size=1,
    max_size=8,
).map("".join)


@given(
    attempts=st.lists(SEGMENT_TEXT, min_size=1, max_size=4),
    bodies=st.lists(SEGMENT_TEXT, min_size=4, max_size=4),
)
def test_s2r_segments_round_trip_through_the_builders_layout(attempts: list[str], bodies: list[str]) -> None:
    """split_segments cuts exactly the builder's segments back out of every trajectory the builder can lay out."""
    from judgeforge.formats.s2r import fits_layout, split_segments

    assume(all(a.strip() and fits_layout("attempt", a) for a in attempts))
    checks = [f"{body}\n{VERDICT_LEAD} {'correct' if i == len(attempts) - 1 else 'incorrect'}" for i, body in enumerate(bodies[: len(attempts)])]
    assume(all(fits_layout("verification", c) for c in checks))
    expected = []
    for i, (attempt, check) in enumerate(zip(attempts, checks, strict=True)):
        verdict: Verdict = "correct" if i == len(attempts) - 1 else "incorrect"
        expected += [("attempt", attempt_segment(attempt, first=i == 0)), ("verification", verification_segment(check, verdict))]
    text = "".join(t for _, t in expected)
    assert split_segments(text) == expected
    parsed = parse_trajectory(text)
    assert [p.text for p in parsed] == [a.strip() for a in attempts]
    assert [p.verification for p in parsed] == [c.strip() for c in checks]
    assert [parse_verdict(p.verification or "").verdict for p in parsed] == ["incorrect"] * (len(attempts) - 1) + ["correct"]


@given(text=SEGMENT_TEXT)
def test_s2r_segments_always_add_up_to_the_completion(text: str) -> None:
    from judgeforge.formats.s2r import split_segments

    segments = split_segments(text)
    assert "".join(s.text for s in segments) == text
    assert [s.role for s in segments] == ["attempt", "verification"] * (len(segments) // 2) + ["attempt"] * (len(segments) % 2)
