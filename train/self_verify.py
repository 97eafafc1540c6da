"""Accuracy after self-verification: S2R's figure (``judgeforge eval --self-verify``).

S2R (Ma et al., ACL 2025, arXiv 2502.12853) trains a policy to check its own answer and try again when
the check fails, in one assistant turn (MATH500 with Qwen2.5-Math-7B: 51.0 → 81.6). This evaluation lets
the model do exactly that, in the layout the S2R builder trains (:mod:`judgeforge.formats.s2r`), and
drives it round by round so a budget holds whatever the model writes:

1. **attempt**: the model answers the S2R policy prompt (final answer in ``\\boxed{}``), greedily, until
   it opens a verification (the verify lead is the stop string) or ends;
2. **verification**: the trajectory so far plus the verify lead, continued greedily until the retry
   connector or the end; its verdict is read with the format's parser and, when it has none, forced at
   the verdict slot (``--no-force-verdicts`` turns that off) — counted as forced, never as written;
3. a ``correct`` verdict **accepts** the attempt and ends the trajectory; ``incorrect`` appends the retry
   connector and starts the next attempt, up to ``--max-attempts``. A verification with no verdict, or an
   engine call that failed, ends it.

Every round is one batched engine call for the problems still going (plus one for forced verdicts).
The graded answer is the one the trajectory ends on: the accepted attempt, or — when the budget runs out
or a verification gives no verdict — the last attempt, as an answer extractor reading the transcript
would take it (``accepted`` says which problems ended on an accepted answer). Reported beside the
accuracy: the first attempt's accuracy (the model without self-verification), the mean number of
attempts, how often the final answer flipped a right first attempt to wrong and a wrong one to right,
and the verifications themselves: parsed, forced, unparsable or failed, and how often a parsed verdict
was right about its attempt.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from judgeforge.engines import EngineSpec
from judgeforge.engines.base import Engine, ProgressFn, Request, SamplingParams, derive_seed
from judgeforge.formats.s2r import RETRY_LEAD, SEPARATOR, VERIFICATION, VERIFY_LEAD, attempt_segment, policy_messages, split_segments, verification_segment
from judgeforge.formats.verdicts import settle
from judgeforge.sources import Problem, SourceConfig
from judgeforge.train.eval import ModelOnProblems, token_progress
from judgeforge.verify import check_answer, extract_answer

How = Literal["parsed", "forced", "unparsable", "failed"]
Ending = Literal["accepted", "budget", "no_verdict", "failed"]


class SelfVerifySettings(BaseModel):
    max_attempts: int = Field(3, ge=1, description="attempts a trajectory may make (the budget): one more after each rejected attempt")
    max_tokens: int = Field(256, ge=1, description="longest attempt, and longest verification, in tokens")
    force_verdicts: bool = Field(True, description="force a verdict at the verdict slot when a verification gives none (counted as forced)")


class Attempt(BaseModel):
    """One attempt and the verification that followed it (none when the trajectory ended before one)."""

    text: str
    answer: str | None
    correct: bool | None
    verification: str | None = None
    verdict: Literal["correct", "incorrect"] | None = None
    how: How | None = None


class TrajectoryResult(BaseModel):
    id: str
    attempts: list[Attempt]
    ending: Ending
    answer: str | None
    correct: bool | None
    transcript: str | None = None
    """The whole assistant turn as laid out (with ``--save-generations``)."""


class SelfVerifyFigures(BaseModel):
    """Over the problems with a gold answer (``graded``); verification counts over every verification."""

    problems: int
    graded: int
    accuracy: float | None
    first_attempt_accuracy: float | None
    accepted: int
    endings: dict[str, int]
    mean_attempts: float | None
    right_to_wrong: int
    wrong_to_right: int
    verifications: int
    verifications_by_how: dict[str, int]
    verification_accuracy: float | None = Field(description="parsed verdicts that are right about their attempt, over parsed verdicts on graded problems")


class SelfVerifyResult(ModelOnProblems):
    settings: SelfVerifySettings
    seconds: float
    figures: SelfVerifyFigures
    results: list[TrajectoryResult]


class _Trajectory:
    """One problem's trajectory being written: the text laid out so far and its attempts."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.text = ""
        self.attempts: list[Attempt] = []
        self.ending: Ending | None = None

    def messages(self) -> tuple[dict[str, str], ...]:
        return tuple(policy_messages(self.problem.question))

    def attempt_request(self) -> Request:
        prefix = self.text + (SEPARATOR if self.attempts else "")
        return Request(messages=self.messages(), prefix=prefix, seed=derive_seed("self-verify", self.problem.id, len(self.attempts), "attempt"))

    def add_attempt(self, text: str) -> None:
        self.text += attempt_segment(text, first=not self.attempts)
        self.attempts.append(Attempt(text=text.strip(), answer=extract_answer(text), correct=check_answer(self.problem, text)))

    def verification_request(self) -> Request:
        prefix = f"{self.text}{SEPARATOR}{VERIFY_LEAD}\n"
        return Request(messages=self.messages(), prefix=prefix, seed=derive_seed("self-verify", self.problem.id, len(self.attempts), "verify"))

    def result(self, save: bool) -> TrajectoryResult:
        final = self.attempts[-1] if self.attempts else None
        return TrajectoryResult(
            id=self.problem.id,
            attempts=self.attempts,
            ending=self.ending or "failed",
            answer=final.answer if final else None,
            correct=(final.correct if final else check_answer(self.problem, "")),
            transcript=self.text if save else None,
        )


def self_verify(engine: Engine, problems: Sequence[Problem], settings: SelfVerifySettings, progress: ProgressFn | None = None) -> list[TrajectoryResult]:
    """Let the model attempt, verify and retry on every problem, round by round; one result per problem."""
    going = [_Trajectory(p) for p in problems]
    everyone = list(going)
    greedy = SamplingParams(n=1, temperature=0.0, max_tokens=settings.max_tokens)
    while going:
        attempts = engine.generate([t.attempt_request() for t in going], greedy.model_copy(update={"stop": (VERIFY_LEAD,)}), progress=progress)
        for t, (c, *_) in zip(going, attempts, strict=True):
            if c.ok:
                t.add_attempt(split_segments(c.text)[0].text)  # up to a verification the model opened (the stop string, if unhonoured)
            else:
                t.ending = "failed"
        going = [t for t in going if t.ending is None]
        requests = [t.verification_request() for t in going]
        checks = engine.generate(requests, greedy.model_copy(update={"stop": (RETRY_LEAD,)}), progress=progress)
        outputs = [(r, c[0]) for r, c in zip(requests, checks, strict=True)]
        # Only the verification is parsed: the trajectory before it may hold earlier verdicts of its own.
        settled = settle(engine, VERIFICATION, outputs, 0, settings.force_verdicts, contexts=[r.prefix for r in requests])
        for t, s in zip(going, settled, strict=True):
            attempt = t.attempts[-1]
            if s is None:
                attempt.how, t.ending = "failed", "failed"
                continue
            attempt.verification, attempt.verdict, attempt.how = s.text, s.verdict, s.how
            if s.verdict is None:
                t.text += f"{SEPARATOR}{VERIFY_LEAD}\n{s.text.strip()}"
                t.ending = "no_verdict"
            elif s.verdict == "correct":
                t.text += verification_segment(s.text, "correct")
                t.ending = "accepted"
            elif len(t.attempts) >= settings.max_attempts:
                t.text += f"{SEPARATOR}{VERIFY_LEAD}\n{s.text.strip()}"
                t.ending = "budget"
            else:
                t.text += verification_segment(s.text, "incorrect")
        going = [t for t in going if t.ending is None]
    return [t.result(save=True) for t in everyone]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def figures(results: Sequence[TrajectoryResult]) -> SelfVerifyFigures:
    """The figures of a set of trajectories (definitions in the module docstring)."""
    graded = [r for r in results if r.correct is not None]
    first = [bool(r.attempts and r.attempts[0].correct) for r in graded]
    verified = [a for r in results for a in r.attempts if a.how is not None]
    parsed = [a for r in graded for a in r.attempts if a.how == "parsed"]
    endings = {e: sum(r.ending == e for r in results) for e in ("accepted", "budget", "no_verdict", "failed")}
    return SelfVerifyFigures(
        problems=len(results),
        graded=len(graded),
        accuracy=_share(sum(bool(r.correct) for r in graded), len(graded)),
        first_attempt_accuracy=_share(sum(first), len(graded)),
        accepted=endings["accepted"],
        endings=endings,
        mean_attempts=_share(sum(len(r.attempts) for r in results), len(results)),
        right_to_wrong=sum(f and not r.correct for f, r in zip(first, graded, strict=True)),
        wrong_to_right=sum(not f and bool(r.correct) for f, r in zip(first, graded, strict=True)),
        verifications=len(verified),
        verifications_by_how={h: sum(a.how == h for a in verified) for h in ("parsed", "forced", "unparsable", "failed")},
        verification_accuracy=_share(sum((a.verdict == "correct") == bool(a.correct) for a in parsed), len(parsed)),
    )


def evaluate_self_verify(spec: EngineSpec, source: SourceConfig, settings: SelfVerifySettings, save_generations: bool = False) -> SelfVerifyResult:
    """Accuracy after self-verification of the model ``spec`` runs, on the problems of ``source``."""
    from judgeforge.engines import make_engine
    from judgeforge.sources import load_problems

    problems = load_problems(source)
    clock = time.perf_counter()
    engine = make_engine(spec)
    try:
        with token_progress(f"eval --self-verify {spec.model} on {len(problems)} problems, ≤{settings.max_attempts} attempts") as progress:
            results = self_verify(engine, problems, settings, progress)
        weights_hash = engine.weights_hash
    finally:
        engine.close()
    if not save_generations:
        results = [r.model_copy(update={"transcript": None}) for r in results]
    return SelfVerifyResult(
        **ModelOnProblems.of(spec, weights_hash, source, problems),
        settings=settings,
        seconds=round(time.perf_counter() - clock, 3),
        figures=figures(results),
        results=results,
    )
