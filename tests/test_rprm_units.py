"""R-PRM logic without a model: verdict parsing, the verdict slot, pairing, corruption, the ProcessBench F1."""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest
from click.testing import CliRunner

from judgeforge.builders.rprm import Analysis, Case, _pairs
from judgeforge.builders.rprm_format import VERDICT_LEAD, analysis_request, parse_analysis, sample_verdict, slot_verdict, verdict_slot_prefix
from judgeforge.builders.rprm_score import ProcessBenchScore, RprmScoreBuilder, predicted_first_wrong, processbench_score
from judgeforge.builders.step_labels import corrupt_step
from judgeforge.cli import main
from judgeforge.engines.base import Completion, TokenLogprob
from judgeforge.schemas.rprm import dpo_view, sft_view
from judgeforge.step_inputs import StepInput

ITEM = StepInput(id="s/step-2", solution_id="s", question="What is 2 + 3 * 4?", previous_steps=["Step 1: 3 * 4 = 12."], now_step="Step 2: 2 + 12 = 15.", step_index=2, label="No")


@pytest.mark.parametrize(
    ("text", "finish", "verdict", "status"),
    [
        (f"The sum is wrong.\n{VERDICT_LEAD} No", "eos", "No", "ok"),
        ("fine.\nverification: is the step correct (yes/no)?\n **Yes**\n", "eos", "Yes", "ok"),
        ("I cannot tell.", "eos", None, "none"),
        (f"Looks fine.\n{VERDICT_LEAD}", "eos", None, "none"),
        (f"{VERDICT_LEAD} Yes/No", "eos", None, "both"),
        (f"{VERDICT_LEAD} Yes\n{VERDICT_LEAD} No", "eos", None, "contradictory"),
        (f"{VERDICT_LEAD} No\nAgain: {VERDICT_LEAD} No", "eos", None, "several"),
        ("The step computes 2 + 12 and", "length", None, "truncated"),
        (f"{VERDICT_LEAD} Ye", "length", None, "truncated"),
    ],
)
def test_parse_analysis_counts_every_malformed_kind(text: str, finish: str, verdict: str | None, status: str) -> None:
    parsed = parse_analysis(text, finish)
    assert (parsed.verdict, parsed.status) == (verdict, status)


def test_a_parsed_analysis_is_kept_up_to_its_verdict() -> None:
    parsed = parse_analysis(f"Wrong sum.\n{VERDICT_LEAD} No. Anything after is dropped.")
    assert parsed.text == f"Wrong sum.\n{VERDICT_LEAD} No"


def test_verdict_slot_prefix_and_p_yes() -> None:
    request = analysis_request(ITEM, seed=1)
    stopped = Completion(text=" the steps so far are fine.\n", finish_reason="stop")
    assert verdict_slot_prefix(request, stopped) == f"{request.prefix} the steps so far are fine.\n{VERDICT_LEAD}"
    cut = Completion(text=" the steps so far", finish_reason="length")
    assert verdict_slot_prefix(request, cut) == f"{request.prefix} the steps so far\n\n{VERDICT_LEAD}"
    own = Completion(text=f" ok.\n{VERDICT_LEAD} Yes and more", finish_reason="eos")
    assert verdict_slot_prefix(request, own) == f"{request.prefix} ok.\n\n{VERDICT_LEAD}"
    top = {" Yes": math.log(0.6), "Yes": math.log(0.1), " No": math.log(0.3), " The": math.log(0.05)}
    verdict, p_yes = slot_verdict(Completion(text=" Yes", logprobs=[TokenLogprob(token=" Yes", logprob=math.log(0.6), top=top)]))
    assert verdict == "Yes" and p_yes == pytest.approx(0.7)
    assert slot_verdict(Completion(text=" No")) == ("No", None)  # no log-probabilities: the vote only
    assert slot_verdict(Completion(text=" The", logprobs=[TokenLogprob(token=" The", logprob=-0.1, top={" The": -0.1})])) == (None, None)


def test_forced_verdicts_are_drawn_from_p_yes_at_the_temperature() -> None:
    assert sample_verdict(0.7, 0.0, random.Random(0)) == "Yes" and sample_verdict(0.3, 0.0, random.Random(0)) == "No"
    draws = Counter(sample_verdict(0.8, 1.0, random.Random(seed)) for seed in range(2000))
    assert 0.77 < draws["Yes"] / 2000 < 0.83
    flat = Counter(sample_verdict(0.8, 2.0, random.Random(seed)) for seed in range(2000))  # 0.8^0.5 / (0.8^0.5 + 0.2^0.5) = 2/3
    assert 0.63 < flat["Yes"] / 2000 < 0.70


def test_pairs_prefer_fresh_analyses_and_respect_the_limit() -> None:
    chosen = [Analysis(0, "a", "No", "ok"), Analysis(1, "b", "No", "ok")]
    rejected = [Analysis(2, "c", "Yes", "ok"), Analysis(3, "d", "Yes", "ok")]
    assert [(c.index, r.index) for c, r in _pairs(chosen, rejected, 2)] == [(0, 2), (1, 3)]
    assert len(_pairs(chosen, rejected, 10)) == 4
    case = Case(ITEM, [*chosen, Analysis(4, "a", "No", "ok"), Analysis(5, "e", None, "truncated"), *rejected])
    assert [a.index for a in case.matching()] == [0, 1]  # the duplicate text is dropped
    assert case.counts() == {"num_analyses": 6, "num_matching": 3, "num_mismatching": 2, "num_malformed": 1}


def test_processbench_f1_matches_a_hand_computed_example() -> None:
    # Labels: three erroneous solutions (first wrong 1, 0, 2) and two correct ones (-1).
    labels = [1, 0, 2, -1, -1]
    rewards = [
        [0.9, 0.2, 0.1],  # first below 0.5: step 1 -> right
        [0.8, 0.3],  # step 1, label 0 -> wrong
        [0.7, 0.6, 0.55],  # none below -> -1, label 2 -> wrong
        [0.9, 0.8],  # -1 -> right
        [0.4, 0.9],  # step 0 -> wrong
    ]
    predictions = [predicted_first_wrong(r, 0.5) for r in rewards]
    assert predictions == [1, 1, -1, -1, 0]
    score = processbench_score(labels, predictions)
    # accuracy on erroneous = 1/3, on correct = 1/2, F1 = 2 * (1/3) * (1/2) / (1/3 + 1/2) = (1/3) / (5/6) = 0.4
    assert score.accuracy_erroneous == pytest.approx(1 / 3) and score.accuracy_correct == pytest.approx(0.5)
    assert score.f1 == pytest.approx(0.4)
    stats = {"solutions_erroneous": 3, "solutions_erroneous_right": 1, "solutions_correct": 2, "solutions_correct_right": 1}
    assert RprmScoreBuilder.score(stats).f1 == pytest.approx(0.4)
    assert ProcessBenchScore(erroneous=2, erroneous_right=0, correct=1, correct_right=1).f1 == 0.0
    assert ProcessBenchScore(correct=3, correct_right=3).f1 is None  # needs erroneous solutions too


def test_corruptions_change_one_number_or_one_operation() -> None:
    step = "Step 2: He found 17 more, getting him back to 36+17=53 pebbles."
    number = corrupt_step(step, "number", random.Random(0))
    assert number is not None and number[0].startswith("Step 2: He found 17 more, getting him back to 36+17=") and "53" not in number[0]
    operation = corrupt_step(step, "operation", random.Random(0))
    assert operation == ("Step 2: He found 17 more, getting him back to 36-17=19 pebbles.", "operation 36+17=53 -> 36-17=19")
    assert corrupt_step("Step 1: Read the problem.", "number", random.Random(0)) is None
    assert corrupt_step("Step 1: He has 3 apples.", "operation", random.Random(0)) is None
    big = corrupt_step("Step 3: The total is $400,000 + $56,000 = $456,000.", "number", random.Random(0))
    assert big is not None and "456,000" not in big[0] and big[1].startswith("number 456,000 -> ")


def test_trl_views_use_the_analysis_prompt() -> None:
    row = {"question": ITEM.question, "previous_steps": ITEM.previous_steps, "now_step": ITEM.now_step, "analysis": "x", "chosen": "c", "rejected": "r"}
    request = analysis_request(ITEM, seed=0)
    assert sft_view([row])[0]["messages"] == [request.messages[0], {"role": "assistant", "content": "x"}]
    assert dpo_view([row])[0] == {"prompt": [request.messages[0]], "chosen": [{"role": "assistant", "content": "c"}], "rejected": [{"role": "assistant", "content": "r"}]}


@pytest.mark.parametrize("command", [["build", "step-labels"], ["build", "rprm-sft"], ["build", "rprm-prefs"], ["score", "rprm"]])
def test_help_documents_every_option(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    group: Any = main
    for name in command:
        group = group.commands[name]
    for param in group.params:
        assert param.opts[0] in result.output and param.help, param.opts[0]
