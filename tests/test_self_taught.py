"""`judgeforge build self-taught`: selection and balancing logic, then end to end on the embedded model.

The logic tests use hand-made judgments and the shared scripted engine; the slow tests build one real run with
SmolLM2-135M (tiny limits) and reuse it for the rows, the manifest, resume, the order randomisation and
a 2-step TRL SFT run on the SFT view.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from judgeforge.builders.base import BuildContext
from judgeforge.builders.self_taught import (
    NEW_INSTRUCTION_END,
    NEW_INSTRUCTION_START,
    SelfTaughtBuilder,
    SelfTaughtConfig,
    SelfTaughtStats,
    balance_verdicts,
    choose_judgments,
    parse_similar_instruction,
    presentation_order,
)
from judgeforge.cli import main
from judgeforge.engines.base import Completion, Request, SamplingParams
from judgeforge.formats.judge import VERDICT_LEAD, format_judgment, parse_verdict, response_judge_message
from judgeforge.formats.verdicts import SlotReading, draw
from judgeforge.schemas.self_taught import SampledJudgment, dpo_view, sft_view
from judgeforge.sources import Problem
from tests.helpers import assert_pipeline_on, read_rows, train_tiny
from tests.scripted import ScriptedEngine, forced

EASY = [("What is 3 + 4?", "7"), ("What is 2 + 2?", "4"), ("What is 5 + 1?", "6"), ("What is 10 - 3?", "7")]
# The 135M judge seldom writes a verdict itself in 16 tokens: the end-to-end run trains on forced ones.
TINY = [
    "--num-judgments",
    "4",
    "--keep-per-pair",
    "4",
    "--instruction-max-tokens",
    "40",
    "--response-max-tokens",
    "24",
    "--judge-max-tokens",
    "16",
    "--allow-forced-verdicts",
    "--seed",
    "0",
]


# --- logic on hand-made inputs ------------------------------------------------------------------------


def test_presentation_order_is_seeded_and_uses_both_positions() -> None:
    orders = [presentation_order(7, f"item-{i}", k) for i in range(20) for k in range(4)]
    assert orders == [presentation_order(7, f"item-{i}", k) for i in range(20) for k in range(4)]
    assert 25 < orders.count("A") < 55  # a fair coin over 80 draws
    assert orders != [presentation_order(8, f"item-{i}", k) for i in range(20) for k in range(4)]


def test_presentation_order_alternates_so_every_pair_is_judged_both_ways() -> None:
    for n in (2, 3, 4, 5):
        for i in range(30):
            orders = [presentation_order(7, f"item-{i}", k) for k in range(n)]
            assert set(orders) == {"A", "B"}, (n, i, orders)
            assert all(a != b for a, b in itertools.pairwise(orders))  # consecutive samples swap positions
    # the seed still decides which order sample 0 gets, and it is the coin it was before
    firsts = [presentation_order(7, f"item-{i}", 0) for i in range(40)]
    assert set(firsts) == {"A", "B"} and firsts == [presentation_order(7, f"item-{i}", 0) for i in range(40)]


def test_parse_similar_instruction_counts_unfinished_empty_and_copies() -> None:
    assert parse_similar_instruction(Completion(text=" How many eyes? \n", finish_reason="stop"), "How many legs?") == ("How many eyes?", "ok")
    assert parse_similar_instruction(Completion(text="How many eyes?", finish_reason="eos"), "How many legs?") == ("How many eyes?", "ok")
    assert parse_similar_instruction(Completion(text="How many eyes and", finish_reason="length"), "q") == (None, "unfinished")
    assert parse_similar_instruction(Completion(text="", error="boom"), "q") == (None, "failed")
    assert parse_similar_instruction(Completion(text="  \n"), "q") == (None, "empty")
    assert parse_similar_instruction(Completion(text="how many  LEGS?"), "How many legs?") == (None, "copy")


def sample_forced_verdict(p_a: float, temperature: float, seed: int) -> str | None:
    return draw(SlotReading(None, {"A": p_a, "B": 1 - p_a}), temperature, random.Random(seed))


def test_forced_verdicts_are_drawn_at_the_judge_temperature() -> None:
    assert {sample_forced_verdict(0.6, 0.0, s) for s in range(50)} == {"A"}  # greedy
    assert {sample_forced_verdict(0.5, 0.0, s) for s in range(50)} == {"A"}  # an exact coin: the first verdict
    assert {sample_forced_verdict(p, 0.7, s) for p in (0.0, 1.0) for s in range(50)} == {"B", "A"}
    assert {sample_forced_verdict(1.0, 0.7, s) for s in range(50)} == {"A"}
    draws = [sample_forced_verdict(0.75, 0.7, s) for s in range(2000)]
    assert abs(draws.count("A") / 2000 - 0.827) < 0.03  # 0.75^(1/0.7) / (0.75^(1/0.7) + 0.25^(1/0.7))
    assert abs([sample_forced_verdict(0.75, 1.0, s) for s in range(2000)].count("A") / 2000 - 0.75) < 0.03
    assert draws == [sample_forced_verdict(0.75, 0.7, s) for s in range(2000)]
    assert draw(SlotReading("B", None), 0.7, random.Random(0)) == "B"  # no log-probabilities: the greedy token


def test_choose_judgments_prefers_the_scarcer_verdict_and_respects_keep() -> None:
    options = [[(0, "A"), (1, "A")], [(0, "A"), (2, "B")], [(1, "B"), (3, "A")], [(0, "A")]]
    chosen = choose_judgments(options, 1, seeds=[1, 2, 3, 4])
    assert chosen[0] in ([0], [1]) and chosen[1] == [2] and len(chosen[2]) == 1 and chosen[3] == [0]
    assert chosen == choose_judgments(options, 1, seeds=[1, 2, 3, 4])
    assert [len(c) for c in choose_judgments(options, 2, seeds=[1, 2, 3, 4])] == [2, 2, 2, 1]
    assert choose_judgments([[]], 1, seeds=[0]) == [[]]


def test_balance_verdicts_drops_a_seeded_surplus_and_keeps_order() -> None:
    rows = [("r0", "A"), ("r1", "A"), ("r2", "B"), ("r3", "A"), ("r4", "B"), ("r5", "A")]
    balanced = balance_verdicts(rows, lambda r: r[1], seed=3)
    assert Counter(v for _, v in balanced) == {"A": 2, "B": 2}
    assert [r for r in rows if r in balanced] == balanced and ("r2", "B") in balanced and ("r4", "B") in balanced
    assert balanced == balance_verdicts(rows, lambda r: r[1], seed=3)
    assert {r for s in range(20) for r in balance_verdicts(rows, lambda r: r[1], seed=s)} == set(rows)  # which ones varies with the seed
    assert balance_verdicts(rows[:2], lambda r: r[1], seed=0) == []


def scripted_model(judge: str = "right", p_a: float = 0.0) -> ScriptedEngine:
    """x' = the question with "legs" → "eyes"; a response echoes its instruction; the judge prefers the
    response mentioning "legs" (``judge="right"``), writes no verdict (``"verdictless"``) or names both
    (``"contradictory"``); a forced verdict has P(A) = ``p_a``."""

    def respond(r: Request, params: SamplingParams, k: int) -> Completion:
        text = r.messages[-1]["content"]
        if r.prefix.endswith(VERDICT_LEAD):
            return forced(p_a)
        if r.prefix.startswith(NEW_INSTRUCTION_START):
            question = text.split("[INSTRUCTION]\n")[1].split(f"\n{NEW_INSTRUCTION_END}")[0]
            return Completion(text=question.replace("legs", "eyes"), finish_reason="eos")
        if text.startswith("You are an impartial judge"):
            a = re.search(r"\[Response A\]\n(.*)\n\n\[Response B\]", text, re.DOTALL).group(1)  # type: ignore[union-attr]
            verdict = "A" if "legs" in a else "B"
            return Completion(
                text={
                    "right": format_judgment("It answers the question.", verdict),
                    "verdictless": "No verdict here.",
                    "contradictory": "At first [[A]] seemed right, but on reflection [[B]].",
                }[judge]
            )
        return Completion(text=f"About: {text.splitlines()[0]} The answer is {'6' if 'legs' in text else '4'}")

    return ScriptedEngine(respond)


def scripted_build(engine: ScriptedEngine, **config: Any) -> tuple[SelfTaughtBuilder, list[Any]]:
    problems = [Problem(id=f"p{i}", question=f"How many legs do {i} ants have?", answer="6") for i in range(8)]
    builder = SelfTaughtBuilder(SelfTaughtConfig(**config), BuildContext({"policy": engine, "judge": engine}, seed=5, run_id="r"))
    return builder, builder.build(problems)


def call_sizes(engine: ScriptedEngine) -> list[int]:
    return [len(batch) for batch in engine.calls]


def test_scripted_build_keeps_correct_balanced_judgments_in_one_call_per_stage() -> None:
    engine = scripted_model()
    builder, rows = scripted_build(engine, num_judgments=4)
    assert call_sizes(engine) == [8, 16, 32]  # x', responses, judgments: one batched call each
    stats = builder.stats
    assert stats["pairs_built"] == 8 and stats["judgments"] == 32 and stats["judgments_correct"] == 32 and stats["judge_parsed"] == 32
    assert stats["better_verified"] == 8 and stats["worse_verified"] == 0
    assert len(rows) == stats["rows"] and stats["rows_A"] == stats["rows_B"] == len(rows) // 2 > 0
    for row in rows:
        assert "legs" in row.better_response and "eyes" in row.worse_response and "eyes" in row.similar_instruction
        assert parse_verdict(row.judgment) == row.label and row.num_correct == 4 and row.iteration == 0


def test_scripted_build_forces_missing_verdicts_and_filters_by_min_correct_fraction() -> None:
    engine = scripted_model("verdictless", p_a=0.0)
    builder, rows = scripted_build(engine, num_judgments=4, min_correct_fraction=0.5, allow_forced_verdicts=True, iteration=2)
    assert call_sizes(engine) == [8, 16, 32, 32]  # the forced-verdict continuation is one more batched call
    stats = builder.stats
    assert stats["judge_forced"] == 32 and stats["judge_parsed"] == stats["judge_unparsable"] == 0
    # forced verdicts always say B: a judgment agrees with the label exactly when it showed y^w as B,
    # which is every other judgment of a pair (the orders alternate)
    assert stats["forced_agreeing"] == 16 and stats["judgments_correct"] == 0 and stats["pairs_no_correct"] == 0
    assert stats["dropped_min_correct"] == 0 and stats["kept_before_balance"] == 8
    # every kept judgment says B, so balancing must drop them all
    assert stats["dropped_balance"] == 8 and rows == []
    strict, _ = scripted_build(scripted_model("verdictless", p_a=0.0), num_judgments=4, min_correct_fraction=0.75, allow_forced_verdicts=True)
    assert strict.stats["dropped_min_correct"] == 8 and strict.stats["kept_before_balance"] == 0


def test_forced_verdicts_are_not_training_targets_by_default() -> None:
    # P(A) = 0.5: every forced verdict is a coin flip, which must never become a "correct" judgment to train on
    builder, rows = scripted_build(scripted_model("verdictless", p_a=0.5), num_judgments=4)
    stats = builder.stats
    assert stats["judge_forced"] == 32 and stats["judgments_correct"] == 0
    assert rows == [] and stats["rows"] == 0
    assert stats["targets_excluded_forced"] == stats["forced_agreeing"] > 0 and stats["pairs_no_correct"] == 8
    lines = dict(SelfTaughtBuilder.report(dict(stats)))
    assert lines["correct, not a target: forced (no --allow-forced-verdicts) / text not parsing to the label"] == f"{stats['forced_agreeing']:g} / 0"
    assert lines["correct-verdict rate (parsed verdicts)"] == "0 / 0"
    # opted in, the same coin flips become targets, and are counted as forced rows
    builder, rows = scripted_build(scripted_model("verdictless", p_a=0.5), num_judgments=4, allow_forced_verdicts=True)
    assert rows and all(row.judgment_forced for row in rows) and builder.stats["targets_excluded_forced"] == 0


def test_forced_verdict_never_yields_contradicting_target() -> None:
    # The judge names both [[A]] and [[B]]: forcing a verdict onto that text would make a target with both.
    engine = scripted_model("contradictory", p_a=0.5)
    builder, rows = scripted_build(engine, num_judgments=4, allow_forced_verdicts=True)
    stats = builder.stats
    assert not any("[[A]]" in row.judgment and "[[B]]" in row.judgment for row in rows) and rows == []
    assert call_sizes(engine) == [8, 16, 32]  # nothing to force
    assert stats["judge_unparsable"] == stats["judge_contradictory"] == 32 and stats["judge_forced"] == 0
    from judgeforge.formats.judge import can_force

    assert not can_force("At first [[A]] seemed right, but on reflection [[B]].") and can_force("No verdict here.")


def test_training_target_must_reparse_to_the_label() -> None:
    from judgeforge.builders.self_taught import target_exclusion

    def judgment(text: str, shown: str = "A", forced: bool = False) -> SampledJudgment:
        return SampledJudgment(index=0, better_shown_as=shown, text=text, verdict=shown, forced=forced, p_a=0.9 if forced else None, correct=True)  # type: ignore[arg-type]

    assert target_exclusion(judgment("Fine. [[A]]"), allow_forced=False) is None
    assert target_exclusion(judgment("Fine. [[A]] but [[B]]"), allow_forced=True) == "not_reparsed"
    assert target_exclusion(judgment("Fine. [[B]]"), allow_forced=True) == "not_reparsed"
    assert target_exclusion(judgment("No verdict."), allow_forced=True) == "not_reparsed"
    assert target_exclusion(judgment("Hm.\n\nVerdict: [[A]]", forced=True), allow_forced=False) == "forced"
    assert target_exclusion(judgment("Hm.\n\nVerdict: [[A]]", forced=True), allow_forced=True) is None


def test_a_failed_judgment_is_dropped_not_an_empty_unparsable_judgment() -> None:
    """A failed judge call used to become a judgment with the text "" (unparsable) in the pair's judgments."""
    engine = scripted_model()
    right = engine.respond

    def respond(r: Request, params: SamplingParams, k: int) -> Completion | str:
        if r.messages[-1]["content"].startswith("You are an impartial judge") and r.seed % 4 == 0:
            return Completion(text="", error="server error")
        return right(r, params, k)

    engine.respond = respond
    builder, rows = scripted_build(engine, num_judgments=4, keep_per_pair=4)
    stats = builder.stats
    failed = stats[SelfTaughtStats.FAILED]
    assert 0 < failed < 32 and stats[SelfTaughtStats.JUDGMENTS] == 32 - failed == stats[SelfTaughtStats.PARSED]
    assert stats[SelfTaughtStats.UNPARSABLE] == 0 and rows
    for row in rows:
        assert all(j.text and j.verdict is not None for j in row.judgments) and row.num_judgments == len(row.judgments)
    assert sum(4 - row.num_judgments for row in {r.source_id: r for r in rows}.values()) <= failed


def test_scripted_build_judges_every_pair_in_both_orders() -> None:
    _, rows = scripted_build(scripted_model(), num_judgments=2, keep_per_pair=2)
    assert rows and {tuple(sorted(j.better_shown_as for j in row.judgments)) for row in rows} == {("A", "B")}


def test_rows_name_the_wrong_judgments_of_their_order_as_dpo_rejecteds() -> None:
    """rejected_indices: exactly the pair's judgments shown in the kept one's order that name the worse response."""
    engine = scripted_model()
    right = engine.respond

    def respond(r: Request, params: SamplingParams, k: int) -> Completion | str:
        if r.messages[-1]["content"].startswith("You are an impartial judge") and r.seed % 3 == 0:  # a seeded third are wrong
            a = re.search(r"\[Response A\]\n(.*)\n\n\[Response B\]", r.messages[-1]["content"], re.DOTALL).group(1)  # type: ignore[union-attr]
            return Completion(text=format_judgment("It answers the question.", "B" if "legs" in a else "A"))
        return right(r, params, k)

    engine.respond = respond
    builder, rows = scripted_build(engine, num_judgments=6, keep_per_pair=2)
    assert rows
    for row in rows:
        wrong = {j.index for j in row.judgments if j.better_shown_as == row.label and j.verdict is not None and j.verdict != row.label}
        assert set(row.rejected_indices) == wrong and len(row.rejected_indices) == len(wrong)
    assert builder.stats["rows_without_rejected"] == sum(not row.rejected_indices for row in rows)
    assert 0 < builder.stats["rows_without_rejected"] < len(rows)
    # A forced wrong verdict stands as a rejected one only where forced verdicts may be targets.
    builder, rows = scripted_build(scripted_model("verdictless", p_a=0.5), num_judgments=4, allow_forced_verdicts=True)
    assert any(row.rejected_indices for row in rows)
    assert all(next(j for j in row.judgments if j.index == k).forced for row in rows for k in row.rejected_indices)


# --- end to end on the embedded model --------------------------------------------------------------------

slow = pytest.mark.slow


def run(*args: str) -> Any:
    result = CliRunner().invoke(main, ["build", "self-taught", *args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def easy_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "easy.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in EASY))
    return path


@pytest.fixture(scope="module")
def ste_run(tmp_path_factory: pytest.TempPathFactory, easy_source: Path) -> Path:
    out = tmp_path_factory.mktemp("ste")
    run("--source", str(easy_source), *TINY, "--chunk-size", "4", "--iteration", "1", "--out", str(out))
    return out / "ste_judgments"


@slow
def test_build_writes_balanced_correct_judgments_and_a_full_manifest(ste_run: Path) -> None:
    rows = read_rows(ste_run)
    manifest = json.loads((ste_run / "manifest.json").read_text())
    stats = Counter(manifest["builder_stats"])  # counters never incremented are absent
    assert manifest["status"] == "complete" and manifest["rows_in"] == 4 and manifest["rows_out"] == len(rows)
    assert manifest["builder"] == {"name": "self-taught", "version": SelfTaughtBuilder.version} and manifest["config"]["iteration"] == 1
    assert stats["instructions"] == 4 and stats["judgments"] == 4 * stats["pairs_built"]
    assert stats["judgments"] == stats["judge_parsed"] + stats["judge_forced"] + stats["judge_unparsable"]
    assert stats["rows"] == len(rows) == stats["rows_A"] + stats["rows_B"] and stats["rows_A"] == stats["rows_B"]
    assert rows, f"no rows survived; stats: {stats}"
    for row in rows:
        assert row["iteration"] == 1 and row["judge_model"] == manifest["models"]["judge"]["model"]
        assert row["similar_instruction"] and row["similar_instruction"] != row["instruction"]
        assert row["better_response"] != row["worse_response"] and row["gold_answer"] is not None
        assert row["num_judgments"] == len(row["judgments"]) == 4
        assert row["num_parsed"] + row["num_forced"] + row["num_unparsable"] == 4
        assert row["num_correct"] == sum(j["correct"] for j in row["judgments"]) >= 1
        kept = next(j for j in row["judgments"] if j["index"] == row["judgment_index"])
        assert kept["correct"] and kept["text"] == row["judgment"] and kept["better_shown_as"] == row["label"]
        assert parse_verdict(row["judgment"]) == row["label"]  # the SFT target parses to the right verdict
        for j in row["judgments"]:
            assert j["correct"] == (j["verdict"] == j["better_shown_as"])
        by_index = {j["index"]: j for j in row["judgments"]}
        assert all(by_index[k]["better_shown_as"] == row["label"] and by_index[k]["verdict"] not in (None, row["label"]) for k in row["rejected_indices"])
    assert stats["rows_without_rejected"] == sum(not row["rejected_indices"] for row in rows)


@slow
def test_order_randomisation_is_pinned_by_the_seed(ste_run: Path) -> None:
    rows = read_rows(ste_run)
    for row in rows:
        assert [j["better_shown_as"] for j in row["judgments"]] == [presentation_order(0, row["source_id"], k) for k in range(4)]
    orders = [presentation_order(0, f"easy:{i}", k) for i in range(len(EASY)) for k in range(4)]
    assert set(orders) == {"A", "B"}
    assert {row["label"] for row in rows} == {"A", "B"}  # balanced rows carry both orders


@slow
def test_second_run_resumes_and_recomputes_nothing(ste_run: Path, easy_source: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in (ste_run / "data").glob("*.parquet")}
    result = run("--source", str(easy_source), *TINY, "--chunk-size", "4", "--iteration", "1", "--out", str(ste_run.parent))
    assert json.loads((ste_run / "manifest.json").read_text())["chunks"]["built_this_run"] == 0
    assert {p: p.stat().st_mtime_ns for p in (ste_run / "data").glob("*.parquet")} == before
    assert "correct-verdict rate" in result.output and "(built this run: 0)" in result.output


@slow
def test_sft_view_is_the_judge_prompt_as_presented_and_trains_two_steps(ste_run: Path, smollm2: Any, tmp_path: Path) -> None:
    rows = read_rows(ste_run)
    records = sft_view(rows)
    for row, record in zip(rows, records, strict=True):
        [user], [assistant] = record["prompt"], record["completion"]
        a, b = (row["better_response"], row["worse_response"]) if row["label"] == "A" else (row["worse_response"], row["better_response"])
        assert user["content"] == response_judge_message(row["instruction"], a, b)
        assert parse_verdict(assistant["content"]) == row["label"]
    manifest = train_tiny("sft", [ste_run], tmp_path / "sft")
    assert manifest["examples"] == len(records) and all(r["loss"] == r["loss"] and r["loss"] > 0 for r in manifest["losses"])


@slow
def test_dpo_plus_nll_recipe_trains_two_steps_on_the_judges_own_pairs(ste_run: Path, tmp_path: Path) -> None:
    """The shipped ste-dpo.yaml: DPO beta 0.1 + NLL of the chosen judgment (the released Llama-3.1 judge's recipe)."""
    import math

    records = dpo_view(read_rows(ste_run))
    assert records, "no kept judgment has a wrong one of its pair in its order"
    manifest = train_tiny("ste-dpo.yaml", [ste_run], tmp_path / "dpo", "--model", "smollm2")
    assert manifest["trainer"] == "DPOTrainer" and manifest["examples"] == len(records) and manifest["steps"] == 2
    config = manifest["trl_config"]
    assert config["loss_type"] == ["sigmoid", "sft"] and config["loss_weights"] == [1.0, 1.0] and config["beta"] == 0.1
    # At step 1 the policy is its reference: DPO alone is exactly ln 2; the NLL of the chosen judgment comes on top.
    assert manifest["losses"][0]["loss"] > math.log(2) + 0.1


@slow
def test_a_real_run_audits_curates_and_cards(ste_run: Path, tmp_path: Path) -> None:
    assert_pipeline_on(ste_run, tmp_path)


@slow
def test_eval_judge_reads_each_pair_of_a_self_taught_run_once(ste_run: Path) -> None:
    from judgeforge.train.judge_eval import read_pairs

    rows = read_rows(ste_run)
    pairs, fingerprint = read_pairs(ste_run)
    assert sorted(p.id for p in pairs) == sorted({r["source_id"] for r in rows})
    by_id = {r["source_id"]: r for r in rows}
    assert all((p.chosen, p.rejected, p.prompt) == (by_id[p.id]["better_response"], by_id[p.id]["worse_response"], by_id[p.id]["instruction"]) for p in pairs)
    assert all(p.previous_steps is None for p in pairs) and fingerprint == json.loads((ste_run / "manifest.json").read_text())["fingerprint"]
