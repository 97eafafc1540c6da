"""Zero-row builds and curations on the embedded model say why, and the option they name changes it.

What issue 19 saw, reproduced with SmolLM2-135M on two word problems with non-default column names and
token budgets small enough that nothing survives: each build's summary names the counter that took the
rows, with the numbers the manifest holds, and the option to change; re-running with that option (engine
calls answered from the first run's cache where the option leaves them alone) moves that counter.
Curating the session's step-prefs run with the default spec keeps no rows, warns on stderr naming
score_gap and why the judge's verdicts are weak (re-counted here from the rows), and the spec it names
keeps rows. The card of that run opens with the verdicts' account, re-counted here from the rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from judgeforge.cli import main
from tests.helpers import read_rows

pytestmark = pytest.mark.slow

WORDS = [
    ("Tom has 3 apples and buys 4 more. How many apples does he have?", "7"),
    ("A box holds 5 pens. How many pens are in 3 boxes?", "15"),
]
FLAT = " ".join  # rich wraps the warning lines at the console width


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    path = tmp_path_factory.mktemp("words") / "words.jsonl"
    path.write_text("".join(json.dumps({"problem": q, "final": a}) + "\n" for q, a in WORDS))
    return ["--source", str(path), "--question-col", "problem", "--answer-col", "final", "--dtype", "float32"]


def build(*args: str) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(main, ["build", *args])
    assert result.exit_code == 0, result.output
    out = Path(args[args.index("--out") + 1])
    (manifest,) = (json.loads(p.read_text()) for p in out.glob("*/manifest.json"))
    return result, manifest


def why(result: Result) -> str:
    """The warning under the summary, on one line."""
    text = FLAT(result.output.split())
    assert "warning: the run kept 0 rows of " in text, result.output
    return text.split("warning: the run kept 0 rows of ", 1)[1]


def test_ift_from_samples_names_the_token_budget_that_cut_every_sample(words: list[str], tmp_path: Path) -> None:
    result, manifest = build("ift", "--from", "samples", *words, "--samples-per-problem", "2", "--max-tokens", "16", "--out", str(tmp_path / "a"))
    stats = manifest["builder_stats"]
    assert manifest["rows_out"] == 0 and stats["cut_by_max_tokens"] == stats["sampled"] == 4
    assert (
        "problems_without_verified_sample: all 2 problems had no sampled solution whose final answer verified (0 of 4 samples verified; "
        "4 were cut by --max-tokens 16, 0 failed) — raise --samples-per-problem (now 2) or --max-tokens"
    ) in why(result)
    _, longer = build("ift", "--from", "samples", *words, "--samples-per-problem", "2", "--max-tokens", "96", "--out", str(tmp_path / "b"))
    assert longer["builder_stats"]["cut_by_max_tokens"] < 4


def test_eft_names_the_rollout_budget_and_a_larger_one_values_the_candidates(words: list[str], tmp_path: Path) -> None:
    tiny = ["--depth", "first", "--num-candidates", "2", "--rollouts", "2", "--max-step-tokens", "16", "--judge-max-tokens", "16"]
    result, manifest = build("eft", *words, *tiny, "--rollout-max-tokens", "16", "--out", str(tmp_path / "a"))
    stats = manifest["builder_stats"]
    assert manifest["rows_out"] == 0 and stats["rollouts_unfinished"] == stats["rollouts"] > 0
    text = why(result)
    assert (
        f"candidates_no_finished_rollout: {stats['candidates_no_finished_rollout']} of {stats['candidates']} candidates had no rollout that "
        f"finished within --rollout-max-tokens 16 ({stats['rollouts']} of {stats['rollouts']} rollouts were cut) — raise --rollout-max-tokens"
    ) in text
    cache = str(tmp_path / "a/eft/cache.sqlite")  # the candidates are the same calls: only the rollouts are new
    _, longer = build("eft", *words, *tiny, "--rollout-max-tokens", "64", "--cache", cache, "--out", str(tmp_path / "b"))
    assert longer["builder_stats"]["candidates"] == stats["candidates"]
    assert longer["builder_stats"]["candidates_no_finished_rollout"] < stats["candidates_no_finished_rollout"]


@pytest.fixture(scope="module")
def processbench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two hand-labelled solutions in the ProcessBench layout (label: the first wrong step, -1 for none)."""
    path = tmp_path_factory.mktemp("pb") / "processbench.jsonl"
    rows = [
        {"id": "pb-0", "problem": WORDS[0][0], "steps": ["Tom starts with 3 apples.", "He buys 4 more: 3 + 4 = 8.", "The answer is 8."], "label": 1},
        {"id": "pb-1", "problem": WORDS[1][0], "steps": ["Each box holds 5 pens.", "3 boxes hold 5 * 3 = 15 pens.", "The answer is 15."], "label": -1},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_rprm_names_truncated_analyses_and_force_verdict_gives_them_one(processbench: Path, tmp_path: Path) -> None:
    common = ["--source", str(processbench), "--limit", "3", "--dtype", "float32", "--k", "2", "--max-tokens", "16"]
    result, manifest = build("rprm-sft", *common, "--out", str(tmp_path / "a"))
    assert manifest["rows_out"] == 0 and manifest["builder_stats"]["verdicts_truncated"] == 6
    assert "verdicts_truncated: all 6 analyses were cut by --max-tokens 16 before their verdict — raise --max-tokens, or --force-verdict" in why(result)
    cache = ["--cache", str(tmp_path / "a/rprm_sft/cache.sqlite")]  # the same analyses: prefs and the forced run only add verdict slots
    prefs, _ = build("rprm-prefs", *common, *cache, "--out", str(tmp_path / "p"))
    assert "inputs_no_valid_analysis: all 3 inputs had no analysis with a verdict — raise --max-tokens (now 16), or --force-verdict" in why(prefs)
    _, forced = build("rprm-sft", *common, *cache, "--force-verdict", "--out", str(tmp_path / "b"))
    assert forced["builder_stats"].get("verdicts_truncated", 0) == 0 and forced["builder_stats"]["verdicts_forced"] == 6 and forced["rows_out"] > 0


def test_self_taught_names_the_lost_instructions_and_forced_targets(words: list[str], tmp_path: Path) -> None:
    tiny = ["--num-judgments", "2", "--instruction-max-tokens", "24", "--response-max-tokens", "24", "--judge-max-tokens", "16"]
    result, manifest = build("self-taught", *words, *tiny, "--out", str(tmp_path / "a"))
    stats = manifest["builder_stats"]
    assert manifest["rows_out"] == 0 and stats["similar_unfinished"] > 0 and stats["targets_excluded_forced"] > 0
    text = why(result)
    assert (
        f"similar_parse_failures: {stats['similar_parse_failures']} of 2 instructions got no usable similar instruction x' "
        f"({stats['similar_unfinished']} cut by --instruction-max-tokens 24 before the end marker"
    ) in text
    assert (
        f"pairs_no_correct: {stats['pairs_no_correct']} of {stats['pairs_built']} pairs built had no judgment that picks y^w and may be a target "
        f"(0 verdicts parsed, {stats['judge_forced']} forced, 0 unparsable; of the correct verdicts, {stats['targets_excluded_forced']} forced) — "
        "a judge that seldom writes its verdict itself leaves only forced verdicts: --allow-forced-verdicts makes them targets"
    ) in text
    cache = str(tmp_path / "a/ste_judgments/cache.sqlite")  # the same calls: the option only changes which verdicts are targets
    allowed, after = build("self-taught", *words, *tiny, "--allow-forced-verdicts", "--cache", cache, "--out", str(tmp_path / "b"))
    assert after["builder_stats"].get("targets_excluded_forced", 0) == after["builder_stats"].get("pairs_no_correct", 0) == 0
    assert after["builder_stats"]["kept_before_balance"] > 0 and "pairs_no_correct" not in why(allowed)


def test_s2r_names_questions_without_a_correct_sample(words: list[str], tmp_path: Path) -> None:
    result, manifest = build("s2r-trajectories", *words, "--num-samples", "2", "--max-tokens", "16", "--verify-max-tokens", "16", "--out", str(tmp_path))
    stats = manifest["builder_stats"]
    assert manifest["rows_out"] == 0 and stats["no_trajectory_no_correct_sample"] == 2
    assert (
        f"no_trajectory_no_correct_sample: all 2 questions had no correct Stage-0 sample (0 of 4 samples correct; "
        f"{stats['samples_without_answer']} stated no final answer) — raise --num-samples (now 2) or --max-tokens (now 16"
    ) in why(result)


def _verdicts(rows: list[dict[str, Any]]) -> tuple[int, int, int, int]:
    """(parsed, forced, pairs judged in both orders, of them with the same winner both times), counted from the rows."""
    parsed = forced = both = same = 0
    for row in rows:
        winner = {}
        for j in row["judgments"]:
            if j["verdict"] is not None:
                forced += j["forced"]
                parsed += not j["forced"]
                winner[(j["first"], j["second"])] = j["first"] if j["verdict"] == "A" else j["second"]
        for (a, b), w in winner.items():
            if a < b and (b, a) in winner:
                both += 1
                same += w == winner[(b, a)]
    return parsed, forced, both, same


def test_a_curation_that_keeps_nothing_warns_why_and_the_spec_it_names_keeps_rows(step_prefs_run: Path, tmp_path: Path) -> None:
    rows = read_rows(step_prefs_run)
    gaps = [r["chosen_score"] - r["rejected_score"] for r in rows]
    assert rows and max(gaps) < 0.5  # the small self-judge's soft verdicts: every pair below the default spec's score gap
    result = CliRunner().invoke(main, ["curate", str(step_prefs_run), "--out", str(tmp_path / "default")])
    assert result.exit_code == 0
    manifest = json.loads((tmp_path / "default/manifest.json").read_text())
    assert manifest["rows_out"] == 0
    parsed, forced, both, same = _verdicts(rows)
    assert parsed == 0 and forced > 0  # the embedded judge writes no verdict of its own in 16 tokens
    (line,) = manifest["curation"]["diagnosis"]
    low, high = round(min(gaps), 4), round(max(gaps), 4)
    assert line.startswith(f"score_gap: removed all {len(rows)} rows (chosen_score − rejected_score gaps {low:g}–{high:g} < min_gap 0.5)")
    assert f": every verdict was forced, {same} of {both} pairs got the same winner in both orders" in line
    assert line.endswith(
        "— build with a stronger --judge-model, or curate with --spec step_prefs_weak_judge to keep a small judge's pairs as weakly grounded ones"
    )
    assert FLAT(f"warning: curation kept 0 of {len(rows)} rows: {line}".split()) in FLAT(result.stderr.split())
    weak = CliRunner().invoke(main, ["curate", str(step_prefs_run), "--out", str(tmp_path / "weak"), "--spec", "step_prefs_weak_judge"])
    assert weak.exit_code == 0 and json.loads((tmp_path / "weak/manifest.json").read_text())["rows_out"] > 0 and "warning" not in weak.stderr


def test_the_card_of_a_real_run_opens_with_its_verdicts(step_prefs_run: Path, tmp_path: Path) -> None:
    parsed, forced, both, same = _verdicts(read_rows(step_prefs_run))
    assert CliRunner().invoke(main, ["card", str(step_prefs_run), "--out", str(tmp_path)]).exit_code == 0
    opening = FLAT((tmp_path / "README.md").read_text().split("```python")[0].split())
    assert f"All {forced} verdicts were forced (the judge wrote none itself); " in opening and parsed == 0
    agreement = "no pair was judged the same in both orders" if not same else f"{same} of {both} pairs judged in both orders"
    assert agreement in opening
