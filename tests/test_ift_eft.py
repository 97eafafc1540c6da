"""IFT and EFT builders: EFT candidate and rollout logic on the scripted engine; on the embedded model,
gold/sampled solutions, rollout-grounded judgments, M0 → M1 SFT (marked slow)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from judgeforge.builders.base import BuildContext
from judgeforge.builders.eft import EftBuilder, EftConfig, EftStats
from judgeforge.builders.rollouts import RolloutResult, rollout_values
from judgeforge.cli import main
from judgeforge.engines.base import Completion, Request, SamplingParams
from judgeforge.engines.transformers import TransformersEngine
from judgeforge.formats.judge import VERDICT_LEAD, format_judgment, judge_user_message, parse_verdict
from judgeforge.formats.steps import STEP_STOPS, gold_steps
from judgeforge.schemas import eft as eft_schema
from judgeforge.schemas import ift as ift_schema
from judgeforge.sources import Problem, SourceConfig, load_problems
from tests.helpers import assert_pipeline_on, read_rows, train_tiny
from tests.scripted import ScriptedEngine, forced

EASY = [("What is 3 + 4?", "7"), ("What is 2 + 2?", "4"), ("What is 5 + 1?", "6"), ("What is 10 - 3?", "7")]


# EFT logic on the scripted engine: candidates are sampled with the step stops, rollouts without stops.

ADDITION = Problem(id="p", question="What is 2 + 2?", answer="4")


def scripted_eft(candidates: list[str], rollout: Any, verdictless: bool = False, **config: Any) -> tuple[EftBuilder, list[Any]]:
    """An EFT build of ADDITION whose k-th candidate is ``candidates[k]``, whose rollouts answer
    ``rollout(candidate_step, k)``, and whose judge prefers the step holding the gold answer 4 (with
    ``verdictless``, it writes no verdict and its forced one prefers that step)."""

    def respond(request: Request, params: SamplingParams, k: int) -> Completion | str:
        prompt = request.messages[-1]["content"]
        if "[Step A]" in prompt:
            step_a = prompt.split("[Step A]\n")[1].split("\n\n")[0]
            if request.prefix.endswith(VERDICT_LEAD):
                return forced(0.9 if "4" in step_a else 0.1)
            if verdictless:
                return "Both steps look plausible."
            return format_judgment("Step A reaches 4." if "4" in step_a else "Step B reaches 4.", "A" if "4" in step_a else "B")
        if params.stop == STEP_STOPS:
            return candidates[k]
        return rollout(request.prefix.split("\n\n")[0], k)

    engine = ScriptedEngine(respond)
    cfg = EftConfig(num_candidates=len(candidates), **{"rollouts": 2, "min_gap": 0.5, **config})
    builder = EftBuilder(cfg, BuildContext({"policy": engine, "judge": engine}, seed=0, run_id="r"))
    return builder, builder.build([ADDITION])


def test_eft_candidates_differing_only_in_leading_space_are_one_candidate() -> None:
    """The judge compares stripped steps: " 2+2=4" and "2+2=4" (valued 1.0 and 0.0 by their rollouts)
    used to be paired as best and worst, got no judgment, and the shard crashed with a KeyError."""
    values = {"Step 1: 2+2=4": ("4", "4"), "Step 1:2+2=4": ("5", "5"), "Step 1: 2+2=5": ("4", "5")}
    builder, rows = scripted_eft([" 2+2=4", "2+2=4", " 2+2=5"], lambda step, k: f" The answer is {values[step][k]}.")
    assert builder.stats["candidates"] == 2
    assert [(r.label, r.step_a.strip(), r.step_b.strip(), r.value_a, r.value_b) for r in rows] == [
        ("A", "2+2=4", "2+2=5", 1.0, 0.5),
        ("B", "2+2=5", "2+2=4", 0.5, 1.0),
    ]


def test_eft_candidate_with_no_finished_rollout_is_dropped_not_worst() -> None:
    """A candidate whose rollouts all failed (engine errors) or all ran out of budget has no value; it used
    to get 0.0 and be paired as the worst step."""
    failed, unfinished = Completion(text="", error="server error"), Completion(text=" and then", finish_reason="length")
    answers: dict[str, list[Completion | str]] = {
        "Step 1: 2+2=4": [" The answer is 4.", " The answer is 4."],
        "Step 1: 2+2=5": [" The answer is 4.", " The answer is 5."],
        "Step 1: 2+2=6": [failed, failed],
        "Step 1: 2+2=7": [unfinished, failed],
    }
    builder, rows = scripted_eft([" 2+2=4", " 2+2=5", " 2+2=6", " 2+2=7"], lambda step, k: answers[step][k], judgment_source="rollouts")
    assert {(r.step_a, r.step_b) for r in rows} == {(" 2+2=4", " 2+2=5"), (" 2+2=5", " 2+2=4")}
    stats = builder.stats
    assert stats["candidates"] == 4 and stats["candidates_no_finished_rollout"] == 2 and stats["pairs_kept"] == 1
    assert stats["rollouts"] == 8 and stats["rollouts_failed"] == 3 and stats["rollouts_unfinished"] == 1
    assert ("candidates (dropped: no finished rollout; failed)", "4 (2; 0)") in EftBuilder.report(dict(stats))


def test_eft_problem_left_with_one_valued_candidate_is_counted() -> None:
    builder, rows = scripted_eft([" 2+2=4", " 2+2=5"], lambda step, k: " The answer is 4." if "=4" in step else Completion(text="", error="x"))
    assert rows == [] and builder.stats["too_few_candidates"] == 1 and builder.stats["pairs_considered"] == 0


def test_eft_forced_verdicts_are_not_training_targets_by_default() -> None:
    """A forced verdict is a measurement: a pair whose agreeing judgments were forced is dropped and counted,
    unless --allow-forced-verdicts asks for it (then the rows say so)."""
    rollout = lambda step, k: " The answer is 4." if "=4" in step else " The answer is 5."  # noqa: E731
    builder, rows = scripted_eft([" 2+2=4", " 2+2=5"], rollout, verdictless=True)
    assert rows == [] and builder.stats["dropped_forced"] == 1 and builder.stats["judge_forced"] == 2
    builder, rows = scripted_eft([" 2+2=4", " 2+2=5"], rollout, verdictless=True, allow_forced_verdicts=True)
    assert [(r.label, r.forced_verdict, parse_verdict(r.judgment)) for r in rows] == [("A", True, "A"), ("B", True, "B")]


def test_eft_failed_candidates_and_judgments_are_dropped_and_counted() -> None:
    """A failed sample is no candidate; a pair whose judgment failed in one order is dropped, never judged as empty text."""
    failed = Completion(text="", error="server error")
    rollout = lambda step, k: " The answer is 4." if "=4" in step else " The answer is 5."  # noqa: E731
    builder, rows = scripted_eft([" 2+2=4", failed, " 2+2=5"], rollout)
    assert len(rows) == 2 and builder.stats[EftStats.FAILED_CANDIDATES] == 1 and builder.stats[EftStats.CANDIDATES] == 2

    def respond(request: Request, params: SamplingParams, k: int) -> Completion | str:
        prompt = request.messages[-1]["content"]
        if "[Step A]" in prompt:
            return failed if "=4" in prompt.split("[Step A]\n")[1].split("\n\n")[0] else format_judgment("Step B reaches 4.", "B")
        return " 2+2=4" if params.stop == STEP_STOPS and k == 0 else " 2+2=5" if params.stop == STEP_STOPS else rollout(request.prefix.split("\n\n")[0], k)

    engine = ScriptedEngine(respond)
    builder = EftBuilder(EftConfig(num_candidates=2, rollouts=2), BuildContext({"policy": engine, "judge": engine}, seed=0, run_id="r"))
    assert builder.build([ADDITION]) == []
    stats = builder.stats
    assert stats[EftStats.FAILED] == 1 and stats[EftStats.JUDGMENTS] == 1 and stats[EftStats.UNPARSABLE] == 0
    assert stats[EftStats.DROPPED_JUDGE_FAILED] == 1 and stats[EftStats.DROPPED_INCONSISTENT] == 0


def test_rollout_value_without_a_finished_rollout_is_none_not_zero() -> None:
    assert RolloutResult(rollouts=4, correct=0, unfinished=4, failed=0).value is None  # all ran out of budget
    assert RolloutResult(rollouts=4, correct=0, unfinished=1, failed=3).value is None
    assert RolloutResult(rollouts=4, correct=0, unfinished=0, failed=4).value is None
    partial = RolloutResult(rollouts=4, correct=1, unfinished=2, failed=1)
    assert partial.finished == 1 and partial.value == pytest.approx(1 / 3)  # an unfinished rollout is not correct


def run(*args: str) -> Any:
    result = CliRunner().invoke(main, ["build", *args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def easy_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Questions the 135M model sometimes gets right, so rollout labels are not all zero."""
    path = tmp_path_factory.mktemp("src") / "easy.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in EASY))
    return path


@pytest.fixture(scope="module")
def ift_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ift")
    run("ift", "--from", "gold", "--source", "gym:gsm_symbolic", "--limit", "3", "--out", str(out))
    return out / "ift"


# The easy questions have gold answers but no worked solutions: candidates are first steps (--depth first).
EFT_TINY = ["--depth", "first", "--num-candidates", "4", "--rollouts", "2", "--max-step-tokens", "24", "--rollout-max-tokens", "24", "--judge-max-tokens", "16"]


@pytest.fixture(scope="module")
def eft_run(tmp_path_factory: pytest.TempPathFactory, easy_source: Path) -> Path:
    """The paper's path: the embedded model judges each pair in both orders."""
    out = tmp_path_factory.mktemp("eft")
    run("eft", "--source", str(easy_source), *EFT_TINY, "--out", str(out))
    return out / "eft"


@pytest.fixture(scope="module")
def eft_evidence_run(tmp_path_factory: pytest.TempPathFactory, easy_source: Path, eft_run: Path) -> Path:
    """Judgments written from the rollout evidence; candidates and rollouts come from the first run's cache."""
    out = tmp_path_factory.mktemp("eft-evidence")
    run("eft", "--source", str(easy_source), *EFT_TINY, "--judgment-source", "rollouts", "--cache", str(eft_run / "cache.sqlite"), "--out", str(out))
    return out / "eft"


@pytest.mark.slow
def test_ift_from_gold_normalises_solutions_into_steps(ift_run: Path) -> None:
    rows = read_rows(ift_run)
    assert len(rows) == 3
    for row in rows:
        assert all(re.match(rf"Step {i}: \S", step) for i, step in enumerate(row["steps"], 1))
        assert row["solution"] == "\n\n".join(row["steps"])
        assert row["final_answer"] == row["gold_answer"] and row["verified"] is True
        assert row["meta"]["model"] == "gold" and row["origin"] == "gold"
    manifest = json.loads((ift_run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["mode"] == "gold"


@pytest.mark.slow
def test_ift_rerun_resumes(ift_run: Path) -> None:
    result = run("ift", "--from", "gold", "--source", "gym:gsm_symbolic", "--limit", "3", "--out", str(ift_run.parent))
    assert "(built this run: 0)" in result.output


@pytest.mark.slow
def test_ift_from_samples_keeps_only_verified_solutions(tmp_path: Path, easy_source: Path) -> None:
    run("ift", "--from", "samples", "--source", str(easy_source), "--samples-per-problem", "3", "--max-tokens", "24", "--out", str(tmp_path))
    manifest = json.loads((tmp_path / "ift/manifest.json").read_text())
    assert manifest["builder_stats"]["sampled"] == 3 * len(EASY)
    rows = read_rows(tmp_path / "ift")
    assert len(rows) <= min(len(EASY), manifest["builder_stats"].get("verified", 0))  # --keep-per-problem 1
    assert len({r["source_id"] for r in rows}) == len(rows)
    assert all(r["verified"] and r["final_answer"] is not None and r["origin"] == "samples" for r in rows)


@pytest.mark.slow
def test_rollout_values_rank_a_gold_step_above_a_corrupted_one(engine: TransformersEngine) -> None:
    """The embedded model finishes a gsm_symbolic solution from its gold steps; a wrong number in the last
    step derails it. Measured here (R=8, 40 tokens, T=0.7, seed 0): gold 0.5 vs corrupted 0.0 on this
    problem; on two others both scored 0.0 or 0.25 vs 0.0 (a 135M model rarely finishes in 40 tokens)."""
    problem = load_problems(SourceConfig(source="gym:gsm_symbolic", limit=1))[0]
    steps = gold_steps(problem)
    last = steps[-1].split(". The answer is")[0]
    number = re.findall(r"\d+", last)[-1]
    corrupted = last[: last.rindex(number)] + str(int(number) + 7) + last[last.rindex(number) + len(number) :]
    gold, bad = rollout_values(
        engine, [(problem, [*steps[:-1], last]), (problem, [*steps[:-1], corrupted])], 8, SamplingParams(temperature=0.7, top_p=0.95, max_tokens=40), 0
    )
    assert gold.rollouts == bad.rollouts == 8
    assert gold.value is not None and bad.value is not None
    assert gold.value > bad.value


@pytest.mark.slow
def test_eft_judge_path_counts_every_filter(eft_run: Path) -> None:
    """With the 135M model as its own judge, most pairs fail the both-orders check (it prefers whichever step
    it reads first); the counters must still account for every pair and judgment."""
    stats = json.loads((eft_run / "manifest.json").read_text())["builder_stats"]
    assert stats["pairs_considered"] + stats.get("too_few_candidates", 0) == len(EASY)
    gap_ok = stats["pairs_considered"] - stats.get("dropped_gap", 0)
    assert stats["judge_judgments"] == 2 * gap_ok
    assert stats["judge_judgments"] == stats.get("judge_parsed", 0) + stats.get("judge_forced", 0) + stats.get("judge_unparsable", 0)
    assert gap_ok == stats.get("pairs_kept", 0) + stats.get("dropped_inconsistent", 0) + stats.get("dropped_forced", 0)
    rows = read_rows(eft_run)
    assert len(rows) == 2 * stats.get("pairs_kept", 0)
    for row in rows:
        assert parse_verdict(row["judgment"]) == row["label"] and not row["forced_verdict"]  # forced verdicts are not targets by default


@pytest.mark.slow
def test_eft_rows_are_grounded_balanced_and_consistent(eft_evidence_run: Path) -> None:
    manifest = json.loads((eft_evidence_run / "manifest.json").read_text())
    stats = manifest["builder_stats"]
    assert manifest["engine_stats"]["cache_hits"] > 0  # candidates and rollouts reused from the judge run
    rows = read_rows(eft_evidence_run)
    assert rows, f"no EFT pair passed the value gap: {stats}"
    assert sum(r["label"] == "A" for r in rows) == sum(r["label"] == "B" for r in rows)
    for row in rows:
        better, worse = (row["value_a"], row["value_b"]) if row["label"] == "A" else (row["value_b"], row["value_a"])
        assert better - worse >= 0.5
        assert parse_verdict(row["judgment"]) == row["label"]
        assert row["judgment"] in (row["judge_raw_better_first"], row["judge_raw_better_second"])
    assert stats["pairs_kept"] * 2 == len(rows)


@pytest.mark.slow
def test_m0_to_m1_sft_trains_on_ift_and_eft_together(ift_run: Path, eft_evidence_run: Path, smollm2: Any, tmp_path: Path) -> None:
    ift = ift_schema.sft_view(read_rows(ift_run))
    eft_rows = read_rows(eft_evidence_run)
    eft = eft_schema.sft_view(eft_rows)
    first = eft_rows[0]
    assert eft[0]["prompt"][0]["content"] == judge_user_message(first["question"], first["previous_steps"], first["step_a"], first["step_b"])
    manifest = train_tiny("sft", [ift_run, eft_evidence_run], tmp_path / "m1")
    assert manifest["examples"] == len(ift) + len(eft) and manifest["trainer"] == "SFTTrainer"
    assert manifest["hyperparameters"]["learning_rate"] == 1e-6  # the paper's M0 -> M1 value
    assert len(manifest["losses"]) == 2 and all(r["loss"] > 0 for r in manifest["losses"])


@pytest.mark.slow
def test_real_ift_and_eft_runs_audit_curate_and_card(ift_run: Path, eft_run: Path, eft_evidence_run: Path, tmp_path: Path) -> None:
    for n, built in enumerate((ift_run, eft_run, eft_evidence_run)):
        assert_pipeline_on(built, tmp_path / str(n))


@pytest.mark.slow
def test_eval_judge_reads_each_eft_pair_once_with_the_rollouts_better_step_as_chosen(eft_evidence_run: Path) -> None:
    from judgeforge.train.judge_eval import read_pairs

    rows = read_rows(eft_evidence_run)
    pairs, _ = read_pairs(eft_evidence_run)
    assert len(pairs) == len({r["pair_id"] for r in rows}) == len(rows) // 2
    for pair in pairs:
        row = next(r for r in rows if r["pair_id"] == pair.id)
        better, worse = (row["step_a"], row["step_b"]) if row["label"] == "A" else (row["step_b"], row["step_a"])
        assert (pair.chosen, pair.rejected, pair.previous_steps) == (better, worse, row["previous_steps"])
