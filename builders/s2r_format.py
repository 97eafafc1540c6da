"""The S2R text layout: how attempts and self-verifications follow each other in one assistant turn.

S2R (Ma et al., ACL 2025, arXiv 2502.12853) trains a policy to write, in one response, an attempt, a
verification of it, and — when the verification rejects it — another attempt, until a verification
confirms an answer: r = {s1, v1, s2, v2, ..., sk, vk}. The builder assembles such trajectories from
the policy's own samples and verifications, the SFT view tokenises them segment by segment, and the RL
rewards cut a policy completion back into (attempt, verification) pairs. All three go through this one
module, so the connectors between segments, the verdict line and the prompts can never drift apart.

Layout (our own wording; the paper's script joins segments with similar fixed phrases)::

    <attempt 1>

    Let me check this answer.
    <verification 1, ending in "Verdict: incorrect">

    That was wrong, so let me solve the problem again.

    <attempt 2>

    Let me check this answer.
    <verification 2, ending in "Verdict: correct">

Every segment after the first starts with a blank line, so a segment boundary is also a token
boundary and segments can be tokenised one by one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NamedTuple

Verdict = Literal["correct", "incorrect"]
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
_VERDICT_LINE = re.compile(rf"(?i){re.escape(VERDICT_LEAD)}[ \t*]*(correct|incorrect)\b")
_SPLIT = re.compile(f"({re.escape(VERIFY_LEAD)}|{re.escape(RETRY_LEAD)})")


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
    the first verdict line starts (-1 without one) and how many verdict lines there are."""

    verdict: Verdict | None
    start: int
    lines: int

    @property
    def contradictory(self) -> bool:
        return self.verdict is None and self.lines > 0


def parse_verdict(text: str) -> VerdictParse:
    """Read the ``Verdict: correct|incorrect`` line(s) of a verification.

    A verification that gives both verdicts contradicts itself and has no verdict.
    """
    found = list(_VERDICT_LINE.finditer(text))
    verdicts = {m.group(1).lower() for m in found}
    if len(verdicts) != 1:
        return VerdictParse(None, -1, len(found))
    return VerdictParse("correct" if "correct" in verdicts else "incorrect", found[0].start(), len(found))


def verdict_line(verdict: Verdict) -> str:
    return f"{VERDICT_LEAD} {verdict}"


def attempt_segment(attempt: str, first: bool) -> str:
    """The text of an attempt segment (every attempt after the first starts on a new paragraph)."""
    return attempt.strip() if first else SEPARATOR + attempt.strip()


def verification_segment(verification: str, verdict: Verdict) -> str:
    """The text of a verification segment: the lead, the verification, and the retry connector if it rejects."""
    text = f"{SEPARATOR}{VERIFY_LEAD}\n{verification.strip()}"
    return text + (f"{SEPARATOR}{RETRY_LEAD}" if verdict == "incorrect" else "")


@dataclass(frozen=True)
class ParsedAttempt:
    """One attempt of a completion and the verification that follows it (None when it has none)."""

    text: str
    verification: str | None


def parse_trajectory(text: str) -> list[ParsedAttempt]:
    """Cut a completion back into attempts, each with the verification that follows it.

    Text before the first verification lead is the first attempt; text after a verification lead is a
    verification until the retry connector, after which a new attempt starts. A completion written
    without any lead is one attempt with no verification.
    """
    attempts: list[ParsedAttempt] = []
    current, verification = "", None
    for piece in _SPLIT.split(text):
        if piece == VERIFY_LEAD:
            verification = verification or ""
        elif piece == RETRY_LEAD:
            attempts.append(ParsedAttempt(current.strip(), None if verification is None else verification.strip()))
            current, verification = "", None
        elif verification is not None:
            verification += piece
        else:
            current += piece
    attempts.append(ParsedAttempt(current.strip(), None if verification is None else verification.strip()))
    return [a for a in attempts if a.text or a.verification is not None]
