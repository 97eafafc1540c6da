"""The R-PRM analysis format: one prompt, one verdict line, one parser, one verdict slot, one step reward.

R-PRM (She et al., EMNLP 2025, arXiv 2503.21295) has a model *reason* about a step before judging it:
an analysis of the previous steps, of the now step (its goal, where its data come from, whether it
follows), of its calculations, ending in ``Verification: Is the step correct (Yes/No)? Yes|No``. The
rprm-sft and rprm-prefs builders sample such analyses and keep them by their verdict; the scorer reads
P(Yes) at the verdict slot; the TRL views train on the same prompt. The wording of the prompt is ours
(the paper's structure, not its text).

A verdict is the verdict line exactly as the prompt asks for it: the lead ``Verification: Is the step
correct (Yes/No)?`` (any spacing) followed by ``Yes`` or ``No`` spelt so — on the lead's line, or first
on the next non-blank line when the lead ends its line — optionally in Markdown emphasis (``**Yes**``),
and standing alone: the end of the line or a punctuation mark follows it, and the line names no other
verdict. "Yesterday", "No idea" or "Yes because ..." are not verdicts. A verdict
line in another case ("verification: is the step correct (yes/no)? yes", "... YES") is a verdict
*off the format*: the kept analysis is a training target that must end with the verdict line the
prompt asks for, so it is never kept, but it still counts when an analysis restates its verdict.

An analysis is *malformed* when it has no verdict (``none``), names both Yes and No in a verdict line
(``both``), has several verdict lines that disagree (``contradictory``) or agree (``several``: the
chosen analysis must end with its verdict once), gives its one verdict off the format
(``off_format``), or ran out of tokens before giving one (``truncated``). Malformed analyses are
counted and never kept. :data:`ANALYSIS` declares the format's verdicts for
:mod:`judgeforge.formats.verdicts`: Yes/No in any case and spacing at the verdict slot, where an
analysis without a verdict (``none``, ``truncated``) may be forced; a step's reward aggregates its K
verdicts into P(Yes) (:func:`step_reward`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol

from judgeforge.engines.base import Request
from judgeforge.formats.step_inputs import Label
from judgeforge.formats.verdicts import Parsed, VerdictFormat, Vocabulary, aggregate

VERDICT_LEAD = "Verification: Is the step correct (Yes/No)?"
ANALYSIS_START = "Previous steps analysis:"
Status = Literal["ok", "none", "both", "contradictory", "several", "off_format", "truncated"]
MALFORMED: tuple[Status, ...] = ("none", "both", "contradictory", "several", "off_format", "truncated")

ANALYSIS_INSTRUCTIONS = (
    "Check one step of a math solution: the now step, given the problem and the steps before it. Reason in "
    "three parts before you judge.\n"
    f"{ANALYSIS_START} what the earlier steps established, and whether the now step builds on them.\n"
    "Now step analysis: what the now step does, and where each of its numbers comes from (the problem or an "
    "earlier step).\n"
    "Calculation analysis: redo the now step's calculations and compare the results.\n"
    f'End with the line "{VERDICT_LEAD} Yes" if the now step is correct, or "{VERDICT_LEAD} No" if it is not.'
)
_LEAD_PATTERN = r"Verification\s*:\s*Is\s+the\s+step\s+correct\s*\(\s*Yes\s*/\s*No\s*\)\s*\?"
_LEAD = re.compile(_LEAD_PATTERN, re.IGNORECASE)  # every verdict line, in any case
_FORMAT_LEAD = re.compile(_LEAD_PATTERN)  # the lead as the prompt spells it
# The answer after a lead: Yes or No (any case here; the case is checked apart), maybe in Markdown
# emphasis, followed by the end of the line or a punctuation mark, never by more of a word or phrase.
_ANSWER = re.compile(r"(?P<em>\*{1,2}|_{1,2}|)(?P<word>yes|no)[.!]?(?P=em)(?=\s*$|[.,;:!])", re.IGNORECASE)
_WORD = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def analysis_user_message(question: str, previous_steps: Sequence[str], now_step: str) -> str:
    """The user turn asking for an analysis of ``now_step``."""
    previous = "\n\n".join(previous_steps) if previous_steps else "(none: the now step is the first step)"
    return f"{ANALYSIS_INSTRUCTIONS}\n\n[Problem]\n{question.strip()}\n\n[Previous steps]\n{previous}\n\n[Now step]\n{now_step.strip()}"


class StepToAnalyse(Protocol):
    """What an analysis is asked about: a problem, the steps so far and the now step. A labelled
    :class:`~judgeforge.formats.step_inputs.StepInput` is one; so is a step of a sampled solution that
    nobody labelled (Best-of-N scores those)."""

    @property
    def question(self) -> str: ...
    @property
    def previous_steps(self) -> Sequence[str]: ...
    @property
    def now_step(self) -> str: ...


def analysis_messages(item: StepToAnalyse) -> list[dict[str, str]]:
    """The chat that asks for an analysis of an evaluation input (generation and the TRL views)."""
    return [{"role": "user", "content": analysis_user_message(item.question, item.previous_steps, item.now_step)}]


def analysis_request(item: StepToAnalyse, seed: int) -> Request:
    """The engine request for analyses of ``item``: the assistant turn starts with the first part's header."""
    return Request(messages=tuple(analysis_messages(item)), prefix=ANALYSIS_START, seed=seed)


class _Answer(NamedTuple):
    """What one verdict line says: its verdict, whether it is in the prompt's format, where it ends."""

    verdict: Label
    in_format: bool
    end: int


def _read_verdict_line(text: str, lead: re.Match[str], stop: int) -> _Answer | Literal["both"] | None:
    """The answer after ``lead``: on its line, or alone on the next non-blank line (before ``stop``)."""
    after = text[lead.end() : stop]
    offset = lead.end() + len(after) - len(after.lstrip())
    line = after.lstrip().split("\n", 1)[0]
    if {w.lower() for w in _WORD.findall(line)} == {"yes", "no"}:
        return "both"
    answer = _ANSWER.match(line)
    if answer is None:
        return None
    word = answer.group("word")
    in_format = word in ("Yes", "No") and _FORMAT_LEAD.fullmatch(lead.group()) is not None
    end = answer.end() if answer.group("em") else answer.end("word")
    return _Answer("Yes" if word.lower() == "yes" else "No", in_format, offset + end)


def parse_analysis(text: str, finish_reason: str = "stop") -> Parsed[Label]:
    """Read the verdict line(s) of an analysis (the full assistant turn, or its continuation): the
    verdict (None when malformed), the status, the text kept — the analysis up to and including its
    verdict (the whole text when malformed) — and whether a forced verdict may stand in it (none, truncated)."""
    leads = list(_LEAD.finditer(text))
    answers: list[_Answer] = []
    for n, lead in enumerate(leads):
        answer = _read_verdict_line(text, lead, leads[n + 1].start() if n + 1 < len(leads) else len(text))
        if answer == "both":
            return Parsed(None, "both", text, False)
        if answer is not None:
            answers.append(answer)
    if not answers:
        return Parsed(None, "truncated" if finish_reason == "length" else "none", text, True)
    if len({a.verdict for a in answers}) > 1:
        return Parsed(None, "contradictory", text, False)
    if len(answers) > 1:
        return Parsed(None, "several", text, False)
    answer = answers[0]
    if not answer.in_format:
        return Parsed(None, "off_format", text, False)
    return Parsed(answer.verdict, "ok", text[: answer.end], False)


def verdict_line(verdict: Label) -> str:
    return f"{VERDICT_LEAD} {verdict}"


def verdict_slot(text: str, finish_reason: str) -> str:
    """The assistant turn up to the verdict slot. An analysis that stopped at the verdict lead (the
    scorer's stop string) gets the lead back; any other is cut before a verdict line it may hold and
    gets the lead after a blank line."""
    if finish_reason == "stop":
        return text + VERDICT_LEAD
    lead = _LEAD.search(text)
    return f"{(text[: lead.start()] if lead else text).rstrip()}\n\n{VERDICT_LEAD}"


def _spell(verdict: Label) -> str:
    return f" {verdict}"


ANALYSIS: VerdictFormat[Label] = VerdictFormat(Vocabulary(("Yes", "No"), case_sensitive=False), parse_analysis, verdict_slot, _spell)


def step_reward(p_yes: Sequence[float | None], votes: Sequence[str | None]) -> tuple[float | None, str]:
    """A step's reward from its K evaluations: mean P(Yes) where log-probabilities came back (``p_yes``),
    else the share of Yes votes (``vote``), else none (``none``)."""
    return aggregate(p_yes, votes, "Yes")
