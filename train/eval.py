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
from typing import Any

from pydantic import BaseModel

from judgeforge.engines import EngineSpec
from judgeforge.sources import SourceConfig


class ProblemResult(BaseModel):
    id: str
    correct: bool | None
    answer: str | None
    finish_reason: str


class EvalResult(BaseModel):
    """Accuracy of one model on one problem set; ``correct`` is None for problems with no gold answer."""

    model: str
    weights_hash: str
    engine: dict[str, Any]
    source: dict[str, Any]
    problems: int
    graded: int
    correct: int
    unanswered: int
    accuracy: float | None
    max_tokens: int
    seconds: float
    results: list[ProblemResult]


def evaluate(spec: EngineSpec, source: SourceConfig, max_tokens: int = 256, console: Any = None) -> EvalResult:
    """Greedy final-answer accuracy of the model ``spec`` runs on the problems of ``source``."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from judgeforge.console import make_console
    from judgeforge.engines import make_engine
    from judgeforge.engines.base import SamplingParams
    from judgeforge.formats.steps import next_step_request
    from judgeforge.runs import redact_urls
    from judgeforge.sources import load_problems
    from judgeforge.verify import check_answer, extract_answer

    console = console or make_console(stderr=True)
    problems = load_problems(source)
    clock = time.perf_counter()
    engine = make_engine(spec)
    try:
        requests = [next_step_request(p.question, [], seed=0) for p in problems]
        params = SamplingParams(n=1, temperature=0.0, max_tokens=max_tokens)
        with Progress(
            SpinnerColumn(),
            TextColumn("eval {task.description}"),
            TextColumn("{task.completed:,.0f} tokens"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(f"{spec.model} on {len(problems)} problems", total=None)
            outputs = engine.generate(requests, params, progress=lambda n: progress.advance(task, n))
        weights_hash = engine.weights_hash
    finally:
        engine.close()
    results = []
    for problem, request, (completion, *_) in zip(problems, requests, outputs, strict=True):
        text = request.prefix + completion.text
        correct = check_answer(problem, text) if completion.ok else False
        results.append(ProblemResult(id=problem.id, correct=correct, answer=extract_answer(text), finish_reason=completion.finish_reason))
    graded = [r for r in results if r.correct is not None]
    right = sum(bool(r.correct) for r in graded)
    return EvalResult(
        model=spec.model,
        weights_hash=weights_hash,
        engine=redact_urls(spec.model_dump(mode="json")),
        source=source.model_dump(mode="json"),
        problems=len(results),
        graded=len(graded),
        correct=right,
        unanswered=sum(r.answer is None for r in results),
        accuracy=right / len(graded) if graded else None,
        max_tokens=max_tokens,
        seconds=round(time.perf_counter() - clock, 3),
        results=results,
    )
