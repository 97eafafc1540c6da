"""``judgeforge eval best-of-n``: the selections on scripted policies and PRMs whose answers are known by
hand, and one end-to-end run of the embedded model as policy and PRM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from judgeforge.builders.rprm_score import RprmScoreConfig
from judgeforge.cli import main
from judgeforge.engines.base import Completion, Request, SamplingParams
from judgeforge.formats.rprm import ANALYSIS_START, VERDICT_LEAD
from judgeforge.models import resolve_model
from judgeforge.sources import Problem
from judgeforge.train.best_of_n import BestOfNSettings, aggregate, figures, majority_answer, pick, sample, select
from tests.scripted import ScriptedEngine, yes_no

PROBLEMS = [Problem(id="p0", question="What is 2 + 2?", answer="4"), Problem(id="p1", question="What is 3 + 3?", answer="6")]

# The policy: greedy solutions are wrong; the samples (k = 0, 1, 2) of each problem are these step bodies.
GREEDY = " I guess. The answer is 7."
SAMPLES = {
    "p0": [
        " Two plus two.\n\nStep 2: The answer is 4.",  # right, two steps: rewards 0.8, 0.8 → min 0.8, product 0.64
        " The answer is 5.",  # wrong, one step: reward 0.7 → min 0.7, product 0.7
        " The answer is 5.",  # wrong again: majority says 5
    ],
    "p1": [
        " The answer is 6.",  # right: 0.9
        " Three and three.\n\nStep 2: The answer is 9.",  # wrong: 0.95, 0.3
        " The answer is 6.",  # right: 0.9, a tie with sample 0 (the first wins)
    ],
}
# The PRM's P(Yes) of a now step, by the step's text.
P_YES = {"Two plus two.": 0.8, "The answer is 4.": 0.8, "The answer is 5.": 0.7, "The answer is 6.": 0.9, "Three and three.": 0.95, "The answer is 9.": 0.3}


def policy(request: Request, params: SamplingParams, k: int) -> str:
    if params.temperature == 0:
        return GREEDY
    problem = "p0" if "2 + 2" in request.messages[-1]["content"] else "p1"
    return SAMPLES[problem][k]


def prm(request: Request, params: SamplingParams, k: int) -> Completion | str:
    if request.prefix == ANALYSIS_START:
        return " The step follows from the problem."
    assert request.prefix.rstrip().endswith(VERDICT_LEAD)
    now = re.search(r"\[Now step\]\nStep \d+: (.*)$", request.messages[-1]["content"], re.S)
    assert now is not None
    return yes_no(P_YES[now.group(1).strip()])


def test_aggregates_selection_and_majority_by_hand() -> None:
    assert aggregate([0.8, 0.8], "min") == 0.8 and aggregate([0.8, 0.8], "product") == pytest.approx(0.64)
    assert aggregate([0.9, None], "min") is None and aggregate([], "product") is None  # an unscored step, or no step: unscored
    assert pick([None, 0.5, 0.9, 0.9]) == 2  # the highest; ties go to the first
    assert pick([None, None]) is None
    assert majority_answer(["5", None, "4", "4", "5"]) == "5"  # a tie goes to the answer stated first
    assert majority_answer([None]) is None


def test_best_of_n_on_scripted_policy_and_prm() -> None:
    settings = BestOfNSettings(n=3, max_tokens=32, prm=RprmScoreConfig(k=2, max_tokens=16))
    policy_engine, prm_engine = ScriptedEngine(policy), ScriptedEngine(prm)
    results = select(prm_engine, PROBLEMS, sample(policy_engine, PROBLEMS, settings), settings)
    assert len(policy_engine.calls) == 2  # greedy, then all N samples of every problem in one call
    assert len(prm_engine.calls) == 2  # every step's K analyses in one call, every verdict slot in another
    p0, p1 = results
    assert [s.step_rewards for s in p0.samples] == [pytest.approx([0.8, 0.8]), pytest.approx([0.7]), pytest.approx([0.7])]
    # p0: min keeps the right two-step sample (0.8 > 0.7); product keeps a wrong one-step sample (0.7 > 0.64).
    assert p0.picked == {"min": 0, "product": 1} and p0.majority_answer == "5"
    # p1: both keep sample 0 (0.9; sample 2 ties and loses); the wrong sample has a 0.3 step.
    assert p1.picked == {"min": 0, "product": 0} and p1.majority_answer == "6"
    f = figures(results)
    assert (f.problems, f.graded, f.samples, f.failed_samples, f.unscored_samples, f.problems_unscored) == (2, 2, 6, 0, 0, 0)
    assert f.pass_at_1 == 0.0  # the greedy answer is 7 both times
    assert f.best_of_n == {"min": 1.0, "product": 0.5}
    assert f.majority == 0.5 and f.oracle == 1.0


def test_failed_samples_are_counted_never_scored_or_picked() -> None:
    def flaky(request: Request, params: SamplingParams, k: int) -> Completion | str:
        return Completion(text="", error="server said no") if params.temperature > 0 and k == 0 else policy(request, params, k)

    settings = BestOfNSettings(n=3, max_tokens=32, prm=RprmScoreConfig(k=1, max_tokens=16))
    results = select(ScriptedEngine(prm), PROBLEMS, sample(ScriptedEngine(flaky), PROBLEMS, settings), settings)
    assert [s.index for s in results[0].samples] == [1, 2] and results[0].failed_samples == 1
    # Without its right sample 0, p0's pick is a wrong one; p1 keeps its other right sample (2).
    assert results[0].picked["min"] == 1 and results[1].picked["min"] == 2
    f = figures(results)
    assert (f.samples, f.failed_samples, f.oracle, f.best_of_n["min"]) == (6, 2, 0.5, 0.5)


@pytest.mark.slow
def test_eval_best_of_n_runs_the_embedded_model_end_to_end(tmp_path: Path) -> None:
    out, plot = tmp_path / "bon.json", tmp_path / "bon.png"
    args = ["eval", "best-of-n", "--limit", "1", "--n", "2", "--k", "1", "--max-tokens", "24", "--prm-max-tokens", "8", "--out", str(out), "--plot", str(plot)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "pass@1" in result.output and plot.stat().st_size > 0
    (record,) = json.loads(out.read_text())
    weights = resolve_model("smollm2").weights_hash
    assert record["weights_hash"] == weights and record["prm_weights_hash"] == weights and len(record["source_fingerprint"]) == 64
    assert record["settings"]["n"] == 2 and record["settings"]["prm"]["k"] == 1
    (problem,) = record["results"]
    assert len(problem["samples"]) + problem["failed_samples"] == 2
    for s in problem["samples"]:
        assert all(r is None or 0.0 <= r <= 1.0 for r in s["step_rewards"])
    assert record["figures"]["samples"] == 2 and record["figures"]["graded"] == 1
