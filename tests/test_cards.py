"""Data cards: the published folder loads with the card's own configs and the Hub's card parser accepts it.

The main test renders the card of the real session-built step-prefs run (through ``judgeforge publish
--to-dir``) and loads it with ``datasets`` and ``huggingface_hub``; the others render cards for small
synthetic runs — an unregistered kind with a curation funnel and review stats — to check the generic
fallback and the optional sections.
"""

from __future__ import annotations

import ast
import importlib
import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.data_cards.card import size_category
from judgeforge.files import write_json
from judgeforge.runs import Manifest, RunDir
from judgeforge.schemas.base import BaseRow, RowMeta, rows_to_table
from judgeforge.schemas.kind import CardExtras, Kind, NotTrained, ReviewField, ReviewQuestion, ReviewSpec
from judgeforge.schemas.registry import KINDS
from judgeforge.schemas.step_prefs import StepPrefsRow
from tests.helpers import read_rows

META = RowMeta(builder="step-prefs", builder_version="0.1.0", run_id="r", model="m")


def step_prefs_rows(statuses: list[str]) -> list[StepPrefsRow]:
    """Small synthetic step-prefs rows (one per status), for logic that needs no model."""
    return [
        StepPrefsRow(
            id=f"p{i}/step-1",
            source_id=f"p{i}",
            meta=META,
            question=f"What is {i} + 1?",
            previous_steps=[],
            step_index=1,
            chosen="a",
            rejected="b",
            chosen_is_final=False,
            rejected_is_final=False,
            chosen_score=3.0,
            rejected_score=1.0,
            candidates=["a", "b", "c"],
            candidate_scores=[3.0, 1.0, 2.0],
            judgments=[],
            judge_unparsable=0,
            gold_answer=None,
            final_answer=None,
            solution_correct=None,
            solution_status=status,
        )
        for i, status in enumerate(statuses)
    ]


def synthetic_run(root: Path, rows: list[BaseRow], manifest: dict[str, Any] | None = None) -> Path:
    """A run dir holding ``rows`` in one shard and a manifest (the builder's command unless given)."""
    kind = type(rows[0]).kind
    run = RunDir(root, kind)
    run.write_chunk(0, rows_to_table(type(rows[0]), rows), {"rows": len(rows)})
    write_json(run.manifest_path, {"kind": kind, "command": ["judgeforge", "build", "step-prefs", "--seed", "1"], **(manifest or {})})
    return root


def _front_matter(readme: Path) -> dict[str, Any]:
    text = readme.read_text()
    assert text.startswith("---\n")
    return dict(yaml.safe_load(text.split("---\n")[1]))


def _parse_card_without_warnings(readme: Path, caplog: pytest.LogCaptureFixture) -> Any:
    from huggingface_hub import DatasetCard

    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        card = DatasetCard.load(readme)
    assert not caught, [str(w.message) for w in caught]
    assert not [r for r in caplog.records if r.name.startswith("huggingface_hub")], caplog.text
    return card


def _load_with_configs(folder: Path) -> Any:
    """``load_dataset(folder)``, with a decoy Parquet file that only the card's ``configs`` pattern excludes."""
    from datasets import load_dataset

    shard = next((folder / "data").glob("shard-*.parquet"))
    shutil.copy(shard, folder / "data" / "decoy.parquet")
    try:
        return load_dataset(str(folder), split="train")
    finally:
        (folder / "data" / "decoy.parquet").unlink()


def _check_snippet(readme: Path) -> None:
    """The TRL snippet is valid Python and everything it imports exists."""
    text = readme.read_text()
    code = text.split("## Training on it with TRL")[1].split("```python\n")[1].split("```")[0]
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"


@pytest.mark.slow
def test_published_folder_loads_with_its_card(step_prefs_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "hub"
    result = CliRunner().invoke(main, ["publish", str(step_prefs_run), "--to-dir", str(folder), "--repo-id", "my-org/step-prefs", "--license", "apache-2.0"])
    assert result.exit_code == 0, result.output
    readme = folder / "README.md"
    card = _parse_card_without_warnings(readme, caplog)
    assert card.data.license == "apache-2.0" and card.data.task_categories == ["text-generation"]
    assert card.data.configs == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/shard-*.parquet"}]}]

    rows = read_rows(step_prefs_run)
    loaded = _load_with_configs(folder)
    assert loaded.num_rows == len(rows)  # the decoy is not loaded: the card's configs were used
    assert sorted(loaded["id"]) == sorted(r["id"] for r in rows)
    from datasets import Features

    declared = Features._from_yaml_list(card.data.dataset_info["features"])
    assert loaded.features == declared
    assert card.data.dataset_info["splits"][0]["num_examples"] == len(rows)
    assert card.data.size_categories == [size_category(len(rows))]

    manifest = json.loads((step_prefs_run / "manifest.json").read_text())
    text = readme.read_text()
    for fact in (
        f"`step-prefs` {manifest['builder']['version']}",
        manifest["models"]["policy"]["model"],
        "| seed | 3 |",
        "`--temperature` | 0.5",
        "arxiv.org/abs/2503.03746",
        "StepwiseDPOTrainer",
        "dpo_view",
        'load_dataset("my-org/step-prefs"',
        " ".join(manifest["command"][:3]),
    ):
        assert fact in text, fact
    for png in ("plot-score-margin.png", "plot-step-index.png", "plot-solution-status.png"):
        assert f"]({png})" in text and (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _check_snippet(readme)
    published = json.loads((folder / "manifest.json").read_text())
    assert published["reproduce"] == [manifest["command"]]


class ToyRow(BaseRow):
    kind: ClassVar[str] = "toy_kind"

    prompt: str
    answers: list[str]
    score: float


_NOT = NotTrained("a toy kind")
TOY_KIND = Kind(
    name="toy_kind",
    row=ToyRow,
    builder=("toy-builder", "tests.test_cards:NotImported"),
    paper=None,
    views={"sft": _NOT, "dpo": _NOT, "rl": _NOT},
    train_defaults={},
    default_spec="step_prefs.yaml",
    card=CardExtras("Toy rows"),
    review=ReviewSpec(
        (ReviewField("prompt", "prompt", lambda r: r["prompt"]),),
        (ReviewQuestion("keep", "Keep?", {"yes": "yes", "no": "no"}, {"yes": "keep", "no": "drop"}),),
        "Keep or drop.",
    ),
)


def test_card_of_a_kind_without_paper_or_views_with_funnel_and_review(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(KINDS, "toy_kind", "tests.test_cards:TOY_KIND")
    rows = [ToyRow(id=f"t{i}", source_id=f"s{i}", meta=META, prompt=f"p{i}", answers=["x", "y"], score=i / 10) for i in range(5)]
    funnel = [  # as `judgeforge curate` records it
        {
            "name": "dedup",
            "filter": "exact_dedup",
            "action": "drop",
            "rows_in": 9,
            "rows_out": 7,
            "dropped": 2,
            "examples": [{"id": "t7", "reason": "duplicate of t1"}],
            "stats": {},
            "report": None,
        },
        {"name": "min_score", "filter": "range", "action": "drop", "rows_in": 7, "rows_out": 5, "dropped": 2, "examples": [], "stats": {}, "report": None},
    ]
    review = {
        "answers": 4,
        "reviewers": 2,
        "records_pushed": 3,
        "records_completed": 3,
        "pulled_at": "2025-01-01T00:00:00+00:00",
        "rows": {"unreviewed": 2, "keep": 2, "relabel": 0, "drop": 1, "split": 0},
        "questions": {
            "keep": {
                "rows_reviewed": 3,
                "answers": 4,
                "agreement_with_model": None,
                "answers_compared_with_model": 0,
                "reviewer_unanimity": 1.0,
                "labels": {"no": 1, "yes": 3},
            }
        },
    }
    commands = [["judgeforge", "build", "toy"], ["judgeforge", "curate", "x"], ["judgeforge", "review", "apply", "x"]]
    run = synthetic_run(
        tmp_path / "toy", rows, {"builder": {"name": "toy", "version": "9.9.9"}, "curation": {"funnel": funnel}, "review": review, "commands": commands}
    )
    result = CliRunner().invoke(main, ["card", str(run)])
    assert result.exit_code == 0, result.output
    readme = run / "README.md"
    meta = _front_matter(readme)
    assert meta["license"] == "other" and meta["task_categories"] == ["text-generation"] and "judgeforge" in meta["tags"]
    _parse_card_without_warnings(readme, caplog)
    text = readme.read_text()
    assert "| dedup | exact_dedup | drop | 9 | 7 | `t7`: duplicate of t1 |" in text and "| min_score | range | drop | 7 | 5 |  |" in text
    assert "4 answers from 2 reviewers" in text and "| Keep? | 3 | 4 | – | 100.0% | no 1, yes 3 |" in text
    assert "judgeforge build toy\njudgeforge curate x\njudgeforge review apply x" in text
    assert "Not set (`other`)" in text and "| builder | `toy` 9.9.9 |" in text
    assert "## Citation" not in text and "Builder options" not in text  # an unknown builder: no made-up method or paper
    assert (run / "plot-funnel.png").is_file() and "](plot-funnel.png)" in text
    assert _load_with_configs(run).num_rows == 5
    _check_snippet(readme)


def test_card_errors_are_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "data").mkdir(parents=True)
    result = CliRunner().invoke(main, ["card", str(empty)])
    assert result.exit_code != 0 and "no data/shard-*.parquet" in result.output and len(result.output.strip().splitlines()) == 1
    run = synthetic_run(tmp_path / "run", step_prefs_rows(["max_steps"]))
    (run / "manifest.json").unlink()
    result = CliRunner().invoke(main, ["card", str(run)])
    assert result.exit_code != 0 and "has no manifest.json" in result.output and len(result.output.strip().splitlines()) == 1


def test_size_categories() -> None:
    assert [size_category(n) for n in (0, 999, 1_000, 54_321, 2_000_000)] == ["n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M"]


def test_reproduce_commands_follow_the_input_runs(tmp_path: Path) -> None:
    from judgeforge.runs import reproduce_commands

    build = ["judgeforge", "build", "step-prefs", "--seed", "1"]
    built = synthetic_run(tmp_path / "built", step_prefs_rows(["final_answer"]))
    curate = ["judgeforge", "curate", str(built), "--spec", "s.yaml"]
    curated = Manifest.model_validate({"command": curate, "curation": {"input": {"path": str(built)}}})
    assert reproduce_commands(curated) == [build, curate]
    review = ["judgeforge", "review", "apply", "x"]
    reviewed = Manifest.model_validate({"command": review, "parent": {"path": str(tmp_path / "curated")}, "commands": [build, curate, review]})
    assert reproduce_commands(reviewed) == [build, curate, review]
    gone = Manifest.model_validate({"command": curate, "curation": {"input": {"path": str(tmp_path / "gone")}}})
    assert reproduce_commands(gone) == [curate]
