"""The pairwise judge's text format: its two prompts (next step, whole response), its verdict parser.

One format serves both judges: a short explanation, then a verdict ``[[A]]`` or ``[[B]]`` on the last
line (MT-Bench pairwise style, Zheng et al., 2023). Step-prefs and EFT judge candidate next steps with
:func:`judge_user_message`; the Self-Taught Evaluator judges whole responses with
:func:`response_judge_message`. EFT and Self-Taught train models on judgments written by
:func:`format_judgment`, so a trained judge writes what :func:`parse_verdict` reads.

A verdict is an uppercase ``A`` or ``B`` standing as a token: inside ``[[ ]]``, or closing a "verdict:"
clause ("Final verdict: B", "**Verdict:** [A]."). Anything else — a lowercase letter ("verdict: a"),
an article ("My verdict: A tie"), a sentence ("Verdict: A is better") — is no verdict, and an output
naming both letters contradicts itself and has none either.

:data:`JUDGMENT` is the format's verdict declaration for :mod:`judgeforge.formats.verdicts`: the
vocabulary A/B (case matters), the verdict slot (the judgment followed by ``Verdict: [[``, exactly where
:func:`format_judgment` writes the verdict) and the contradiction rule (:func:`can_force`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from judgeforge.formats.verdicts import Parsed, VerdictFormat, Vocabulary

Verdict = Literal["A", "B"]
VERDICTS: tuple[Verdict, ...] = ("A", "B")

JUDGE_INSTRUCTIONS = (
    "You are an impartial judge. Below is a math problem, the steps of a solution written so far, and two "
    "candidate next steps, Step A and Step B. Decide which candidate is the better next step: correct "
    "arithmetic and logic first, then usefulness for reaching the right final answer. The order in which "
    "the candidates appear must not influence you. Explain your reasoning in a few sentences, then write "
    "your verdict on the last line: [[A]] if Step A is better, [[B]] if Step B is better."
)
VERDICT_LEAD = "Verdict: [["
_BRACKETED = re.compile(r"\[\[\s*([AB])\s*\]\]")
_LOOSE = re.compile(
    r"(?i:\bverdict\b)\s*[:\-]?[\s*]*(?:(?i:step|response)\s+)?\[{0,2}\s*([AB])\s*\]{0,2}[*)]*(?=[ \t]*(?:$|[.,;!(]))",
    re.MULTILINE,
)
"""A "verdict" clause closed by a bare uppercase letter (brackets, bold and punctuation allowed, no further word)."""


def judge_user_message(question: str, previous_steps: Sequence[str], step_a: str, step_b: str) -> str:
    """The user turn of a pairwise step judgment."""
    previous = "\n\n".join(previous_steps) if previous_steps else "(none: the candidates are the first step)"
    return f"{JUDGE_INSTRUCTIONS}\n\n[Problem]\n{question.strip()}\n\n[Previous steps]\n{previous}\n\n[Step A]\n{step_a.strip()}\n\n[Step B]\n{step_b.strip()}"


def parse_verdict(text: str) -> Verdict | None:
    """The verdict of a judgment, or None when it has none or names both letters (bracketed or loose)."""
    found = set(_BRACKETED.findall(text)) | set(_LOOSE.findall(text))
    if len(found) != 1:
        return None
    return "A" if "A" in found else "B"


def verdict_slot(explanation: str, finish_reason: str = "stop") -> str:
    """A judgment up to its verdict: the explanation, a blank line and ``Verdict: [[``."""
    return f"{explanation.strip()}\n\n{VERDICT_LEAD}"


def _spell(verdict: Verdict) -> str:
    return f"{verdict}]]"


def format_judgment(explanation: str, verdict: Verdict) -> str:
    """A judgment in the canonical format (what EFT trains on and :func:`parse_verdict` reads)."""
    return verdict_slot(explanation) + _spell(verdict)


def can_force(text: str) -> bool:
    """Whether appending a forced verdict to a verdict-less ``text`` leaves exactly that verdict in it.

    False for an output that names both verdicts (so parses to none): forcing it would write a text
    carrying both ``[[A]]`` and ``[[B]]``. Such outputs stay unparsable, counted as contradictory.
    """
    return all(parse_verdict(format_judgment(text, v)) == v for v in VERDICTS)


def read_judgment(text: str, finish_reason: str = "stop") -> Parsed[Verdict]:
    """A judgment's verdict (status ``ok``), or none: ``contradictory`` when a forced verdict could not
    stand in it (:func:`can_force`), else ``none`` (forceable). The text is kept whole."""
    verdict = parse_verdict(text)
    if verdict is not None:
        return Parsed(verdict, "ok", text, False)
    forceable = can_force(text)
    return Parsed(None, "none" if forceable else "contradictory", text, forceable)


JUDGMENT: VerdictFormat[Verdict] = VerdictFormat(Vocabulary(VERDICTS, case_sensitive=True), read_judgment, verdict_slot, _spell)


# --- whole-response pairs (Self-Taught Evaluator) ----------------------------------------------------
# The same judgment format as the step judge (reasoning, then [[A]] / [[B]]; parse_verdict, format_judgment
# and VERDICT_LEAD apply unchanged), for two complete responses to one instruction instead of two steps.

RESPONSE_JUDGE_INSTRUCTIONS = (
    "You are an impartial judge. Below is a user's instruction and two responses to it, Response A and "
    "Response B. Decide which response better does what the instruction asks: it must address this very "
    "instruction, then be correct and helpful. Neither the order of the responses nor their length may "
    "influence you. Explain your reasoning in a few sentences, then write your verdict on the last line: "
    "[[A]] if Response A is better, [[B]] if Response B is better."
)


def response_judge_message(instruction: str, response_a: str, response_b: str) -> str:
    """The user turn of a pairwise judgment of two whole responses to one instruction."""
    return f"{RESPONSE_JUDGE_INSTRUCTIONS}\n\n[Instruction]\n{instruction.strip()}\n\n[Response A]\n{response_a.strip()}\n\n[Response B]\n{response_b.strip()}"
