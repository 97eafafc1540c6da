"""Step-label readers: one hand-written file per public layout, round-tripped to R-PRM evaluation inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from judgeforge.builders.step_inputs import load_step_inputs, read_step_solutions
from judgeforge.errors import UserError
from judgeforge.formats.step_inputs import first_wrong, label_balance

PRM800K = [
    {  # phase-2 style: the path ends at the first -1 step, which has no chosen completion
        "labeler": "l1",
        "is_quality_control_question": False,
        "question": {"problem": "What is 2 + 3 * 4?", "ground_truth_answer": "14"},
        "label": {
            "steps": [
                {"completions": [{"text": "First, 3 * 4 = 12.", "rating": 1, "flagged": False}], "human_completion": None, "chosen_completion": 0},
                {"completions": [{"text": "Then 2 + 12 = 15.", "rating": -1, "flagged": False}], "human_completion": None, "chosen_completion": None},
            ],
            "finish_reason": "found_error",
        },
    },
    {  # phase-1 style: alternatives per step, a neutral (0) chosen step counts as correct
        "question": {"problem": "Compute 10 - 4.", "ground_truth_answer": "6"},
        "label": {
            "steps": [
                {"completions": [{"text": "10 - 4 = 7.", "rating": -1}, {"text": "We subtract 4 from 10.", "rating": 0}], "chosen_completion": 1},
                {"completions": [{"text": "So the answer is 6.", "rating": 1}], "chosen_completion": 0},
            ],
            "finish_reason": "solution",
        },
    },
]

SHEPHERD = [
    {
        "input": "Tom has 3 apples and buys 2 more. How many apples does he have? Step 1: Tom starts with 3 apples. ки\nStep 2: ки",
        "label": "Tom has 3 apples and buys 2 more. How many apples does he have? Step 1: Tom starts with 3 apples. +\n"
        "Step 2: He buys 2 more, so 3 + 2 = 6. -\nStep 3: The answer is: 6 -",
        "task": "GSM8K",
    },
    {"label": "What is 5 * 2? Step 1: 5 * 2 = 10. +\nStep 2: The answer is: 10 +", "task": "GSM8K"},
]

PROCESSBENCH = [
    {
        "id": "pb-0",
        "generator": "m",
        "problem": "Ann has 4 pens and gives away 1. How many are left?",
        "steps": ["4 - 1 = 2.", "So 2 pens are left.", "The answer is 2."],
        "final_answer_correct": False,
        "label": 0,
    },
    {"id": "pb-1", "generator": "m", "problem": "What is 6 / 2?", "steps": ["6 / 2 = 3.", "The answer is 3."], "final_answer_correct": True, "label": -1},
]

TRL_STEPWISE = [
    {"prompt": "What is 1 + 1?", "completions": ["Step 1: 1 + 1 = 2.", "Step 2: The answer is 2."], "labels": [True, True]},
    {"prompt": "What is 3 + 3?", "completions": ["3 + 3 = 5.", "The answer is 5."], "labels": [False, False]},
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def simple(inputs: list[Any]) -> list[tuple[str, list[str], str, str, str | None]]:
    return [(i.id, i.previous_steps, i.now_step, i.label, i.gold_answer) for i in inputs]


def test_prm800k_follows_the_chosen_path_to_the_first_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "prm800k.jsonl", PRM800K)
    solutions = read_step_solutions(path)
    assert [s.layout for s in solutions] == ["prm800k", "prm800k"]
    assert [s.first_wrong for s in solutions] == [1, -1]
    assert simple(load_step_inputs(path)) == [
        ("prm800k:0/step-1", [], "Step 1: First, 3 * 4 = 12.", "Yes", "14"),
        ("prm800k:0/step-2", ["Step 1: First, 3 * 4 = 12."], "Step 2: Then 2 + 12 = 15.", "No", "14"),
        ("prm800k:1/step-1", [], "Step 1: We subtract 4 from 10.", "Yes", "6"),
        ("prm800k:1/step-2", ["Step 1: We subtract 4 from 10."], "Step 2: So the answer is 6.", "Yes", "6"),
    ]


def test_math_shepherd_tags_and_inputs_stop_at_the_first_minus(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "shepherd.jsonl", SHEPHERD)
    first = read_step_solutions(path)[0]
    assert first.question == "Tom has 3 apples and buys 2 more. How many apples does he have?"
    assert first.steps == ["Step 1: Tom starts with 3 apples.", "Step 2: He buys 2 more, so 3 + 2 = 6.", "Step 3: The answer is: 6"]
    assert first.labels == [True, False, False] and first.first_wrong == 1
    assert simple(load_step_inputs(path)) == [
        ("shepherd:0/step-1", [], "Step 1: Tom starts with 3 apples.", "Yes", None),
        ("shepherd:0/step-2", ["Step 1: Tom starts with 3 apples."], "Step 2: He buys 2 more, so 3 + 2 = 6.", "No", None),
        ("shepherd:1/step-1", [], "Step 1: 5 * 2 = 10.", "Yes", None),
        ("shepherd:1/step-2", ["Step 1: 5 * 2 = 10."], "Step 2: The answer is: 10", "Yes", None),
    ]


def test_processbench_index_labels_earlier_steps_yes_and_later_ones_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "processbench.json"
    path.write_text(json.dumps(PROCESSBENCH))
    solutions = read_step_solutions(path)
    assert [s.id for s in solutions] == ["pb-0", "pb-1"]
    assert solutions[0].labels == [False, None, None] and solutions[0].first_wrong == 0
    assert solutions[1].labels == [True, True] and solutions[1].first_wrong == -1
    assert simple(load_step_inputs(path)) == [
        ("pb-0/step-1", [], "Step 1: 4 - 1 = 2.", "No", None),
        ("pb-1/step-1", [], "Step 1: 6 / 2 = 3.", "Yes", None),
        ("pb-1/step-2", ["Step 1: 6 / 2 = 3."], "Step 2: The answer is 3.", "Yes", None),
    ]


def test_trl_stepwise_parquet_keeps_existing_step_headers_once(tmp_path: Path) -> None:
    path = tmp_path / "stepwise.parquet"
    pq.write_table(pa.Table.from_pylist(TRL_STEPWISE), path)
    assert simple(load_step_inputs(path)) == [
        ("stepwise:0/step-1", [], "Step 1: 1 + 1 = 2.", "Yes", None),
        ("stepwise:0/step-2", ["Step 1: 1 + 1 = 2."], "Step 2: The answer is 2.", "Yes", None),
        ("stepwise:1/step-1", [], "Step 1: 3 + 3 = 5.", "No", None),
    ]


def test_balanced_subset_is_seeded_and_equal(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "shepherd.jsonl", SHEPHERD)
    inputs = load_step_inputs(path, seed=7)
    assert label_balance(inputs) == {"Yes": 3, "No": 1}
    kept = [i for i in inputs if i.in_balanced_subset]
    assert label_balance(kept) == {"Yes": 1, "No": 1}
    assert [i.id for i in kept] == [i.id for i in load_step_inputs(path, seed=7) if i.in_balanced_subset]
    assert [i.id for i in load_step_inputs(path, limit=2)] == ["shepherd:0/step-1", "shepherd:0/step-2"]


def test_first_wrong() -> None:
    assert first_wrong([True, True]) == -1
    assert first_wrong([True, False, None]) == 1
    assert first_wrong([True, None, False]) is None


@pytest.mark.parametrize(
    ("name", "rows", "message"),
    [
        ("prm.jsonl", [{"question": {"problem": "q"}, "label": {"finish_reason": "x"}}], "prm.jsonl row 0: PRM800K layout needs field 'steps'"),
        (
            "prm.jsonl",
            [{"question": {"problem": "q"}, "label": {"steps": [{"completions": [{"text": "a"}], "chosen_completion": 3}]}}],
            "'chosen_completion' 3 is not an index",
        ),
        ("shep.jsonl", [{"label": "What? Step 1: one +\nStep 2: two"}], "shep.jsonl row 0: field 'label' step 2 does not end in a '+' or '-' tag"),
        ("shep.jsonl", [{"label": "What is it? no steps here"}], "field 'label' has no 'Step n:' steps"),
        ("pb.jsonl", [{"problem": "q", "steps": ["a", "b"]}], "pb.jsonl row 0: ProcessBench layout needs field 'label'"),
        ("pb.jsonl", [{"problem": "q", "steps": ["a", "b"], "label": 2}], "field 'label' is 2 but must be -1 or a step index below 2"),
        ("trl.jsonl", [{"prompt": "q", "completions": ["a", "b"], "labels": [True]}], "trl.jsonl row 0: 2 completions but 1 labels"),
        ("trl.jsonl", [{"prompt": "q", "completions": ["a"], "labels": ["yes"]}], "labels[0] must be true or false"),
        ("odd.jsonl", [{"question": "q", "answer": "a"}], "no known step-label layout in fields (question, answer)"),
    ],
)
def test_a_file_missing_what_its_layout_needs_fails_with_one_line(tmp_path: Path, name: str, rows: list[dict[str, Any]], message: str) -> None:
    path = write_jsonl(tmp_path / name, rows)
    with pytest.raises(UserError) as err:
        load_step_inputs(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_paths_that_are_not_step_labels(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="expected a .jsonl/.json/.parquet file, a folder of them or a step_labels run dir"):
        read_step_solutions(tmp_path / "notes.txt")
    (tmp_path / "notes").mkdir()
    with pytest.raises(UserError, match="a folder with no .jsonl/.json/.parquet files"):
        read_step_solutions(tmp_path / "notes")
    with pytest.raises(UserError, match="not found"):
        read_step_solutions(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UserError, match="has no rows"):
        read_step_solutions(tmp_path / "empty.jsonl")
