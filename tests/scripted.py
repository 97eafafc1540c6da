"""The one scripted engine the unit tests share: a fake model whose answers are a function of the request.

Tests of builder logic (labels, ties, forced verdicts, counting) need exact, repeatable model outputs;
the real embedded model is tested elsewhere. ``ScriptedEngine(respond)`` calls ``respond(request,
params, k)`` for the k-th of the ``params.n`` samples of every request and records each batch it was
given, so a test can also assert how many engine calls a builder made.
"""

from __future__ import annotations

from collections.abc import Callable

from judgeforge.engines.base import Completion, Engine, ProgressFn, Request, SamplingParams, TokenLogprob

Respond = Callable[[Request, SamplingParams, int], "Completion | str"]


class ScriptedEngine(Engine):
    """An engine answering with ``respond``; a plain string becomes a ``stop`` completion."""

    name = "scripted"

    def __init__(self, respond: Respond, model_id: str = "scripted", weights_hash: str = "none") -> None:
        super().__init__(model_id, weights_hash)
        self.respond = respond
        self.calls: list[list[Request]] = []

    def _generate(self, requests: list[Request], params: SamplingParams, progress: ProgressFn | None) -> list[list[Completion]]:
        self.calls.append(list(requests))
        return [[_completion(self.respond(r, params, k)) for k in range(params.n)] for r in requests]


def _completion(answer: Completion | str) -> Completion:
    return answer if isinstance(answer, Completion) else Completion(text=answer)


def forced(p_a: float) -> Completion:
    """The one-token answer to a forced verdict (``Verdict: [[``) whose top log-probabilities give P(A) = ``p_a``."""
    import math

    top = {"A": math.log(p_a) if p_a > 0 else -math.inf, "B": math.log(1 - p_a) if p_a < 1 else -math.inf}
    return Completion(text="A" if p_a >= 0.5 else "B", logprobs=[TokenLogprob(token="A" if p_a >= 0.5 else "B", logprob=max(top.values()), top=top)])


def yes_no(p_yes: float) -> Completion:
    """The one-token answer at the R-PRM verdict slot whose top log-probabilities give P(Yes) = ``p_yes``."""
    import math

    top = {" Yes": math.log(p_yes) if p_yes > 0 else -math.inf, " No": math.log(1 - p_yes) if p_yes < 1 else -math.inf}
    token = " Yes" if p_yes >= 0.5 else " No"
    return Completion(text=token, logprobs=[TokenLogprob(token=token, logprob=top[token], top=top)])
