"""Data cards: the published folder loads with the card's own configs and the Hub's card parser accepts it.

The main test renders the card of the real session-built step-prefs run (through ``judgeforge publish
--to-dir``) and loads it with ``datasets`` and ``huggingface_hub``; the others render cards for small
synthetic runs — an unregistered kind with a curation funnel and review stats — to check the generic
fallback and the optional sections.
"""

from __future__ import annotations

import ast
import hashlib
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
from judgeforge.schemas.step_prefs import StepJudgment, StepPrefsRow
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


# --- provenance: what the source named, when each stage ran; what the verdicts are ----------------------


def _judgments(verdicts: list[tuple[int, int, str | None, bool]]) -> list[StepJudgment]:
    return [StepJudgment(first=a, second=b, raw="", verdict=v, forced=f, p_first=None) for a, b, v, f in verdicts]


def test_card_opens_with_how_the_verdicts_came_and_whether_both_orders_agreed(tmp_path: Path) -> None:
    every_pair_both_orders = [(a, b) for a in range(3) for b in range(3) if a != b]
    forced_a = [
        row.model_copy(update={"judgments": _judgments([(a, b, "A", True) for a, b in every_pair_both_orders])}) for row in step_prefs_rows(["max_steps"])
    ]
    run = synthetic_run(tmp_path / "forced", forced_a, {"builder": {"name": "step-prefs", "version": "0.3.0"}})
    assert CliRunner().invoke(main, ["card", str(run)]).exit_code == 0
    opening = (run / "README.md").read_text().split("```python")[0]
    expected = (
        "All 6 verdicts were forced (the judge wrote none itself); no pair was judged the same in both orders (0 of 3). "
        "The judge named the side shown first in 6 of 6 verdicts."
    )
    assert expected in " ".join(opening.split())

    # Parsed verdicts that agree in both orders (0 beats 1 both times), one forced pair that does not, one pair judged once.
    mixed = _judgments([(0, 1, "A", False), (1, 0, "B", False), (0, 2, "A", True), (2, 0, "A", True), (1, 2, None, False)])
    rows = [row.model_copy(update={"judgments": mixed}) for row in step_prefs_rows(["max_steps"])]
    counted = KINDS_COUNT("step_prefs", rows)
    assert (counted.parsed, counted.forced, counted.missing, counted.first, counted.both_orders, counted.consistent) == (2, 2, 1, 3, 2, 1)
    assert counted.sentence() == (
        "2 of 5 verdicts (40%) were written by the judge itself, 2 forced, 1 missing; 1 of 2 pairs judged in both orders (50%) got the same "
        "winner both times. The judge named the side shown first in 3 of 4 verdicts."
    )


def KINDS_COUNT(kind: str, rows: list[Any], config: dict[str, Any] | None = None) -> Any:  # noqa: N802
    """The kind's own verdict count over rows, as the card reads them from the shards."""
    from judgeforge.schemas.registry import get_kind

    declared = get_kind(kind).verdicts
    assert declared is not None
    table = rows_to_table(type(rows[0]), rows).select(list(declared.columns))
    return declared.count(table, config or {})


def test_every_kind_whose_rows_carry_verdicts_counts_them() -> None:
    from judgeforge.schemas.registry import all_kinds

    assert {k.name for k in all_kinds() if k.verdicts is not None} == {"step_prefs", "eft", "ste_judgments", "rprm_sft", "rprm_prefs", "s2r_trajectories"}


def test_eft_verdicts_written_from_rollouts_are_not_passed_off_as_the_judges() -> None:
    from judgeforge.schemas.eft import EftRow

    common = dict(source_id="p", meta=META, pair_id="p/eft", question="q", previous_steps=[], step_index=1, value_a=1.0, value_b=0.0, rollouts=2)
    common |= dict(gold_answer="1", judge_raw_better_first="", judge_raw_better_second="", judgment="... [[A]]")
    rows = [
        EftRow(id="p/eft/AB", step_a="good", step_b="bad", label="A", forced_verdict=False, **common),
        EftRow(id="p/eft/BA", step_a="bad", step_b="good", label="B", forced_verdict=False, **common),
    ]
    assert KINDS_COUNT("eft", rows, {"judgment_source": "judge"}).sentence() == (
        "All 2 verdicts were written by the judge itself (none forced); every pair judged in both orders got the same winner both times (1 of 1). "
        "The judge named the side shown first in 1 of 2 verdicts."
    )
    assert KINDS_COUNT("eft", rows, {"judgment_source": "rollouts"}).sentence() == (
        "All 2 verdicts were written from the rollout evidence (--judgment-source rollouts: no judge call); every pair judged in both orders "
        "got the same winner both times (1 of 1)."
    )


def _scripted_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.scripted import ScriptedEngine

    monkeypatch.setattr("judgeforge.executors.local.make_engine", lambda spec: ScriptedEngine(lambda request, params, k: "unused"))


def test_a_curated_runs_card_shows_build_and_curation_apart_and_the_source_it_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _scripted_engines(monkeypatch)  # --from gold asks the engine nothing
    monkeypatch.chdir(tmp_path)
    Path("words.jsonl").write_text("".join(json.dumps({"q": f"What is {i} + 2?", "a": f"{i} + 2 = {i + 2}\n#### {i + 2}"}) + "\n" for i in range(3)))
    digest = hashlib.sha256(Path("words.jsonl").read_bytes()).hexdigest()
    build = ["build", "ift", "--from", "gold", "--source", "words.jsonl", "--question-col", "q", "--answer-col", "a", "--out", "runs"]
    assert CliRunner().invoke(main, build).exit_code == 0
    assert CliRunner().invoke(main, ["curate", "runs/ift", "--out", "runs/ift-curated"]).exit_code == 0
    built, curated = (Manifest.model_validate(json.loads(Path(f"runs/{r}/manifest.json").read_text())) for r in ("ift", "ift-curated"))
    assert built.source is not None and built.source.source == "words.jsonl"
    assert built.source.resolved is not None and built.source.resolved.model_dump(exclude_none=True) == {
        "type": "file",
        "path": str(tmp_path / "words.jsonl"),
        "sha256": digest,
    }
    assert curated.source == built.source and [s.stage for s in curated.stages()] == ["build", "curate"]

    assert CliRunner().invoke(main, ["card", "runs/ift-curated"]).exit_code == 0
    text = Path("runs/ift-curated/README.md").read_text()
    assert f"| built | {built.started_at} → {built.finished_at} (judgeforge " in text
    assert f"| curated | {curated.started_at} → {curated.finished_at} (judgeforge " in text
    assert f"| source | `words.jsonl` → `{tmp_path / 'words.jsonl'}` (file sha256 `{digest}`); split train; 3 inputs read" in text

    # What the source named is not the run's identity: the same command resumes, another chunk size names only that.
    again = CliRunner().invoke(main, build)
    assert again.exit_code == 0 and "(built this run: 0)" in again.output
    other = CliRunner().invoke(main, [*build, "--chunk-size", "2"])
    changed = [line.strip() for line in other.output.splitlines() if "→" in line and line.startswith("  ")]
    assert other.exit_code == 2 and changed == ["--chunk-size: 16 → 2"]


def test_a_reasoning_gym_source_is_recorded_with_its_task_seed_and_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _scripted_engines(monkeypatch)
    result = CliRunner().invoke(main, ["build", "ift", "--from", "gold", "--source", "gym:gsm_symbolic", "--limit", "2", "--seed", "4", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    manifest = Manifest.model_validate(json.loads((tmp_path / "ift/manifest.json").read_text()))
    assert manifest.source is not None and manifest.source.resolved is not None
    assert manifest.source.resolved.model_dump(exclude_none=True) == {"type": "gym", "task": "gsm_symbolic", "seed": 4, "size": 1000}
    assert CliRunner().invoke(main, ["card", str(tmp_path / "ift")]).exit_code == 0
    assert (
        "| source | `gym:gsm_symbolic` (reasoning-gym task `gsm_symbolic`, seed 4, 1000 entries); split train, limit 2; 2 inputs read"
        in (tmp_path / "ift/README.md").read_text()
    )
