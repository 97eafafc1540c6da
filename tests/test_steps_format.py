"""The step format: gold solutions and sampled solutions become ``Step n:`` steps without losing content.

The IFT data teaches the step layout "without changing the content" of a solution (Process-based
Self-Rewarding), so normalisation may only number steps, drop blank ones and strip the whitespace around
a step -- never rewrite what is inside it.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from judgeforge.builders.base import BuildContext
from judgeforge.builders.ift import IftBuilder, IftConfig
from judgeforge.engines.base import Completion
from judgeforge.formats.steps import gold_steps, normalise_steps, solution_text, split_steps
from judgeforge.sources import Problem
from tests.scripted import ScriptedEngine

GOLD = "Tom has 3 apples  and buys 4 more:\t3 + 4 = 7.\n\n   \nHe eats 2, so   7 - 2 = 5 are left.\n"


def test_gold_blank_lines_make_no_empty_steps() -> None:
    steps = gold_steps(Problem(id="p", question="?", solution=GOLD, answer="5"))
    assert len(steps) == 2
    assert all(step.removeprefix(f"Step {i}:").strip() for i, step in enumerate(steps, 1))


def test_gold_step_whitespace_inside_a_step_is_unchanged() -> None:
    steps = gold_steps(Problem(id="p", question="?", solution=GOLD, answer="5"))
    assert steps == [
        "Step 1: Tom has 3 apples  and buys 4 more:\t3 + 4 = 7.",
        "Step 2: He eats 2, so   7 - 2 = 5 are left. The answer is 5.",
    ]


def test_normalise_steps_blank_bodies_are_dropped_and_content_kept() -> None:
    bodies = ["  Add:  3 + 4 = 7.  ", "", " \t ", "Line one\nline two", "The answer is 7."]
    assert normalise_steps(bodies, "7") == ["Step 1: Add:  3 + 4 = 7.", "Step 2: Line one\nline two", "Step 3: The answer is 7."]


def test_split_steps_whitespace_only_line_separates_steps() -> None:
    assert split_steps("3 + 4 = 7.\n  \t\nThe answer is 7.") == ["3 + 4 = 7.", "The answer is 7."]
    assert split_steps("Step 1:  3 +  4 = 7.\n\nStep 2:\n\nStep 3: The answer is 7.") == ["3 +  4 = 7.", "The answer is 7."]


def test_ift_gold_rows_blank_lines_make_no_empty_steps_and_keep_content() -> None:
    engine = ScriptedEngine(lambda request, params, k: "")
    builder = IftBuilder(IftConfig(), BuildContext({"policy": engine}, seed=0, run_id="r"))
    (row,) = builder.build([Problem(id="p", question="Tom has 3 apples and buys 4 more, then eats 2. How many are left?", solution=GOLD, answer="5")])
    assert engine.calls == []  # gold mode samples nothing
    assert row.steps == gold_steps(Problem(id="p", question="?", solution=GOLD, answer="5"))  # type: ignore[attr-defined]
    assert "Step 3" not in row.solution and "so   7 - 2" in row.solution  # type: ignore[attr-defined]
    assert row.verified is True and row.final_answer == "5"  # type: ignore[attr-defined]


def test_ift_sampled_step_whitespace_inside_a_step_is_unchanged() -> None:
    engine = ScriptedEngine(lambda request, params, k: Completion(text="  3 +  4 = 7.\n\nStep 2:  The answer is 7.", finish_reason="eos"))
    builder = IftBuilder(IftConfig(mode="samples", samples_per_problem=1), BuildContext({"policy": engine}, seed=0, run_id="r"))
    (row,) = builder.build([Problem(id="p", question="3 + 4?", answer="7")])
    assert row.steps == ["Step 1: 3 +  4 = 7.", "Step 2: The answer is 7."]  # type: ignore[attr-defined]


LINE = st.text(alphabet="ab 3+=.\t", min_size=1, max_size=20).filter(lambda s: s.strip())


@given(st.lists(st.one_of(LINE, st.sampled_from(["", "  ", "\t"])), min_size=1, max_size=6))
def test_gold_lines_round_trip_through_the_step_format(lines: list[str]) -> None:
    """Every non-blank gold line is one step, in order, with its content as written."""
    steps = normalise_steps(lines, None)
    kept = [line.strip() for line in lines if line.strip()]
    assert steps == [f"Step {i}: {line}" for i, line in enumerate(kept, 1)]
    assert split_steps(solution_text(steps)) == kept
