"""Decide whether a model's final answer is right, the same way in every builder.

:func:`extract_answer` finds the final answer in a model solution or step, :func:`has_final_answer`
tells a step-by-step search when to stop, and :func:`check_answer` grades it: reasoning-gym problems
with the task's own scorer, every other problem with math-verify (so ``0.5``, ``1/2`` and
``\\frac{1}{2}`` agree), falling back to normalised string equality where math-verify cannot parse.

The final-answer rule lives here once, and ``has_final_answer(text) == (extract_answer(text) is not
None)`` always, so a step the search calls final is exactly a step whose answer gets graded. Only an
explicit final-answer form counts:

- ``\\boxed{X}`` anywhere (the last one wins);
- a ``#### X`` line that closes the text (GSM8K's form; a ``####`` markdown heading followed by more
  text is no answer);
- an answer phrase -- "The answer is X", "The final answer is X", "Final answer: X", "Answer: X" --
  that starts a sentence or clause (at the start, after ``.``/``!``/``?``/``:``/``;``/``,`` or a line
  break, or after "so"/"thus"/"therefore"/"hence"/"and"/"then") and closes the text: its sentence is the
  last one, nothing but punctuation follows it, and X is a value, not the start of more reasoning (it
  does not begin with "not", "unclear", "first", "let", ... nor go on with ", so let us ...").

So "To find the answer: first compute 3+4", "Let's find the answer. First ..." and "The answer is 7.
Now check: 7 - 4 = 3." state no final answer, and a whole solution that trails off after its answer
phrase ("The answer is 7. Done.") is graded as having none -- the policy prompt asks for the answer
sentence last.

math-verify guards parsing with ``signal.alarm`` timeouts, which only work on the main thread; off the
main thread (builders grade from worker threads) its timeouts are switched off.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from judgeforge.errors import UserError
from judgeforge.sources import Problem, gym_entry

_MATH_VERIFY_TIMEOUT_S = 5
_BOXED = "\\boxed"
# A "#### X" line with nothing after it (a "####" heading above more text is markdown, not an answer).
_HASH_ANSWER = re.compile(r"(?:^|\n)[ \t]*####[ \t]*([^\n]*\S)\s*\Z")
# An answer phrase where a sentence or clause starts; what it introduces runs to the end of the text.
_ANSWER_PHRASE = re.compile(
    r"(?:^|[.!?:;,\n]|\b(?:so|thus|therefore|hence|and|then))[\s*]*(?:the\s+)?(?:final\s+)?answer\**\s*(?:is\b\s*:?|:)[\s*]*",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")
_CLOSING = " \t\n.!?*$\"')"
# What follows "the answer is" when it is not a value: a hedge, or the start of more reasoning.
_NOT_A_VALUE = re.compile(
    r"^(?:not|unclear|unknown|undetermined|yet|still|first|let|let's|we)\b"
    r"|[,;]\s*(?:so\s+)?(?:let|let's|we\s+(?:need|must|have\s+to|will|can)|we'll|first|then|next|now)\b",
    re.IGNORECASE,
)
_TRAILING_PUNCT = " \t\n.,;:!*"
_NUMBER_WITH_UNIT = re.compile(r"([-+]?\d[\d,]*(?:\.\d+)?(?:/\d+)?)\s+(?!pi\b)[A-Za-z]{2,}")
# Gold answers made only of words ("yes", "Paris"): compared as text, because sympy would read "yes"
# as the product y*e*s and call it equal to "sey".
_WORDS = re.compile(r"[A-Za-z][A-Za-z '\-]*[A-Za-z]")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|mathrm)\{([^{}]*)\}")


def extract_answer(text: str) -> str | None:
    """The final answer of a model solution, or None when it states none.

    Looks for the last ``\\boxed{...}`` (balanced braces), else a closing ``#### X`` line, else a
    closing answer phrase (the module docstring states the rule). The result loses surrounding
    ``$``/``**``, trailing punctuation, a leading currency sign and a single unit word after a number
    ("18 dollars" -> "18").
    """
    candidate = _last_boxed(text)
    if candidate is None:
        closing_hash = _HASH_ANSWER.search(text)
        candidate = closing_hash.group(1) if closing_hash else None
    if candidate is None:
        candidate = _closing_phrase_value(text)
    return None if candidate is None else _clean(candidate)


def has_final_answer(text: str) -> bool:
    """Whether ``text`` states a final answer (ends a step-by-step search): ``extract_answer`` finds one."""
    return extract_answer(text) is not None


def check_answer(problem: Problem, text: str) -> bool | None:
    """Whether the final answer in ``text`` solves ``problem``; None when there is nothing to grade against.

    reasoning-gym problems are graded by the task's scorer (score >= 1.0 is correct), even for tasks with
    no single gold answer; other problems need a gold answer. A solution with no extractable answer is
    wrong.
    """
    if "gym_task" in problem.meta:
        return _check_gym(problem, text)
    if problem.answer is None:
        return None
    predicted = extract_answer(text)
    return predicted is not None and answers_match(problem.answer, predicted)


def verify_batch(problems: Sequence[Problem], texts: Sequence[str]) -> list[bool | None]:
    """:func:`check_answer` for each (problem, text) pair; the two sequences must have the same length."""
    return [check_answer(problem, text) for problem, text in zip(problems, texts, strict=True)]


def answers_match(gold: str, predicted: str) -> bool:
    """Whether two final answers agree: normalised text first, then math-verify equivalence."""
    gold = _clean(gold) or gold
    if _normalise(gold) == _normalise(predicted):
        return True
    if _WORDS.fullmatch(gold):
        return False
    try:
        from math_verify import verify

        gold_parsed = _parse(f"${gold}$")
        predicted_parsed = _parse(f"${predicted}$") or _parse(predicted)
        if not gold_parsed or not predicted_parsed:
            return False
        return bool(verify(gold_parsed, predicted_parsed, timeout_seconds=_timeout()))
    except Exception:  # math-verify/sympy can raise almost anything on odd input: not a match
        return False


def _check_gym(problem: Problem, text: str) -> bool:
    predicted = extract_answer(text)
    if predicted is None:
        return False
    task = problem.meta["gym_task"]
    try:
        score_fn = _gym_scorer(task)
    except ValueError as exc:
        raise UserError(f"problem '{problem.id}': unknown reasoning-gym task '{task}'") from exc
    try:
        score = score_fn(predicted, _scoring_entry(problem.meta))
    except Exception:  # a scorer choking on a malformed answer means the answer is wrong
        return False
    return score is not None and float(score) >= 1.0


@functools.cache
def _gym_scorer(task: str) -> Callable[[str, dict[str, Any]], float]:
    """The task's scorer, built once: building it may load data (arc_agi takes ~1.5 s)."""
    import reasoning_gym

    scorer: Callable[[str, dict[str, Any]], float] = reasoning_gym.get_score_answer_fn(task)
    return scorer


def _scoring_entry(meta: dict[str, Any]) -> dict[str, Any]:
    """The original gym entry when it can be regenerated identically, else the JSON copy in ``meta``."""
    saved: dict[str, Any] = meta["gym_entry"]
    try:
        entry = gym_entry(meta["gym_task"], meta["gym_seed"], meta["gym_size"], meta["gym_index"])
    except Exception:  # keys missing, or a reasoning-gym version that cannot rebuild the entry
        return saved
    return entry if entry["question"] == saved["question"] else saved


def _parse(text: str) -> list[Any]:
    from math_verify import parse

    return list(parse(text, parsing_timeout=_timeout()))


def _timeout() -> int | None:
    """math-verify's signal-based timeout on the main thread; none elsewhere, where signals fail."""
    return _MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _closing_phrase_value(text: str) -> str | None:
    """What the last answer phrase introduces, when that phrase closes ``text`` and introduces a value."""
    phrases = list(_ANSWER_PHRASE.finditer(text))
    if not phrases:
        return None
    value, *after = _SENTENCE_END.split(text[phrases[-1].end() :], maxsplit=1)
    if (after and after[0].strip(_CLOSING)) or _NOT_A_VALUE.search(value):
        return None
    return value


def _last_boxed(text: str) -> str | None:
    """Contents of the last ``\\boxed{...}`` whose braces balance."""
    end = len(text)
    while (start := text.rfind(_BOXED, 0, end)) >= 0:
        end = start
        pos = start + len(_BOXED)
        while pos < len(text) and text[pos] == " ":
            pos += 1
        if pos >= len(text) or text[pos] != "{":
            continue
        depth = 0
        for i in range(pos, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[pos + 1 : i]
    return None


def _clean(answer: str) -> str | None:
    answer = answer.strip().strip("*").rstrip(_TRAILING_PUNCT)
    for opener, closer in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(answer) > len(opener) + len(closer) and answer.startswith(opener) and answer.endswith(closer):
            answer = answer[len(opener) : -len(closer)].strip()
    answer = answer.rstrip(_TRAILING_PUNCT)
    answer = re.sub(r"^\\?\$(?=\s*[-+]?\d)", "", answer).strip()
    unit = _NUMBER_WITH_UNIT.fullmatch(answer)
    if unit:
        answer = unit.group(1)
    return answer or None


def _normalise(answer: str) -> str:
    answer = _TEXT_COMMAND.sub(r"\1", answer).replace("$", "")
    return " ".join(answer.split()).casefold().rstrip(".")
