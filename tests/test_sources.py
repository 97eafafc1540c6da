"""Problem loading: reasoning-gym tasks, local files, datasets directories, and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from judgeforge.errors import UserError
from judgeforge.sources import Problem, SourceConfig, load_problems, split_gold_chain


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Work in tmp_path so sources are short relative names, as users type them."""
    monkeypatch.chdir(tmp_path)


def _write_jsonl(name: str, rows: list[dict[str, object]]) -> str:
    Path(name).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return name


def _error(cfg: SourceConfig) -> str:
    with pytest.raises(UserError) as info:
        load_problems(cfg)
    assert info.value.exit_code == 2
    message = info.value.format_message()
    assert "\n" not in message
    return message


# --- reasoning-gym ---------------------------------------------------------------------------------


def test_gym_gsm_symbolic_is_deterministic_with_gold_answers_and_solutions() -> None:
    cfg = SourceConfig(source="gym:gsm_symbolic", limit=3, seed=11)
    problems = load_problems(cfg)
    assert problems == load_problems(cfg)
    assert [p.id for p in problems] == [f"gym:gsm_symbolic:11:{i}" for i in range(3)]
    for problem in problems:
        assert problem.question.strip()
        assert problem.answer is not None and problem.answer.lstrip("-").isdigit()
        assert problem.solution is not None and len(problem.solution.splitlines()) >= 2
        assert "####" not in problem.solution
        assert problem.meta["gym_task"] == "gsm_symbolic"
        entry = problem.meta["gym_entry"]
        assert entry["question"] == problem.question and entry["answer"] == problem.answer
        json.dumps(problem.meta)  # JSON-safe without a default
    other_seed = load_problems(SourceConfig(source="gym:gsm_symbolic", limit=3, seed=12))
    assert [p.question for p in other_seed] != [p.question for p in problems]


def test_gym_meta_is_json_safe_for_tuple_metadata() -> None:
    (problem,) = load_problems(SourceConfig(source="gym:arc_agi", limit=1))
    json.dumps(problem.meta)
    assert isinstance(problem.meta["gym_entry"]["metadata"]["output"], list)


def test_unknown_gym_task_suggests_close_names() -> None:
    message = _error(SourceConfig(source="gym:gsm_symbolc"))
    assert message.startswith("unknown reasoning-gym task 'gsm_symbolc' in source 'gym:gsm_symbolc' (close matches: ")
    assert "gsm_symbolic" in message


# --- local files -----------------------------------------------------------------------------------

_ROWS = [
    {"uid": "a", "q": "What is 1+1?", "gold": 2, "steps": "1+1=2"},
    {"uid": "b", "q": "Half of 1?", "gold": 0.5, "steps": "1/2=0.5"},
    {"uid": "c", "q": "Capital of France?", "gold": "Paris", "steps": None},
]
_MAPPING = {"question_col": "q", "answer_col": "gold", "solution_col": "steps", "id_col": "uid"}
_EXPECTED = [
    Problem(id="a", question="What is 1+1?", answer="2", solution="1+1=2", meta={"source": "", "row": 0}),
    Problem(id="b", question="Half of 1?", answer="0.5", solution="1/2=0.5", meta={"source": "", "row": 1}),
    Problem(id="c", question="Capital of France?", answer="Paris", meta={"source": "", "row": 2}),
]


def _expected(source: str) -> list[Problem]:
    return [p.model_copy(update={"meta": {"source": source, "row": p.meta["row"]}}) for p in _EXPECTED]


def _write(name: str) -> str:
    if name.endswith(".jsonl"):
        return _write_jsonl(name, _ROWS)
    if name == "list.json":
        Path(name).write_text(json.dumps(_ROWS), encoding="utf-8")
    elif name == "wrapped.json":
        Path(name).write_text(json.dumps({"data": _ROWS}), encoding="utf-8")
    elif name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist([{**row, "gold": str(row["gold"])} for row in _ROWS]), name)
    elif name.endswith(".csv"):
        lines = ["uid,q,gold,steps"] + [f'{r["uid"]},"{r["q"]}",{r["gold"]},{r["steps"] or ""}' for r in _ROWS]
        Path(name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return name


@pytest.mark.parametrize("name", ["rows.jsonl", "list.json", "wrapped.json", "rows.parquet", "rows.csv"])
def test_file_round_trip_with_column_mapping(name: str) -> None:
    source = _write(name)
    assert load_problems(SourceConfig(source=source, **_MAPPING)) == _expected(source)


def test_default_ids_limit_and_no_gold() -> None:
    source = _write_jsonl("maths.jsonl", [{"question": f"q{i}", "answer": i} for i in range(5)])
    problems = load_problems(SourceConfig(source=source, limit=2))
    assert [(p.id, p.question, p.answer) for p in problems] == [("maths:0", "q0", "0"), ("maths:1", "q1", "1")]
    no_gold = load_problems(SourceConfig(source=source, answer_col=None))
    assert [p.answer for p in no_gold] == [None] * 5


def test_offset_skips_rows_and_keeps_their_ids() -> None:
    source = _write_jsonl("block.jsonl", [{"question": f"q{i}", "answer": i} for i in range(5)])
    problems = load_problems(SourceConfig(source=source, offset=3, limit=4))
    assert [(p.id, p.question, p.meta["row"]) for p in problems] == [("block:3", "q3", 3), ("block:4", "q4", 4)]
    assert "offset" not in SourceConfig(source=source).model_dump() and SourceConfig(source=source, offset=3).model_dump()["offset"] == 3
    with pytest.raises(UserError, match="has 5 rows: --offset 5 leaves none"):
        load_problems(SourceConfig(source=source, offset=5))
    with pytest.raises(UserError, match="a gym: task draws new problems with another --seed"):
        load_problems(SourceConfig(source="gym:basic_arithmetic", offset=1, limit=1))


def test_csv_keeps_answers_as_written() -> None:
    Path("codes.csv").write_text("question,answer\nlock code?,007\nprice?,1.50\n", encoding="utf-8")
    assert [p.answer for p in load_problems(SourceConfig(source="codes.csv"))] == ["007", "1.50"]


def test_gsm8k_style_gold_splits_into_answer_and_steps() -> None:
    source = _write_jsonl("gsm.jsonl", [{"question": "3*4+2?", "answer": "3*4=12\n\n12+2=14\n#### 14"}])
    (problem,) = load_problems(SourceConfig(source=source))
    assert (problem.answer, problem.solution) == ("14", "3*4=12\n12+2=14")
    assert split_gold_chain("no marker\nhere") == (["no marker", "here"], None)


# --- datasets --------------------------------------------------------------------------------------


def test_save_to_disk_directories_load() -> None:
    dataset = datasets.Dataset.from_list([{"question": "1+1?", "answer": 2}, {"question": "2+2?", "answer": 4}])
    dataset.save_to_disk("saved")
    problems = load_problems(SourceConfig(source="saved"))
    assert [(p.id, p.question, p.answer) for p in problems] == [("saved:0", "1+1?", "2"), ("saved:1", "2+2?", "4")]

    datasets.DatasetDict({"test": dataset}).save_to_disk("splits")
    assert load_problems(SourceConfig(source="splits", split="test", limit=1))[0].answer == "2"
    assert _error(SourceConfig(source="splits")) == "source 'splits' has no split 'train' (splits: test)"


def test_local_data_directory_loads_through_load_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    Path("pq").mkdir()
    pq.write_table(pa.Table.from_pylist([{"question": "1+1?", "answer": "2"}]), "pq/train.parquet")
    assert load_problems(SourceConfig(source="pq"))[0].answer == "2"
    assert _error(SourceConfig(source="pq", split="dev")).startswith("source 'pq': datasets cannot load split 'dev': Unknown split \"dev\"")


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["notes.txt", "two words", "/no/such/dir"])
def test_unknown_source(source: str) -> None:
    Path("notes.txt").write_text("hello", encoding="utf-8")
    assert _error(SourceConfig(source=source)) == (
        f"unknown source '{source}': expected gym:<task>, a .jsonl/.json/.parquet/.csv file, or a datasets id or path"
    )


def test_file_not_found() -> None:
    assert _error(SourceConfig(source="missing.jsonl")) == "source file 'missing.jsonl' not found"


def test_missing_column() -> None:
    _write_jsonl("f.jsonl", [{"a": "x", "b": "y"}])
    assert _error(SourceConfig(source="f.jsonl")) == "source 'f.jsonl' has no column 'question' (columns: a, b); name the right one with --question-col"
    assert _error(SourceConfig(source="f.jsonl", question_col="a")) == (
        "source 'f.jsonl' has no column 'answer' (columns: a, b); name the right one with --answer-col (or 'none' if it has no gold answers)"
    )


def test_empty_sources() -> None:
    Path("f.jsonl").write_text("\n", encoding="utf-8")
    assert _error(SourceConfig(source="f.jsonl")) == "source 'f.jsonl' has no rows"
    Path("h.csv").write_text("question,answer\n", encoding="utf-8")
    assert _error(SourceConfig(source="h.csv")) == "source 'h.csv' has no rows"
    Path("e.csv").write_text("", encoding="utf-8")
    assert _error(SourceConfig(source="e.csv")) == "source 'e.csv' has no rows"


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_empty_question(blank: str | None) -> None:
    rows = [{"question": f"q{i}", "answer": "1"} for i in range(3)] + [{"question": blank, "answer": "1"}]
    _write_jsonl("f.jsonl", rows)
    assert _error(SourceConfig(source="f.jsonl")) == "f.jsonl row 3: field 'question' is empty"


def test_invalid_json() -> None:
    Path("f.jsonl").write_text('{"question": "a"}\n{"question": "b"}\n\n{"question": oops}\n', encoding="utf-8")
    assert _error(SourceConfig(source="f.jsonl")) == "f.jsonl line 4: invalid JSON"
    Path("f.json").write_text('[{"question": "a"},\n oops]', encoding="utf-8")
    assert _error(SourceConfig(source="f.json")) == "f.json line 2: invalid JSON"
    Path("g.json").write_text('{"rows": []}', encoding="utf-8")
    assert _error(SourceConfig(source="g.json")) == ("source 'g.json': expected a JSON list of objects or {\"data\": [...]}")


def test_duplicate_id_and_bad_limit() -> None:
    _write_jsonl("f.jsonl", [{"id": "x", "question": "a"}, {"id": "x", "question": "b"}])
    cfg = SourceConfig(source="f.jsonl", id_col="id", answer_col=None)
    assert _error(cfg) == "f.jsonl row 1: field 'id' repeats id 'x'"
    assert _error(SourceConfig(source="f.jsonl", limit=0)) == "source 'f.jsonl': limit must be at least 1 (got 0)"
