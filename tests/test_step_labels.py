"""Step-labels logic without a model: corruptions must make a step wrong, rollouts without evidence label nothing.

A corrupted gold step is labelled wrong (No), so a corruption that leaves the step's value as it was
(an operation swap on an identity: 2*2 -> 2+2, x+0 -> x-0, x/1 -> x*1, 0/x -> 0*x) would teach a
process reward model that a correct step is wrong. The builder runs on the shared scripted engine.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from judgeforge.builders.base import BuildContext
from judgeforge.builders.step_labels import StepLabelsBuilder, StepLabelsConfig, corrupt_step
from judgeforge.engines.base import Completion, Request, SamplingParams
from judgeforge.formats.steps import gold_steps
from judgeforge.sources import Problem
from tests.scripted import ScriptedEngine

IDENTITY_STEPS = [
    "Step 1: He packs 2*2=4 boxes.",  # * -> + : 2+2=4
    "Step 1: He packs 2 × 2 = 4 boxes.",  # × -> + : 2+2=4
    "Step 1: He packs 0*0=0 boxes.",  # * -> + : 0+0=0
    "Step 1: He keeps 12+0=12 pens.",  # + -> - : 12-0=12
    "Step 1: He keeps 12 - 0 = 12 pens.",  # - -> + : 12+0=12
    "Step 1: He keeps 12 − 0 = 12 pens.",  # − (U+2212) -> + : 12+0=12
    "Step 1: He shares 10/1=10 pens.",  # / -> * : 10*1=10
    "Step 1: He shares 0/5=0 pens.",  # / -> * : 0*5=0
    "Step 1: He shares 10 ÷ 1 = 10 pens.",  # ÷ -> × : 10×1=10
    "Step 1: He shares 0 ÷ 5 = 0 pens.",  # ÷ -> × : 0×5=0
    "Step 1: He keeps 12 + 0 pens.",  # no "=": 12-0 is still 12
    "Step 1: He shares 10 / 1 pens.",  # no "=": 10*1 is still 10
    "Step 1: So 3 - 1 * 0 = 3 pens.",  # 3+1*0 is still 3 (the "= 3" is not part of the swapped "3 - 1")
]


@pytest.mark.parametrize("step", IDENTITY_STEPS)
def test_operation_swap_that_keeps_the_value_is_not_a_corruption(step: str) -> None:
    for seed in range(10):
        assert corrupt_step(step, "operation", random.Random(seed)) is None


@pytest.mark.parametrize(
    ("original", "corrupted", "changes"),
    [
        ("Step 1: 2*2=4.", "Step 1: 2+2=4.", False),
        ("Step 1: 2 × 2 = 4", "Step 1: 2 + 2 = 4", False),
        ("Step 1: 0*7 = 0", "Step 1: 0/7 = 0", False),
        ("Step 1: 12+0 apples", "Step 1: 12-0 apples", False),
        ("Step 1: 12+0 apples", "Step 1: 12−0 apples", False),
        ("Step 1: 10/1=10", "Step 1: 10*1=10", False),
        ("Step 1: 0/5=0", "Step 1: 0*5=0", False),
        ("Step 1: He packs 0 * 7 boxes.", "Step 1: He packs 0 * 8 boxes.", False),
        ("Step 1: $1,000 + 0 = $1,000", "Step 1: $1,000 - 0 = $1,000", False),
        ("Step 1: 36+17=53 pebbles.", "Step 1: 36-17=19 pebbles.", True),
        ("Step 1: 36+17=53 pebbles.", "Step 1: 36+17=55 pebbles.", True),
        ("Step 1: He has 3 apples.", "Step 1: He has 5 apples.", True),
        ("Step 1: 2 + 3 + 4 = 9", "Step 1: 2 - 3 + 4 = 9", True),
        ("Step 1: 2.5 * 2 = 5", "Step 1: 2.5 + 2 = 4.5", True),
        ("Step 1: 7 / 0 is undefined", "Step 1: 7 * 0 is undefined", True),
    ],
)
def test_corruption_changes_value_detects_identity_corruptions(original: str, corrupted: str, changes: bool) -> None:
    from judgeforge.builders.step_labels import corruption_changes_value

    assert corruption_changes_value(original, corrupted) is changes


def test_identity_operation_swap_is_rejected_and_another_operation_drawn() -> None:
    step = "Step 1: He packs 2*2=4 boxes and 3+4=7 bags."
    drawn = {corrupt_step(step, "operation", random.Random(seed)) for seed in range(20)}
    assert drawn == {("Step 1: He packs 2*2=4 boxes and 3-4=-1 bags.", "operation 3+4=7 -> 3-4=-1")}


def test_number_change_that_keeps_the_value_is_not_a_corruption() -> None:
    """With no "=", the number to change is drawn at random; in "0 * 7" changing the 7 keeps the value 0."""
    for seed in range(20):
        changed = corrupt_step("Step 1: He packs 0 * 7 boxes.", "number", random.Random(seed))
        assert changed is not None and changed[0].endswith(" * 7 boxes.") and changed[1].startswith("number 0 -> ")


def test_corruptions_keep_todays_draw_when_it_changes_the_value() -> None:
    step = "Step 2: He found 17 more, getting him back to 36+17=53 pebbles."
    assert corrupt_step(step, "operation", random.Random(0)) == (
        "Step 2: He found 17 more, getting him back to 36-17=19 pebbles.",
        "operation 36+17=53 -> 36-17=19",
    )
    assert corrupt_step("Step 1: Read the problem.", "number", random.Random(0)) is None


def _build(problem: Problem, respond: Any = lambda request, params, k: "", **config: Any) -> tuple[StepLabelsBuilder, list[Any]]:
    builder = StepLabelsBuilder(StepLabelsConfig(**config), BuildContext({"policy": ScriptedEngine(respond)}, seed=0, run_id="r"))
    return builder, builder.build([problem])


def test_step_without_a_value_changing_corruption_is_skipped_and_counted() -> None:
    """Every operation in this gold solution is an identity, so no operation corruption makes a step wrong."""
    problem = Problem(id="p", question="How many boxes?", answer="4", solution="He has 2*2=4 boxes.\nHe adds 4+0=4 boxes.")
    builder, rows = _build(problem, samples=0, include_gold=False, corruptions=2, corruption_kinds="operation")
    assert rows == []
    assert builder.stats["corruption_draws_skipped"] == 8 and builder.stats["corruptions_missing"] == 2
    assert ("drawn steps skipped: no value-changing corruption", "8") in StepLabelsBuilder.report(dict(builder.stats))


def test_every_corrupted_step_changes_its_value() -> None:
    from judgeforge.builders.step_labels import corruption_changes_value

    problem = Problem(id="p", question="How many boxes?", answer="11", solution="He has 2*2=4 boxes.\nHe adds 4+0=4 boxes.\nThen 4+7=11 boxes.")
    _, rows = _build(problem, samples=0, include_gold=False, corruptions=4)
    gold = gold_steps(problem)
    assert rows
    for row in rows:
        wrong = row.first_wrong
        assert row.labels[wrong] is False and corruption_changes_value(gold[wrong], row.steps[wrong])


def test_sampled_step_with_no_finished_rollout_is_unlabelled_not_wrong() -> None:
    """Every rollout from step 1 runs out of its token budget: no evidence, so no label (it used to be No)."""

    def respond(request: Request, params: SamplingParams, k: int) -> Completion | str:
        if params.max_tokens == 100:  # the solution
            return " 3+4=7.\n\nStep 2: So 7-3=4. The answer is 4."
        return Completion(text=" and then", finish_reason="length")

    problem = Problem(id="p", question="What is 3 + 4 - 3?", answer="4")
    builder, rows = _build(problem, respond, samples=1, rollouts=2, corruptions=0, max_solution_tokens=100, rollout_max_tokens=50)
    (row,) = rows
    assert row.origin == "sampled" and row.labels == [None, True] and row.step_values == [None, 1.0] and row.first_wrong is None
    assert builder.stats["steps_no_finished_rollout"] == 1 and builder.stats["rollouts_unfinished"] == 2
