"""Final-answer accuracy on held-out problems: the number a self-improvement loop is judged by.

The model solves each problem greedily in the same step-by-step format the builders use (the policy
prompt, the assistant turn opened with ``Step 1:``), in one batched engine call; the answer is checked
by the problem's own checker (reasoning-gym's scorer for ``gym:`` tasks, math-verify otherwise).
``judgeforge eval`` prints one row per model and, with ``--plot``, draws accuracy across the models in
the order given (M1, M2, ... of a loop) with :func:`judgeforge.plots.lines`. The model runs on the engine
its :class:`~judgeforge.engines.EngineSpec` names (the policy options of ``judgeforge build``), and the
result records that spec, credentials masked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from judgeforge.engines import EngineSpec
from judgeforge.engines.base import Engine, ProgressFn, SamplingParams
from judgeforge.sources import Problem, SourceConfig


class ProblemResult(BaseModel):
    id: str
    correct: bool | None
    answer: str | None
    finish_reason: str
    generation: str | None = None
    """The whole solution as generated (with ``--save-generations``)."""


class ModelOnProblems(BaseModel):
    """Which model, on which engine, ran on which problems: where every eval result on a problem set starts."""

    model: str
    weights_hash: str
    engine: dict[str, Any]
    source: dict[str, Any]
    source_fingerprint: str

    @staticmethod
    def of(spec: EngineSpec, weights_hash: str, source: SourceConfig, problems: Sequence[Problem]) -> dict[str, Any]:
        """The fields, from the engine spec (credentials masked), its weights hash and the problems as loaded."""
        from judgeforge.executors.local import inputs_fingerprint
        from judgeforge.runs import redact_urls

        return {
            "model": spec.model,
            "weights_hash": weights_hash,
            "engine": redact_urls(spec.model_dump(mode="json")),
            "source": source.model_dump(mode="json"),
            "source_fingerprint": inputs_fingerprint(problems),
        }


class EvalResult(ModelOnProblems):
    """Accuracy of one model on one problem set; ``correct`` is None for problems with no gold answer."""

    problems: int
    graded: int
    correct: int
    unanswered: int
    accuracy: float | None
    max_tokens: int
    seconds: float
    results: list[ProblemResult]


@contextmanager
def token_progress(description: str, console: Any = None) -> Iterator[ProgressFn]:
    """A transient progress line counting generated tokens; yields the callback an engine call reports to."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from judgeforge.console import make_console

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} tokens"),
        TimeElapsedColumn(),
        console=console or make_console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=None)
        yield lambda n: progress.advance(task, n)


def solve(
    engine: Engine, problems: Sequence[Problem], params: SamplingParams, seed_of: Callable[[Problem], int], progress: ProgressFn | None = None
) -> list[list[tuple[str, bool, str]]]:
    """``params.n`` solutions of every problem in the builders' step format (one batched call).

    Each is (text, ok, finish reason): the whole solution with its opening ``Step 1:``; a failed
    completion's text is empty and ``ok`` False, for the caller to count, never to grade as an answer.
    """
    from judgeforge.formats.steps import next_step_request

    requests = [next_step_request(p.question, [], seed=seed_of(p)) for p in problems]
    outputs = engine.generate(requests, params, progress=progress)
    return [
        [(request.prefix + c.text if c.ok else "", c.ok, c.finish_reason) for c in completions] for request, completions in zip(requests, outputs, strict=True)
    ]


def evaluate(spec: EngineSpec, source: SourceConfig, max_tokens: int = 256, console: Any = None, save_generations: bool = False) -> EvalResult:
    """Greedy final-answer accuracy of the model ``spec`` runs on the problems of ``source``."""
    from judgeforge.engines import make_engine
    from judgeforge.sources import load_problems
    from judgeforge.verify import check_answer, extract_answer

    problems = load_problems(source)
    clock = time.perf_counter()
    engine = make_engine(spec)
    try:
        with token_progress(f"eval {spec.model} on {len(problems)} problems", console) as progress:
            outputs = solve(engine, problems, SamplingParams(n=1, temperature=0.0, max_tokens=max_tokens), lambda p: 0, progress)
        weights_hash = engine.weights_hash
    finally:
        engine.close()
    results = []
    for problem, ((text, ok, finish), *_) in zip(problems, outputs, strict=True):
        correct = check_answer(problem, text) if ok else False
        answer = extract_answer(text) if ok else None
        results.append(ProblemResult(id=problem.id, correct=correct, answer=answer, finish_reason=finish, generation=text if save_generations else None))
    graded = [r for r in results if r.correct is not None]
    right = sum(bool(r.correct) for r in graded)
    return EvalResult(
        **ModelOnProblems.of(spec, weights_hash, source, problems),
        problems=len(results),
        graded=len(graded),
        correct=right,
        unanswered=sum(r.answer is None for r in results),
        accuracy=right / len(graded) if graded else None,
        max_tokens=max_tokens,
        seconds=round(time.perf_counter() - clock, 3),
        results=results,
    )
