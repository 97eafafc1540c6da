"""``judgeforge eval --self-verify``: trajectories of scripted S2R-style models whose every attempt and
verdict is known, and one end-to-end run of the embedded model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.engines.base import Completion, Request, SamplingParams
from judgeforge.formats.s2r import RETRY_LEAD, VERDICT_LEAD, VERIFY_LEAD, final_attempt, parse_trajectory
from judgeforge.sources import Problem
from judgeforge.train.self_verify import SelfVerifySettings, figures, self_verify
from tests.scripted import ScriptedEngine

PROBLEM = Problem(id="p0", question="What is 2 + 2?", answer="4")
RIGHT, WRONG = "2 + 2 = 4, so the answer is \\boxed{4}.", "2 + 2 = 5, so the answer is \\boxed{5}."


def model(attempts: list[str], verdicts: list[str | None]) -> ScriptedEngine:
    """A model whose i-th attempt is ``attempts[i]`` and whose i-th verification ends in ``verdicts[i]`` (None: no verdict line)."""

    def respond(request: Request, params: SamplingParams, k: int) -> Completion | str:
        i = request.prefix.count(RETRY_LEAD)  # attempts rejected so far
        if request.prefix.endswith(VERDICT_LEAD):  # a forced verdict: the slot
            return " correct"
        if request.prefix.endswith(VERIFY_LEAD + "\n"):
            verdict = verdicts[i]
            return "I recompute the sum." + ("" if verdict is None else f"\n\n{VERDICT_LEAD} {verdict}") + "\n\nAnd more text after it."
        return attempts[i] + "\n\n" + VERIFY_LEAD  # an S2R model goes on to check; the stop string cuts there

    return ScriptedEngine(respond)


def run(engine: ScriptedEngine, **settings: object) -> list:
    return self_verify(engine, [PROBLEM], SelfVerifySettings(max_tokens=64, **settings))  # type: ignore[arg-type]


def test_a_rejected_wrong_answer_is_corrected_and_the_corrected_one_accepted() -> None:
    engine = model([WRONG, RIGHT], ["incorrect", "correct"])
    (r,) = run(engine)
    assert r.ending == "accepted" and r.correct and r.answer == "4"
    assert [(a.answer, a.correct, a.verdict, a.how) for a in r.attempts] == [("5", False, "incorrect", "parsed"), ("4", True, "correct", "parsed")]
    # The second verification continues a trajectory that already holds "Verdict: incorrect": only its own text is read.
    assert r.transcript.count(f"{VERDICT_LEAD} incorrect") == 1 and r.transcript.endswith(f"{VERDICT_LEAD} correct")
    # The transcript is in S2R's layout: its own parser cuts it into the same attempts, and the answer that stands is the accepted one.
    assert [a.text for a in parse_trajectory(r.transcript)] == [a.text for a in r.attempts]
    assert final_attempt(r.transcript) == r.attempts[-1].text
    f = figures([r])
    assert (f.accuracy, f.first_attempt_accuracy, f.mean_attempts, f.wrong_to_right, f.right_to_wrong) == (1.0, 0.0, 2.0, 1, 0)
    assert f.verification_accuracy == 1.0 and f.verifications_by_how["parsed"] == 2
    assert len(engine.calls) == 4  # attempt, verification, attempt, verification: no forcing needed


def test_a_verification_that_rejects_a_right_answer_is_a_right_to_wrong_flip() -> None:
    (r,) = run(model([RIGHT, WRONG], ["incorrect", "correct"]))
    f = figures([r])
    assert r.ending == "accepted" and not r.correct
    assert (f.accuracy, f.first_attempt_accuracy, f.right_to_wrong, f.wrong_to_right, f.verification_accuracy) == (0.0, 1.0, 1, 0, 0.0)


def test_the_budget_ends_a_trajectory_on_its_last_attempt() -> None:
    (r,) = run(model([WRONG, WRONG, RIGHT], ["incorrect", "incorrect", "correct"]), max_attempts=2)
    assert r.ending == "budget" and len(r.attempts) == 2 and r.answer == "5" and not r.correct
    assert figures([r]).accepted == 0


def test_a_missing_verdict_is_forced_and_counted_or_ends_the_trajectory() -> None:
    (forced,) = run(model([RIGHT], [None]))
    assert forced.ending == "accepted" and forced.attempts[0].how == "forced" and forced.attempts[0].verdict == "correct"
    assert figures([forced]).verifications_by_how == {"parsed": 0, "forced": 1, "unparsable": 0, "failed": 0}
    assert figures([forced]).verification_accuracy is None  # forced verdicts are not the model's own: never scored as right
    (unforced,) = run(model([RIGHT], [None]), force_verdicts=False)
    assert unforced.ending == "no_verdict" and unforced.attempts[0].how == "unparsable" and unforced.correct  # graded on its last attempt


def test_failed_engine_calls_end_the_trajectory_and_are_counted() -> None:
    def broken(request: Request, params: SamplingParams, k: int) -> Completion:
        return Completion(text="", error="timeout")

    (r,) = run(ScriptedEngine(broken))
    assert r.ending == "failed" and r.attempts == [] and r.correct is False
    assert figures([r]).endings["failed"] == 1


@pytest.mark.slow
def test_eval_self_verify_runs_the_embedded_model_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "sv.json"
    args = ["eval", "--self-verify", "--limit", "2", "--max-tokens", "24", "--max-attempts", "2", "--save-generations", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (record,) = json.loads(out.read_text())
    f = record["figures"]
    assert f["problems"] == 2 and sum(f["endings"].values()) == 2
    assert f["verifications"] == sum(f["verifications_by_how"].values())
    for r in record["results"]:
        assert 1 <= len(r["attempts"]) <= 2 and r["transcript"].startswith(r["attempts"][0]["text"][:10])
