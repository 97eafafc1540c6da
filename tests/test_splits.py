"""A held-out test split at build time (``--test-fraction``): by problem, never trained on, curated and
published as a split of its own, and what ``eval judge`` reads from a run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.engines.base import Completion, Request, SamplingParams
from judgeforge.executors.local import held_out
from judgeforge.formats.judge import VERDICT_LEAD, format_judgment
from judgeforge.formats.steps import STEP_STOPS
from judgeforge.runs import open_run
from judgeforge.train.data import open_data
from judgeforge.train.judge_eval import read_pairs, trained_on_risk
from tests.helpers import read_rows
from tests.scripted import ScriptedEngine, forced

PROBLEMS = [(f"What is {a} + {a + 1}?", str(2 * a + 1)) for a in range(12)]


def _gold(prompt: str) -> str:
    a, b = map(int, re.search(r"What is (\d+) \+ (\d+)\?", prompt).groups())  # type: ignore[union-attr]
    return str(a + b)


def respond(request: Request, params: SamplingParams, k: int) -> Completion | str:
    """Candidates state the right answer (k = 0) or a wrong one; the judge prefers the right one."""
    prompt = request.messages[-1]["content"]
    gold = _gold(prompt)
    if "[Step A]" in prompt:
        step_a = prompt.split("[Step A]\n")[1].split("\n\n")[0]
        if request.prefix.endswith(VERDICT_LEAD):
            return forced(0.9 if gold in step_a else 0.1)
        better = "A" if gold in step_a else "B"
        return format_judgment(f"Step {better} states the sum.", better)
    assert params.stop == STEP_STOPS
    return f" The answer is {gold if k == 0 else int(gold) + 1}."


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    source = tmp_path / "sums.jsonl"
    source.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in PROBLEMS))
    monkeypatch.setattr("judgeforge.executors.local.make_engine", lambda spec: ScriptedEngine(respond))
    args = [
        "build",
        "eft",
        "--source",
        str(source),
        "--depth",
        "first",
        "--num-candidates",
        "2",
        "--rollouts",
        "1",
        "--test-fraction",
        "0.4",
        "--chunk-size",
        "2",
    ]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "held-out test split" in result.output
    again = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert again.exit_code == 0 and "built this run: 0" in again.output  # a resumed run recomputes nothing, test split included
    return tmp_path / "out" / "eft"


def test_held_out_is_by_id_alone_and_a_larger_fraction_holds_out_a_superset() -> None:
    ids = [f"src:{i}" for i in range(2000)]
    small, large = {i for i in ids if held_out(i, 0.1)}, {i for i in ids if held_out(i, 0.3)}
    assert small <= large and not any(held_out(i, 0.0) for i in ids)
    assert 0.07 < len(small) / len(ids) < 0.13 and 0.26 < len(large) / len(ids) < 0.34
    assert {i for i in reversed(ids) if held_out(i, 0.1)} == small  # order (and so chunking) does not matter


def test_test_split_holds_the_held_out_problems_apart_and_training_never_reads_it(built: Path, tmp_path: Path) -> None:
    train_rows, test_rows = read_rows(built), read_rows(built / "test")
    expected = {f"sums:{i}" for i in range(len(PROBLEMS)) if held_out(f"sums:{i}", 0.4)}
    assert 0 < len(expected) < len(PROBLEMS)
    assert {r["source_id"] for r in test_rows} == expected
    assert not {r["source_id"] for r in train_rows} & expected and len({r["source_id"] for r in train_rows}) == len(PROBLEMS) - len(expected)
    manifest = json.loads((built / "manifest.json").read_text())
    test_manifest = json.loads((built / "test" / "manifest.json").read_text())
    assert manifest["splits"] == {
        "train": {"inputs": len(PROBLEMS) - len(expected), "rows": len(train_rows)},
        "test": {"inputs": len(expected), "rows": len(test_rows), "path": "test", "fraction": 0.4},
    }
    assert manifest["rows_out"] == len(train_rows) and manifest["builder_stats"]["problems"] == len(PROBLEMS) - len(expected)
    assert test_manifest["split"] == "test" and test_manifest["rows_out"] == len(test_rows) and test_manifest["parent"]["run_id"] == manifest["run_id"]
    assert test_manifest["builder_stats"]["problems"] == len(expected) and test_manifest["status"] == "complete"
    # Each split's chunks are built apart: every chunk has a shard in each, empty or not.
    assert len(list((built / "data").glob("*.parquet"))) == len(list((built / "test" / "data").glob("*.parquet"))) == 6

    (run,) = open_data([built], "sft")
    assert run.rows == len(train_rows) and run.describe()["held_out_test_rows_excluded"] == len(test_rows)

    pairs, _ = read_pairs(built)  # eval judge reads the held-out split of a run that has one
    assert {p.id for p in pairs} == {r["pair_id"] for r in test_rows} and not trained_on_risk(built)


def test_a_run_without_a_test_split_is_flagged_as_possibly_trained_on(built: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["curate", str(built), "--out", str(tmp_path / "cur")])
    assert result.exit_code == 0, result.output
    assert trained_on_risk(tmp_path / "cur" / "test") is False  # a held-out split given directly is held out
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("data", "manifest.json"):
        src = built / name
        (plain / name).symlink_to(src, target_is_directory=src.is_dir())
    assert trained_on_risk(plain)


def test_curation_curates_each_split_on_its_own_and_publish_makes_two_splits(built: Path, tmp_path: Path) -> None:
    curated = tmp_path / "cur"
    result = CliRunner().invoke(main, ["curate", str(built), "--out", str(curated)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((curated / "manifest.json").read_text())
    test_manifest = json.loads((curated / "test" / "manifest.json").read_text())
    # label_balance and dedup counted each split apart: the test funnel starts from the test rows only.
    assert test_manifest["curation"]["rows_in"] == len(read_rows(built / "test")) and manifest["curation"]["rows_in"] == len(read_rows(built))
    assert manifest["splits"]["test"]["rows"] == test_manifest["rows_out"] == len(read_rows(curated / "test"))
    assert open_run(curated).test_split() is not None

    folder = tmp_path / "hub"
    result = CliRunner().invoke(main, ["publish", str(curated), "--to-dir", str(folder)])
    assert result.exit_code == 0, result.output
    card = (folder / "README.md").read_text()
    assert "split: test" in card and "path: test/data/shard-*.parquet" in card and "held-out test split" in card
    from datasets import load_dataset

    loaded = load_dataset(str(folder))
    assert loaded["train"].num_rows == manifest["rows_out"] and loaded["test"].num_rows == test_manifest["rows_out"]
    assert set(loaded["test"]["source_id"]).isdisjoint(loaded["train"]["source_id"])


def test_empty_shards_have_no_row_group_so_datasets_can_load_them(built: Path) -> None:
    empty = [p for p in sorted((built / "test" / "data").glob("*.parquet")) + sorted((built / "data").glob("*.parquet")) if pq.read_metadata(p).num_rows == 0]
    assert empty  # chunk [2, 3] holds no held-out problem
    for shard in empty:
        assert pq.read_metadata(shard).num_row_groups == 0 and pq.read_schema(shard).metadata  # the kind's stamp survives
    open_run(built / "test")


def test_test_fraction_is_refused_by_builders_whose_rows_are_not_split(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["build", "step-prefs", "--test-fraction", "0.1", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "No such option '--test-fraction'" in result.output
    from judgeforge.errors import UserError
    from judgeforge.executors.build import BuildOptions, run_build
    from judgeforge.sources import SourceConfig

    with pytest.raises(UserError, match="this builder's rows are not split"):  # before any model is loaded
        run_build(BuildOptions(builder="step-prefs", source=SourceConfig(source="gym:gsm_symbolic", limit=1), out=tmp_path, test_fraction=0.1))


def test_a_run_with_a_test_split_grows_both_splits_and_a_changed_fraction_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "sums.jsonl"
    source.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in PROBLEMS))
    monkeypatch.setattr("judgeforge.executors.local.make_engine", lambda spec: ScriptedEngine(respond))
    base = ["build", "eft", "--source", str(source), "--depth", "first", "--num-candidates", "2", "--rollouts", "1", "--chunk-size", "4"]
    out = ["--out", str(tmp_path / "out")]
    assert CliRunner().invoke(main, [*base, "--test-fraction", "0.4", "--limit", "8", *out]).exit_code == 0
    grown = CliRunner().invoke(main, [*base, "--test-fraction", "0.4", "--limit", "12", *out])
    assert grown.exit_code == 0, grown.output
    run = tmp_path / "out" / "eft"
    expected = {f"sums:{i}" for i in range(12) if held_out(f"sums:{i}", 0.4)}
    assert {r["source_id"] for r in read_rows(run / "test")} == expected
    assert len({r["source_id"] for r in read_rows(run)}) == 12 - len(expected)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["splits"]["test"]["inputs"] == len(expected) and json.loads((run / "test" / "manifest.json").read_text())["rows_in"] == len(expected)
    refused = CliRunner().invoke(main, [*base, "--test-fraction", "0.5", "--limit", "12", *out])
    assert refused.exit_code != 0 and "--test-fraction: " in refused.output
