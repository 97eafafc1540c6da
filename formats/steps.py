"""The step format shared by every step-wise builder (step-prefs now; IFT, EFT and R-PRM reuse it).

A solution is a sequence of steps ``Step 1: ...``, ``Step 2: ...`` separated by a blank line, as the
process-based self-rewarding paper segments its solutions. During search the assistant turn so far is
the previous steps plus the next step's header, and the model writes that step's body until the
delimiter; one module owns this layout so the search, the judge prompt and the TRL views agree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from judgeforge.engines.base import Completion, Request
from judgeforge.sources import Problem
from judgeforge.verify import has_final_answer

STEP_DELIMITER = "\n\n"
STEP_STOPS: tuple[str, ...] = (STEP_DELIMITER, "\nStep ")
_HEADER = re.compile(r"(?:^|\n)\s*Step\s+\d+\s*:")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")

POLICY_INSTRUCTIONS = (
    'Solve the following problem step by step. Begin each step with "Step n:" and leave a blank line '
    'between steps. In the last step, state the final answer as "The answer is X".'
)


def policy_user_message(question: str) -> str:
    """The user turn the policy sees for a problem."""
    return f"{POLICY_INSTRUCTIONS}\n\nProblem: {question.strip()}"


def step_header(index: int) -> str:
    """The header the search writes before the model continues step ``index`` (1-based)."""
    return f"Step {index}:"


def format_step(index: int, body: str) -> str:
    """A finished step as it appears in the solution text."""
    return f"{step_header(index)}{body}"


def assistant_prefix(previous_steps: Sequence[str], index: int) -> str:
    """The start of the assistant turn when step ``index`` is about to be written."""
    done = STEP_DELIMITER.join(previous_steps)
    return f"{done}{STEP_DELIMITER if done else ''}{step_header(index)}"


def next_step_request(question: str, previous_steps: Sequence[str], seed: int) -> Request:
    """The engine request that samples the next step of a partial solution."""
    return Request.chat(policy_user_message(question), prefix=assistant_prefix(previous_steps, len(previous_steps) + 1), seed=seed)


def step_body(completion: Completion) -> str:
    """The generated body of a step: the continuation after the header, trailing space removed."""
    return completion.text.rstrip()


def solution_text(steps: Sequence[str]) -> str:
    return STEP_DELIMITER.join(steps)


def split_steps(text: str) -> list[str]:
    """Cut a whole solution into step bodies: at ``Step n:`` headers when it has them, else at blank lines
    (a line of only spaces is blank too). Bodies lose surrounding whitespace only; empty ones are dropped."""
    if _HEADER.search(text):
        parts = _HEADER.split(text)
        bodies = parts[1:] if not parts[0].strip() else parts
    else:
        bodies = _BLANK_LINE.split(text)
    return [b.strip() for b in bodies if b.strip()]


def normalise_steps(bodies: Sequence[str], answer: str | None) -> list[str]:
    """Number step bodies as ``Step n: ...``; make the last one state the final answer if it does not.

    A body keeps its content as written (only surrounding whitespace goes); blank bodies are no steps, so
    the numbering never skips and no ``Step n:`` is empty.
    """
    kept = [body.strip() for body in bodies if body.strip()]
    steps = [format_step(i, f" {body}") for i, body in enumerate(kept, 1)]
    if steps and answer is not None and not has_final_answer(steps[-1]):
        steps[-1] = f"{steps[-1].rstrip('.')}. The answer is {answer}."
    return steps


def gold_steps(problem: Problem) -> list[str]:
    """The source's gold solution in the step format (one ``Step n:`` per non-blank gold line), or [] if it has none."""
    if not problem.solution:
        return []
    return normalise_steps(problem.solution.splitlines(), problem.answer)
