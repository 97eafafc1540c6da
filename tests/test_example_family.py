"""Adding a dataset family is one builder file, one schema file and one registry line.

The family lives in ``tests/example_family/`` (``schema.py``: row, view, review, card, default spec;
``builder.py``: the builder) and the test adds the one registry line itself, so no module of the package
knows about it. It is then built on the embedded model, curated with its own default spec, reviewed on
the real Argilla server, carded, and trained with the existing SFT recipe — all through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.schemas.registry import KINDS
from tests.argilla_fixture import Argilla, answer_records, cli
from tests.example_family.schema import KIND
from tests.helpers import read_rows, train_tiny

pytestmark = pytest.mark.slow


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KINDS, "short_answers", "tests.example_family.schema:KIND")  # the one registry line


def test_a_family_added_outside_the_package_runs_through_the_whole_pipeline(registered: None, argilla: Argilla, tmp_path: Path) -> None:
    runner = CliRunner()
    assert "short-answers" in runner.invoke(main, ["build", "--help"]).output
    built = runner.invoke(main, ["build", "short-answers", "--source", "gym:gsm_symbolic", "--limit", "4", "--max-tokens", "32", "--out", str(tmp_path)])
    assert built.exit_code == 0, built.output
    run = tmp_path / "short_answers"
    rows = {r["id"]: r for r in read_rows(run)}
    manifest = json.loads((run / "manifest.json").read_text())
    assert len(rows) == 4 and manifest["builder"]["name"] == "short-answers" and manifest["builder_stats"]["answers"] == 4
    assert all(r["correct"] == (r["final_answer"] is not None and r["correct"]) for r in rows.values())

    # Curated with the kind's own default spec: only verified answers stay.
    curated = tmp_path / "curated"
    result = runner.invoke(main, ["curate", str(run), "--out", str(curated)])
    assert result.exit_code == 0, result.output
    funnel = json.loads((curated / "manifest.json").read_text())["curation"]["funnel"]
    assert [s["filter"] for s in funnel] == [f["filter"] for f in yaml.safe_load(Path(KIND.default_spec).read_text())["filters"]]
    assert {r["id"] for r in read_rows(curated)} == {i for i, r in rows.items() if r["correct"]}

    # Reviewed on the real Argilla server with the kind's question: a "no" flips the label.
    import argilla as rg

    pushed = cli(["review", "push", str(run), "--dataset", "short-answers", "--api-url", argilla.url, "--sample", "2"], argilla.owner_key)
    assert pushed.exit_code == 0, pushed.output
    sample = {r.id for r in rg.Argilla(api_url=argilla.url, api_key=argilla.owner_key).datasets("short-answers").records()}
    keep, flip = sorted(sample)
    shown = answer_records(argilla.url, argilla.reviewer_keys[0], "short-answers", "correct", {keep: ("submitted", "yes"), flip: ("submitted", "no")})
    assert shown == {i: ("yes" if rows[i]["correct"] else "no") for i in sample}
    assert cli(["review", "pull", str(run), "--dataset", "short-answers", "--api-url", argilla.url], argilla.owner_key).exit_code == 0
    applied = cli(["review", "apply", str(run), "--out", str(tmp_path / "reviewed")])
    reviewed = tmp_path / "reviewed" / "short_answers"
    assert applied.exit_code == 0, applied.output
    after = {r["id"]: r for r in read_rows(reviewed)}
    assert after[keep] == rows[keep] and after[flip]["correct"] is (not rows[flip]["correct"]) and len(after) == 4

    # Carded: the kind's name, its plot, its TRL snippet with the kind's own view.
    card = runner.invoke(main, ["card", str(reviewed), "--out", str(tmp_path / "card")])
    assert card.exit_code == 0, card.output
    text = (tmp_path / "card" / "README.md").read_text()
    assert "Short answers (example family) (short_answers)" in text and (tmp_path / "card" / "plot-answer-length.png").is_file()
    assert "from tests.example_family.schema import sft_view" in text and "SFTTrainer" in text

    # Trained by the existing SFT recipe on the kind's view, with the kind's declared defaults.
    trained = train_tiny("sft", [reviewed], tmp_path / "model")
    assert trained["hyperparameters"]["learning_rate"] == 1e-6 and trained["examples"] == 4
