"""The shipped step-prefs spec on a real run built with the embedded model, checked against Python re-computations."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.curation.pipeline import default_spec_path
from judgeforge.runs import open_run
from tests.helpers import read_rows

pytestmark = pytest.mark.slow


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _position_inconsistent(row: dict[str, Any]) -> bool:
    ci, ri = row["candidates"].index(row["chosen"]), row["candidates"].index(row["rejected"])
    verdicts = {(j["first"], j["second"]): j["verdict"] for j in row["judgments"]}
    one, other = verdicts.get((ci, ri)), verdicts.get((ri, ci))
    return ci != ri and one is not None and other is not None and (one, other) != ("A", "B")  # both orders must prefer chosen


# The first five filters of the shipped spec, written out in Python: (name, row is dropped).
FIRST_FIVE = [
    ("chosen_not_rejected", lambda r: _norm(r["chosen"]) == _norm(r["rejected"])),
    ("score_gap", lambda r: r["chosen_score"] - r["rejected_score"] < 0.5),
    ("position_swap", _position_inconsistent),
    ("answer_check", lambda r: r["final_answer"] is not None and r["solution_correct"] is False),
    ("length", lambda r: not all(2 <= len(r[c]) <= 4000 for c in ("chosen", "rejected"))),
]


def test_default_spec_curates_a_real_built_run(step_prefs_run: Path, tmp_path: Path) -> None:
    rows = read_rows(step_prefs_run)
    before = {p: p.stat().st_mtime_ns for p in step_prefs_run.rglob("*") if p.is_file()}
    out = tmp_path / "curated"
    result = CliRunner().invoke(main, ["curate", str(step_prefs_run), "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "curation funnel" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    funnel = manifest["curation"]["funnel"]
    spec = yaml.safe_load(default_spec_path("step_prefs").read_text())
    assert [s["name"] for s in funnel] == [f["filter"] for f in spec["filters"]]
    assert funnel[0]["rows_in"] == len(rows) == manifest["curation"]["input"]["rows"]
    for earlier, later in itertools.pairwise(funnel):
        assert later["rows_in"] == earlier["rows_out"]
    source = json.loads((step_prefs_run / "manifest.json").read_text())
    assert manifest["curation"]["input"]["run_id"] == source["run_id"] and manifest["builder"] == source["builder"]
    # The chain that rebuilds it travels with the curated run: the build's command, then this curate command.
    assert manifest["commands"] == [source["command"], manifest["command"]]

    log = {r["id"]: r["filter"] for r in pq.read_table(out / "curation_log.parquet").to_pylist()}
    alive = rows
    for (name, dropped), step in zip(FIRST_FIVE, funnel, strict=False):
        expected = {r["id"] for r in alive if dropped(r)}
        assert {i for i, f in log.items() if f == name} == expected, name
        assert step["dropped"] == len(expected)
        alive = [r for r in alive if r["id"] not in expected]
    kept = read_rows(out)
    assert kept == [r for r in rows if r["id"] not in log]  # the curated rows are the input rows, untouched
    assert len(kept) == funnel[-1]["rows_out"] == manifest["rows_out"]
    open_run(out, "step_prefs")
    assert {p: p.stat().st_mtime_ns for p in step_prefs_run.rglob("*") if p.is_file()} == before


def test_decontamination_of_a_real_run_against_an_eval_file(step_prefs_run: Path, tmp_path: Path) -> None:
    rows = read_rows(step_prefs_run)
    question = rows[0]["question"]
    evals = tmp_path / "eval.jsonl"
    evals.write_text(json.dumps({"question": question, "answer": "0"}) + "\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"filters": [{"filter": "decontaminate", "columns": ["question"]}]}))
    out = tmp_path / "decontaminated"
    result = CliRunner().invoke(main, ["curate", str(step_prefs_run), "--spec", str(spec), "--eval", str(evals), "--out", str(out)])
    assert result.exit_code == 0, result.output

    def grams(text: str) -> set[tuple[str, ...]]:
        words = re.sub(r"\W+", " ", text.lower()).split()
        return {tuple(words[i : i + 8]) for i in range(len(words) - 7)}

    expected = {r["id"] for r in rows if grams(r["question"]) & grams(question)}
    assert rows[0]["id"] in expected
    assert {r["id"] for r in read_rows(out)} == {r["id"] for r in rows} - expected
