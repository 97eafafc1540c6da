"""The S2R text layout: how attempts and self-verifications follow each other in one assistant turn.

S2R (Ma et al., ACL 2025, arXiv 2502.12853) trains a policy to write, in one response, an attempt, a
verification of it, and — when the verification rejects it — another attempt, until a verification
confirms an answer: r = {s1, v1, s2, v2, ..., sk, vk}. The builder assembles such trajectories from
the policy's own samples and verifications (:func:`attempt_segment`, :func:`verification_segment`), and
the RL rewards cut a policy completion back into the very same segments (:func:`split_segments`, its
exact inverse) and read the answer that stands at the end (:func:`final_attempt`). All of it lives in
this one module, so the connectors between segments, the verdict line and the prompts can never drift
apart.

Layout (our own wording; the paper's script joins segments with similar fixed phrases)::

    <attempt 1>

    Let me check this answer.
    <verification 1, ending in "Verdict: incorrect">

    That was wrong, so let me solve the problem again.

    <attempt 2>

    Let me check this answer.
    <verification 2, ending in "Verdict: correct">

A verification segment starts with the blank line before its lead and, when it rejects, ends with the
retry connector; the next attempt starts with the blank line after it. Connectors count only at the
start of a line, so a sentence that happens to contain one does not cut a segment; a text that has one
at the start of a line cannot be laid out unambiguously (:func:`fits_layout`) and the builder does not
use it.

The verdict line: a verification's verdict is read only from a line that, apart from surrounding blanks
and markdown emphasis, is exactly ``Verdict: correct`` or ``Verdict: incorrect`` (one final "." or "!"
allowed). Case does not matter — unlike a pairwise judge's "A", no word here changes meaning with case —
but the words must stand alone: "Verdict: not correct", "Verdict: correct or incorrect", "The verdict:
correct" and "Verdict: correctly" are no verdict lines, and lines giving both verdicts contradict each
other and leave none. :data:`VERIFICATION` declares these verdicts for
:mod:`judgeforge.formats.verdicts`: a verification without a verdict line (and without contradicting
ones) is forced by continuing it with a blank line and ``Verdict:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NamedTuple

from judgeforge.formats.verdicts import Parsed, VerdictFormat, Vocabulary

Verdict = Literal["correct", "incorrect"]
SegmentRole = Literal["attempt", "verification"]
Style = Literal["problem-solving", "confirmative"]
STYLES: tuple[Style, ...] = ("problem-solving", "confirmative")

POLICY_INSTRUCTIONS = "Work through the problem below step by step, then write the final answer inside \\boxed{}."
VERIFY_LEAD = "Let me check this answer."
RETRY_LEAD = "That was wrong, so let me solve the problem again."  # no "answer is": extract_answer would read it
VERDICT_LEAD = "Verdict:"
SEPARATOR = "\n\n"

_STYLE_INSTRUCTIONS: dict[Style, str] = {
    "problem-solving": (
        "Below is a problem and a proposed final answer. Check the answer by solving the problem again on "
        "your own, briefly, and comparing your result with the proposed answer."
    ),
    "confirmative": (
        "Below is a problem and a proposed final answer. Do not solve the problem from scratch. Instead, take "
        "the proposed answer as given and test it against the problem: put it back into the conditions, or "
        "work backwards from it, and see whether everything fits."
    ),
}
_VERDICT_RULE = f'End with one line, "{VERDICT_LEAD} correct" if the answer is right or "{VERDICT_LEAD} incorrect" if it is wrong.'
_VERDICT_LINE = re.compile(rf"(?im)^[ \t>#*_]*{re.escape(VERDICT_LEAD)}[ \t*_]*(correct|incorrect)[ \t*_]*[.!]?[ \t*_]*\r?$")
_VERIFY_START = re.compile(rf"\s*^{re.escape(VERIFY_LEAD)}", re.MULTILINE)  # a verification takes the blank line before its lead
_RETRY_LINE = re.compile(rf"^{re.escape(RETRY_LEAD)}", re.MULTILINE)


def policy_user_message(question: str) -> str:
    """The user turn the policy answers, in Stage-0 sampling, in the SFT view and in the RL prompts."""
    return f"{POLICY_INSTRUCTIONS}\n\nProblem: {question.strip()}"


def policy_messages(question: str) -> list[dict[str, str]]:
    """The chat the policy sees for ``question``."""
    return [{"role": "user", "content": policy_user_message(question)}]


def verify_user_message(style: Style, question: str, answer: str) -> str:
    """The style-specific prompt that asks the model to verify a proposed final answer."""
    return f"{_STYLE_INSTRUCTIONS[style]} {_VERDICT_RULE}\n\nProblem: {question.strip()}\n\nProposed answer: {answer}"


class VerdictParse(NamedTuple):
    """What a verification's verdict lines say: the verdict (None when absent or contradictory), where
    the first verdict line starts (-1 without a verdict) and how many verdict lines there are."""

    verdict: Verdict | None
    start: int
    lines: int

    @property
    def contradictory(self) -> bool:
        return self.verdict is None and self.lines > 0


def parse_verdict(text: str) -> VerdictParse:
    """Read the ``Verdict: correct|incorrect`` line(s) of a verification (see the module docstring).

    Several lines giving the same verdict give it; lines giving both contradict each other and give none.
    """
    found = list(_VERDICT_LINE.finditer(text))
    verdicts = {m.group(1).lower() for m in found}
    if len(verdicts) != 1:
        return VerdictParse(None, -1, len(found))
    verdict: Verdict = "correct" if verdicts == {"correct"} else "incorrect"
    return VerdictParse(verdict, found[0].start(), len(found))


def verdict_line(verdict: Verdict) -> str:
    return f"{VERDICT_LEAD} {verdict}"


def read_verification(text: str, finish_reason: str = "stop") -> Parsed[Verdict]:
    """A verification's verdict, its text cut after the first verdict line (written canonically, so it
    carries exactly one); without one, ``contradictory`` (never forced) or ``none`` (forceable)."""
    parsed = parse_verdict(text)
    if parsed.verdict is not None:
        return Parsed(parsed.verdict, "ok", text[: parsed.start] + verdict_line(parsed.verdict), False)
    return Parsed(None, "contradictory", text, False) if parsed.contradictory else Parsed(None, "none", text, True)


def _verdict_slot(text: str, finish_reason: str) -> str:
    return f"{text.rstrip()}{SEPARATOR}{VERDICT_LEAD}".lstrip()


def _spell(verdict: Verdict) -> str:
    return f" {verdict}"


VERIFICATION: VerdictFormat[Verdict] = VerdictFormat(Vocabulary(("correct", "incorrect"), case_sensitive=False), read_verification, _verdict_slot, _spell)


def attempt_segment(attempt: str, first: bool) -> str:
    """The text of an attempt segment (every attempt after the first starts on a new paragraph)."""
    return attempt.strip() if first else SEPARATOR + attempt.strip()


def verification_segment(verification: str, verdict: Verdict) -> str:
    """The text of a verification segment: the lead, the verification, and the retry connector if it rejects."""
    text = f"{SEPARATOR}{VERIFY_LEAD}\n{verification.strip()}"
    return text + (f"{SEPARATOR}{RETRY_LEAD}" if verdict == "incorrect" else "")


def fits_layout(role: SegmentRole, text: str) -> bool:
    """Whether ``text`` can be laid out as a segment of ``role`` and cut back out of the trajectory exactly.

    An attempt must not hold a line starting with the verification lead, a verification no line starting
    with the retry connector: :func:`split_segments` would cut the segment there.
    """
    connector = _VERIFY_START if role == "attempt" else _RETRY_LINE
    return connector.search(text.strip()) is None


class SegmentText(NamedTuple):
    """One segment cut out of a completion: its role and its exact text, connectors included."""

    role: SegmentRole
    text: str


def split_segments(text: str) -> list[SegmentText]:
    """Cut a completion into attempt and verification segments, exactly as the builder lays them out.

    The inverse of :func:`attempt_segment` / :func:`verification_segment`: for a trajectory the builder
    made, the segments come back with their exact texts, and for any text the segments' texts add up to
    it. Segments alternate, starting with an attempt (possibly empty): an attempt runs until a line
    starting with the verification lead (the blank line before it goes to the verification), a
    verification until the end of a line-initial retry connector, after which the next attempt starts.
    """
    segments: list[SegmentText] = []
    pos = 0
    role: SegmentRole = "attempt"
    while True:
        if role == "attempt":
            found = _VERIFY_START.search(text, pos)
            cut = found.start() if found else len(text)
        else:
            found = _RETRY_LINE.search(text, pos)
            cut = found.end() if found else len(text)
        segments.append(SegmentText(role, text[pos:cut]))
        if found is None:
            return segments
        pos = cut
        role = "verification" if role == "attempt" else "attempt"


@dataclass(frozen=True)
class ParsedAttempt:
    """One attempt of a completion and the verification that follows it (None when it has none), each
    without its connectors and surrounding blanks."""

    text: str
    verification: str | None


def parse_trajectory(text: str) -> list[ParsedAttempt]:
    """The attempts of a completion, each with the verification that follows it (:func:`split_segments`).

    A completion written without any lead is one attempt with no verification.
    """
    segments = split_segments(text)
    attempts = [s.text.strip() for s in segments[0::2]]
    checks = [_verification_body(s.text) for s in segments[1::2]]
    return [ParsedAttempt(a, checks[i] if i < len(checks) else None) for i, a in enumerate(attempts)]


def final_attempt(text: str) -> str | None:
    """The attempt whose answer stands at the end of a completion, or None when none does.

    S2R's trajectory ends when a verification confirms an attempt, so the final state is the last
    attempt *as judged by its own verification*: it stands when that verification's verdict is
    "correct". When the last attempt is rejected ("incorrect") and no attempt follows, when its
    verification gives no verdict (or contradicting ones), or when it was never verified (the completion
    stopped, or was cut off, before checking it), no answer stands. An earlier attempt never stands in
    for the last one: writing another attempt withdraws the ones before it.
    """
    last = parse_trajectory(text)[-1]
    if last.verification is None or parse_verdict(last.verification).verdict != "correct":
        return None
    return last.text


def _verification_body(segment: str) -> str:
    """A verification segment's own text: without the lead before it and the retry connector after it."""
    body = segment.strip().removeprefix(VERIFY_LEAD)
    return body.removesuffix(RETRY_LEAD).strip() if _RETRY_LINE.search(body) else body.strip()
