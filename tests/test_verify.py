"""Answer extraction and grading: reasoning-gym scorers, math-verify equivalence, string fallback."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from judgeforge.sources import Problem, SourceConfig, load_problems
from judgeforge.verify import answers_match, check_answer, extract_answer, has_final_answer, verify_batch


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("First \\boxed{1}, finally \\boxed{\\frac{\\sqrt{3}}{2}}.", "\\frac{\\sqrt{3}}{2}"),
        ("\\boxed{\\{1, 2\\}} then a cut-off \\boxed{3", "\\{1, 2\\}"),
        ("12 + 2 = 14\n#### 14\n", "14"),
        ("The answer is 42.", "42"),
        ("So the answer is 3.5 apples.", "3.5"),
        ("Step 3: 3 + 4 = 7, so the answer is 7.", "7"),
        ("Therefore, the final answer is: 12", "12"),
        ("**Final Answer:** **$1,234$**.", "1,234"),
        ("Answer: $18", "18"),
        ("The answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
        ("\\boxed{7} beats #### 8 and answer: 9", "7"),
        ("Let me think step by step.\n2 + 2 = 4", None),
        ("Answer:", None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected
    assert has_final_answer(text) is (expected is not None)


@pytest.mark.parametrize(
    "text",
    [
        "To find the answer: first compute 3+4",
        "Step 1: To find the answer: first compute 3 + 4 = 7.",
        "the answer is not obvious yet, so let us compute 3 + 4 first",
        "The answer is not obvious yet. Let us compute 3 + 4 = 7.",
        "Let's find the answer. First, 3 + 4 = 7.",
        "The answer is 7 minus the 3 we gave away. So 7 - 3 = 4 apples remain.",
        "We know the answer is 7 minus 3, so we compute 7 - 3 = 4 next.",
        "The answer is 7, so let us check it: 7 - 3 = 4.",
        "Answer: first add the two numbers.",
        "So the answer is 3.5 apples. Done.",
        "#### Step 2: add the costs\n3 + 4 = 7",
    ],
)
def test_final_answer_phrase_mid_step_is_not_final(text: str) -> None:
    """An "answer" phrase that does not close the text with a value is reasoning, not a final answer."""
    assert extract_answer(text) is None
    assert has_final_answer(text) is False


@pytest.mark.parametrize(
    ("gold", "predicted"),
    [
        ("0.5", "1/2"),
        ("0.5", "\\frac{1}{2}"),
        ("1/2", "\\frac12"),
        ("1000", "1,000"),
        ("x+1", "1+x"),
        ("2\\sqrt{2}", "\\sqrt{8}"),
        ("42", "42.0"),
        ("Paris", "\\text{paris}"),
        ("A", "a"),
    ],
)
def test_equivalent_answers(gold: str, predicted: str) -> None:
    assert answers_match(gold, predicted)


@pytest.mark.parametrize(("gold", "predicted"), [("0.5", "0.6"), ("yes", "sey"), ("Paris", "London"), ("3", "x")])
def test_different_answers(gold: str, predicted: str) -> None:
    assert not answers_match(gold, predicted)


def test_check_answer_with_math_verify_and_fallback() -> None:
    half = Problem(id="h", question="Half of 1?", answer="1/2")
    assert check_answer(half, "It is \\boxed{0.5}.") is True
    assert check_answer(half, "The answer is 0.25.") is False
    assert check_answer(half, "I do not know.") is False
    assert check_answer(Problem(id="c", question="Capital?", answer="Paris"), "Final answer: paris") is True
    assert check_answer(Problem(id="n", question="No gold"), "\\boxed{1}") is None


def test_check_answer_off_the_main_thread() -> None:
    half = Problem(id="h", question="Half of 1?", answer="0.5")
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda text: check_answer(half, text), ["\\boxed{\\frac{1}{2}}", "\\boxed{2}"]))
    assert results == [True, False]


def test_gym_gold_answer_verifies_and_wrong_answer_does_not() -> None:
    problems = load_problems(SourceConfig(source="gym:gsm_symbolic", limit=3, seed=11))
    for problem in problems:
        assert problem.answer is not None
        assert check_answer(problem, f"{problem.solution}\n#### {problem.answer}") is True
        assert check_answer(problem, f"The answer is \\boxed{{{int(problem.answer) + 1}}}.") is False
        assert check_answer(problem, "no final answer here") is False
        # A problem read back from disk, without what regenerates the entry, grades from the saved copy.
        meta = {"gym_task": "gsm_symbolic", "gym_entry": problem.meta["gym_entry"]}
        restored = Problem.model_validate_json(problem.model_copy(update={"meta": meta}).model_dump_json())
        assert check_answer(restored, f"\\boxed{{{problem.answer}}}") is True


def test_gym_scorer_gets_the_original_entry() -> None:
    """arc_agi compares tuple grids: the JSON copy in meta holds lists, so scoring must regenerate."""
    (problem,) = load_problems(SourceConfig(source="gym:arc_agi", limit=1, seed=2))
    restored = Problem.model_validate_json(problem.model_dump_json())
    assert check_answer(restored, f"\\boxed{{{problem.answer}}}") is True
    assert check_answer(restored, "\\boxed{0 0}") is False


def test_gym_task_without_single_gold_is_still_graded() -> None:
    (problem,) = load_problems(SourceConfig(source="gym:boxnet", limit=1))
    assert problem.answer is None
    assert check_answer(problem, "no plan") is False


def test_verify_batch() -> None:
    problems = [Problem(id="a", question="?", answer="4"), Problem(id="b", question="?")]
    assert verify_batch(problems, ["#### 4", "#### 4"]) == [True, None]
    with pytest.raises(ValueError):
        verify_batch(problems, ["#### 4"])
