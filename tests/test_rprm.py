"""R-PRM end to end on the embedded model: step-labels → rprm-sft / rprm-prefs → score rprm, then TRL.

One module-scoped set of tiny runs is built once and shared: a step_labels run (2 problems: sampled
solutions labelled by rollouts, corrupted gold, gold), rprm-sft and rprm-prefs on its first inputs
(sharing one request cache, so the second build re-samples nothing), and a score run. With a 24-token
analysis budget the 135M model rarely reaches a verdict line by itself, so the builds use
--force-verdict: the verdict is drawn from the model's own P(Yes) at the verdict slot. That P(Yes) is
about 0.9 almost everywhere, so the analyses are sampled at temperature 1.5 (K = 4), which flattens the
draw enough to give some inputs both a matching and a non-matching analysis honestly; a build without
--force-verdict shows every cut analysis counted as malformed.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from judgeforge.builders.rprm_score import predicted_first_wrong, processbench_score
from judgeforge.builders.step_inputs import load_step_inputs, read_step_solutions
from judgeforge.cli import main
from judgeforge.formats.rprm import MALFORMED, parse_analysis, verdict_line
from tests.helpers import assert_pipeline_on, read_rows, train_tiny

pytestmark = pytest.mark.slow

# float32: these counts were read off the embedded model in float32 (--dtype auto is bfloat16 on AMX CPUs)
STEP_LABELS = [
    "--dtype",
    "float32",
    "--limit",
    "2",
    "--samples",
    "1",
    "--rollouts",
    "2",
    "--corruptions",
    "1",
    "--max-solution-tokens",
    "48",
    "--rollout-max-tokens",
    "16",
    "--seed",
    "0",
]
RPRM = ["--dtype", "float32", "--limit", "8", "--k", "4", "--max-tokens", "24", "--temperature", "1.5", "--seed", "0"]
SCORE = ["--dtype", "float32", "--limit", "2", "--k", "2", "--max-tokens", "16", "--seed", "0"]


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("rprm")
    cache = str(out / "requests.sqlite")
    invoke("build", "step-labels", *STEP_LABELS, "--out", str(out))
    labels = out / "step_labels"
    invoke("build", "rprm-sft", "--source", str(labels), *RPRM, "--force-verdict", "--out", str(out), "--cache", cache)
    invoke("build", "rprm-prefs", "--source", str(out), *RPRM, "--force-verdict", "--out", str(out), "--cache", cache)
    score = invoke("score", "rprm", "--source", str(labels), *SCORE, "--out", str(out))
    return {
        "out": out,
        "cache": cache,
        "labels": labels,
        "sft": out / "rprm_sft",
        "prefs": out / "rprm_prefs",
        "scores": out / "rprm_scores",
        "score_output": score.output,
    }


def manifest(run: Path) -> dict[str, Any]:
    return json.loads((run / "manifest.json").read_text())


def test_step_labels_rows_carry_consistent_labels(runs: dict[str, Any]) -> None:
    rows = read_rows(runs["labels"])
    origins = Counter(r["origin"] for r in rows)
    assert origins["corrupted"] == 2 and origins["gold"] == 2
    gold = {r["source_id"]: r for r in rows if r["origin"] == "gold"}
    for row in rows:
        assert len(row["labels"]) == len(row["steps"]) and row["gold_answer"]
        assert all(step.startswith(f"Step {i}:") for i, step in enumerate(row["steps"], 1))
        if row["origin"] == "gold":
            assert set(row["labels"]) == {True} and row["first_wrong"] == -1
        elif row["origin"] == "corrupted":
            k = row["first_wrong"]
            reference = gold[row["source_id"]]["steps"]
            assert [i for i, (a, b) in enumerate(zip(row["steps"], reference, strict=True)) if a != b] == [k]
            assert row["labels"] == [True] * k + [False] + [None] * (len(reference) - k - 1)
            assert row["corruption"].startswith(f"step {k + 1}: {row['corruption_kind']} ")
        else:
            assert len(row["step_values"]) == len(row["steps"]) and row["rollouts"] == 2
            assert row["labels"] == [None if v is None else v > 0 for v in row["step_values"]]  # --rule any; no finished rollout: unlabelled
    m = manifest(runs["labels"])
    assert m["status"] == "complete" and m["rows_out"] == len(rows)
    inputs = load_step_inputs(runs["labels"])
    counts = Counter(i.label for i in inputs)
    assert m["builder_stats"]["inputs_yes"] == counts["Yes"] and m["builder_stats"]["inputs_no"] == counts["No"]
    assert counts["Yes"] and counts["No"]


def test_step_labels_round_trip_through_the_trl_stepwise_layout(runs: dict[str, Any], tmp_path: Path) -> None:
    from judgeforge.schemas.step_labels import stepwise_view

    path = tmp_path / "stepwise.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in stepwise_view(read_rows(runs["labels"]))))
    from_run = [(i.question, i.previous_steps, i.now_step, i.label) for i in load_step_inputs(runs["labels"])]
    from_file = [(i.question, i.previous_steps, i.now_step, i.label) for i in load_step_inputs(path)]
    assert sorted(from_file) == sorted(from_run)


def test_rprm_sft_keeps_only_label_matching_analyses(runs: dict[str, Any]) -> None:
    rows = read_rows(runs["sft"])
    assert rows, "no analysis matched its label"
    for row in rows:
        assert row["verdict"] == row["label"] and row["analysis"].endswith(verdict_line(row["label"]))
        assert parse_analysis(row["analysis"]).verdict == row["label"]
        assert row["analysis"].startswith("Previous steps analysis:")
    assert max(Counter(r["source_id"] for r in rows).values()) <= 4
    stats = manifest(runs["sft"])["builder_stats"]
    assert stats["analyses"] == 8 * 4
    statuses = sum(stats.get(f"verdicts_{s}", 0) for s in ("ok", *MALFORMED))
    assert statuses == stats["analyses"] and stats["verdicts_forced"] > 0
    assert stats["inputs_yes"] + stats["inputs_no"] == 8
    assert stats.get("rows_yes", 0) + stats.get("rows_no", 0) == len(rows)


def test_rprm_prefs_pairs_matching_against_non_matching(runs: dict[str, Any]) -> None:
    rows = read_rows(runs["prefs"])
    assert rows, "no input had both a matching and a non-matching analysis"
    for row in rows:
        assert row["chosen_verdict"] == row["label"] != row["rejected_verdict"]
        assert row["chosen"].endswith(verdict_line(row["label"])) and row["chosen"] != row["rejected"]
        assert row["num_matching"] >= 1 and row["num_mismatching"] >= 1
    assert max(Counter(r["source_id"] for r in rows).values()) <= 2
    m = manifest(runs["prefs"])
    # Same analyses as rprm-sft: every engine call came from the shared request cache.
    assert m["engine_stats"]["cache_hits"] > 0 and m["engine_stats"]["requests"] == m["tokens"]["completion"] == 0
    stats = m["builder_stats"]
    assert (
        stats.get("inputs_all_matching", 0)
        + stats.get("inputs_all_mismatching", 0)
        + stats.get("inputs_no_valid_analysis", 0)
        + len({r["source_id"] for r in rows})
        == 8
    )


def test_without_forced_verdicts_cut_analyses_are_counted_malformed(runs: dict[str, Any], tmp_path: Path) -> None:
    result = invoke("build", "rprm-sft", "--source", str(runs["labels"]), *RPRM, "--out", str(tmp_path), "--cache", runs["cache"])
    stats = manifest(tmp_path / "rprm_sft")["builder_stats"]
    malformed = sum(stats.get(f"verdicts_{s}", 0) for s in MALFORMED)
    assert stats["verdicts_truncated"] > 0 and malformed + stats.get("verdicts_ok", 0) == stats["analyses"] == 32
    assert stats.get("verdicts_forced", 0) == 0 and "malformed" in result.output


def test_balance_keeps_an_equal_seeded_subset(runs: dict[str, Any], tmp_path: Path) -> None:
    invoke("build", "rprm-sft", "--source", str(runs["labels"]), *RPRM, "--force-verdict", "--balance", "--out", str(tmp_path), "--cache", runs["cache"])
    m = manifest(tmp_path / "rprm_sft")
    stats = m["builder_stats"]
    minority = min(stats["inputs_yes"], stats["inputs_no"])
    assert stats["analyses"] == 2 * minority * 4 and stats["inputs_dropped_by_balance"] == 8 - 2 * minority
    kept = {i.id for i in load_step_inputs(runs["labels"], limit=8) if i.in_balanced_subset}
    rows = read_rows(tmp_path / "rprm_sft")
    assert {r["source_id"] for r in rows} <= kept
    assert m["engine_stats"]["cache_hits"] > 0 and m["engine_stats"]["requests"] == 0  # their analyses were made before


def test_second_build_resumes_and_gym_sources_are_refused(runs: dict[str, Any], tmp_path: Path) -> None:
    invoke("build", "rprm-sft", "--source", str(runs["labels"]), *RPRM, "--force-verdict", "--out", str(runs["out"]), "--cache", runs["cache"])
    assert manifest(runs["sft"])["chunks"]["built_this_run"] == 0
    result = CliRunner().invoke(main, ["build", "rprm-prefs", "--source", "gym:gsm_symbolic", "--out", str(tmp_path)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and "judgeforge build step-labels" in lines[0]


def test_score_reports_the_processbench_f1_of_its_rewards(runs: dict[str, Any]) -> None:
    rows = read_rows(runs["scores"])
    summary = json.loads((runs["scores"] / "summary.json").read_text())
    assert summary["reward_method"] == "p_yes" and summary["k"] == 2
    assert (summary["threshold"], summary["threshold_chosen_by"], list(summary["subsets"])) == (0.5, "fixed", ["step_labels"])
    by_solution: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        assert row["method"] == "p_yes" and 0.0 <= row["reward"] <= 1.0 and len(row["p_yes"]) == 2 and row["subset"] == "step_labels"
        assert row["reward"] == pytest.approx(sum(row["p_yes"]) / 2)
        by_solution.setdefault(row["source_id"], []).append(row)
    solutions = {s.id: s for s in read_step_solutions(runs["labels"], limit=2)}
    assert set(by_solution) == set(solutions)
    labels, predictions = [], []
    for sid, steps in by_solution.items():
        steps.sort(key=lambda r: r["step_index"])
        assert len(steps) == solutions[sid].evaluated_steps
        assert all(r["solution_first_wrong"] == solutions[sid].first_wrong for r in steps)
        labels.append(solutions[sid].first_wrong)
        predictions.append(predicted_first_wrong([r["reward"] for r in steps], summary["threshold"]))
    expected = processbench_score(labels, predictions)
    assert expected.erroneous and expected.correct
    # One subset (the step_labels run): the mean over subsets is its F1.
    assert (
        summary["f1"] == pytest.approx(expected.f1)
        and summary["subsets"]["step_labels"]["erroneous"] == summary["solutions"]["erroneous"] == expected.erroneous
    )
    assert f"ProcessBench F1 = {expected.f1:.4f}" in runs["score_output"]


def test_sft_recipe_trains_two_steps_on_the_rprm_sft_run(runs: dict[str, Any], tmp_path: Path) -> None:
    manifest = train_tiny("sft", [runs["sft"]], tmp_path / "sft", "--batch-size", "1", "--micro-batch-size", "1", "--max-length", "768")
    assert manifest["examples"] == len(read_rows(runs["sft"])) and manifest["hyperparameters"]["learning_rate"] == 5e-6
    assert all(r["loss"] == r["loss"] and r["loss"] > 0 for r in manifest["losses"])


def test_dpo_recipe_trains_two_steps_on_the_rprm_prefs_run(runs: dict[str, Any], tmp_path: Path) -> None:
    manifest = train_tiny("dpo", [runs["prefs"]], tmp_path / "dpo", "--batch-size", "1", "--micro-batch-size", "1", "--max-length", "768")
    assert manifest["trainer"] == "DPOTrainer" and manifest["hyperparameters"]["learning_rate"] == 5e-7
    assert all(r["loss"] == r["loss"] for r in manifest["losses"])


def test_real_runs_audit_curate_and_card(runs: dict[str, Any], tmp_path: Path) -> None:
    for kind in ("labels", "sft", "prefs", "scores"):
        assert_pipeline_on(runs[kind], tmp_path)
