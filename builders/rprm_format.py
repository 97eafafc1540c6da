"""The R-PRM analysis format: one prompt, one verdict line, one parser, one verdict-slot reader.

R-PRM (She et al., EMNLP 2025, arXiv 2503.21295) has a model *reason* about a step before judging it:
an analysis of the previous steps, of the now step (its goal, where its data come from, whether it
follows), of its calculations, ending in ``Verification: Is the step correct (Yes/No)? Yes|No``. The
rprm-sft and rprm-prefs builders sample such analyses and keep them by their verdict; the scorer reads
P(Yes) at the verdict slot; the TRL views train on the same prompt. The wording of the prompt is ours
(the paper's structure, not its text).

A verdict is *malformed* when the analysis has no verdict line (``none``), names both Yes and No in it
(``both``), has several verdict lines that disagree (``contradictory``) or agree (``several``: the
chosen analysis must end with its verdict once), or ran out of tokens before giving one
(``truncated``). Malformed analyses are counted and never kept.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from typing import Literal, NamedTuple

from judgeforge.engines.base import Completion, Request
from judgeforge.step_inputs import Label, StepInput

VERDICT_LEAD = "Verification: Is the step correct (Yes/No)?"
ANALYSIS_START = "Previous steps analysis:"
Status = Literal["ok", "none", "both", "contradictory", "several", "truncated"]
MALFORMED: tuple[Status, ...] = ("none", "both", "contradictory", "several", "truncated")

ANALYSIS_INSTRUCTIONS = (
    "Check one step of a math solution: the now step, given the problem and the steps before it. Reason in "
    "three parts before you judge.\n"
    f"{ANALYSIS_START} what the earlier steps established, and whether the now step builds on them.\n"
    "Now step analysis: what the now step does, and where each of its numbers comes from (the problem or an "
    "earlier step).\n"
    "Calculation analysis: redo the now step's calculations and compare the results.\n"
    f'End with the line "{VERDICT_LEAD} Yes" if the now step is correct, or "{VERDICT_LEAD} No" if it is not.'
)
_LEAD = re.compile(r"Verification\s*:\s*Is\s+the\s+step\s+correct\s*\(\s*Yes\s*/\s*No\s*\)\s*\?", re.IGNORECASE)
_WORD = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def analysis_user_message(question: str, previous_steps: Sequence[str], now_step: str) -> str:
    """The user turn asking for an analysis of ``now_step``."""
    previous = "\n\n".join(previous_steps) if previous_steps else "(none: the now step is the first step)"
    return f"{ANALYSIS_INSTRUCTIONS}\n\n[Problem]\n{question.strip()}\n\n[Previous steps]\n{previous}\n\n[Now step]\n{now_step.strip()}"


def analysis_messages(item: StepInput) -> list[dict[str, str]]:
    """The chat that asks for an analysis of an evaluation input (generation and the TRL views)."""
    return [{"role": "user", "content": analysis_user_message(item.question, item.previous_steps, item.now_step)}]


def analysis_request(item: StepInput, seed: int) -> Request:
    """The engine request for analyses of ``item``: the assistant turn starts with the first part's header."""
    return Request(messages=tuple(analysis_messages(item)), prefix=ANALYSIS_START, seed=seed)


class VerdictParse(NamedTuple):
    """A parsed analysis: the verdict (None when malformed), the status, and the text kept — the
    analysis up to and including its verdict word (the whole text when malformed)."""

    verdict: Label | None
    status: Status
    text: str


def parse_analysis(text: str, finish_reason: str = "stop") -> VerdictParse:
    """Read the verdict line(s) of an analysis (the full assistant turn, or its continuation)."""
    leads = list(_LEAD.finditer(text))
    verdicts: list[tuple[Label | None, int]] = []
    for n, lead in enumerate(leads):
        end = leads[n + 1].start() if n + 1 < len(leads) else len(text)
        after = text[lead.end() : end]
        offset = lead.end() + len(after) - len(after.lstrip())
        line = after.lstrip().split("\n", 1)[0]
        words = {w.group(1).lower(): w for w in _WORD.finditer(line)}
        if len(words) == 2:
            return VerdictParse(None, "both", text)
        word = next(iter(words.values()), None)
        verdicts.append((None, -1) if word is None else ("Yes" if word.group(1).lower() == "yes" else "No", offset + word.end()))
    found = [(v, end) for v, end in verdicts if v is not None]
    if not found:
        return VerdictParse(None, "truncated" if finish_reason == "length" else "none", text)
    if len({v for v, _ in found}) > 1:
        return VerdictParse(None, "contradictory", text)
    if len(found) > 1:
        return VerdictParse(None, "several", text)
    verdict, end = found[0]
    return VerdictParse(verdict, "ok", text[:end])


def verdict_line(verdict: Label) -> str:
    return f"{VERDICT_LEAD} {verdict}"


def verdict_slot_prefix(request: Request, completion: Completion) -> str:
    """The assistant turn up to the verdict slot. An analysis that stopped at the verdict lead (the
    scorer's stop string) gets the lead back; any other is cut before a verdict line it may hold and
    gets the lead after a blank line."""
    text = request.prefix + completion.text
    if completion.finish_reason == "stop":
        return text + VERDICT_LEAD
    lead = _LEAD.search(text)
    return f"{(text[: lead.start()] if lead else text).rstrip()}\n\n{VERDICT_LEAD}"


def sample_verdict(p_yes: float, temperature: float, rng: random.Random) -> Label:
    """Draw a verdict from P(Yes) at the verdict slot, flattened or sharpened by ``temperature`` like a
    token distribution (each probability to the power 1/T, renormalised); 0 picks the likelier one."""
    if temperature == 0 or p_yes in (0.0, 1.0):
        return "Yes" if p_yes >= 0.5 else "No"
    yes, no = p_yes ** (1 / temperature), (1 - p_yes) ** (1 / temperature)
    return "Yes" if rng.random() < yes / (yes + no) else "No"


def slot_verdict(completion: Completion) -> tuple[Label | None, float | None]:
    """The verdict one token at the verdict slot names, and P(Yes) = softmax over the Yes/No tokens'
    log-probabilities (None without log-probabilities, or when neither is among the top tokens)."""
    word = completion.text.strip().lower()
    verdict: Label | None = "Yes" if word == "yes" else "No" if word == "no" else None
    if not completion.ok or not completion.logprobs:
        return verdict, None
    mass = {"yes": 0.0, "no": 0.0}
    for token, logprob in completion.logprobs[0].top.items():
        key = token.strip().lower()
        if key in mass:
            mass[key] += math.exp(logprob)
    total = mass["yes"] + mass["no"]
    return verdict, (mass["yes"] / total if total > 0 else None)
