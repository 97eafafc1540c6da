"""``judgeforge eval judge``: readers of the public pair layouts, the figures on scripted judges whose
answers are known by hand, and one end-to-end run of the embedded model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from judgeforge.engines.base import Completion, Request, SamplingParams
from judgeforge.errors import UserError
from judgeforge.formats.judge import VERDICT_LEAD
from judgeforge.train.judge_eval import figures, judge_pairs, read_pairs
from tests.scripted import ScriptedEngine, forced

GOOD = "The answer is 4, because 2 + 2 = 4."
BAD = "The answer is 5."


def rewardbench(tmp_path: Path, rows: int = 4, subsets: tuple[str, ...] = ("math", "chat")) -> Path:
    path = tmp_path / "rewardbench.jsonl"
    lines = [{"prompt": f"What is 2 + 2? (#{i})", "chosen": GOOD, "rejected": BAD, "subset": subsets[i % len(subsets)], "id": f"p{i}"} for i in range(rows)]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def judged(tmp_path: Path, respond: Any) -> tuple[Any, ScriptedEngine]:
    pairs, _ = read_pairs(rewardbench(tmp_path))
    engine = ScriptedEngine(respond)
    return judge_pairs(engine, pairs, max_tokens=32), engine


def shown_as(request: Request, text: str) -> str:
    """Which letter the scripted prompt shows ``text`` under."""
    user = request.messages[-1]["content"]
    return "A" if user.index(text) < user.index("[Response B]") else "B"


def test_a_judge_that_always_says_a_has_half_accuracy_and_no_consistency(tmp_path: Path) -> None:
    results, engine = judged(tmp_path, lambda r, p, k: "Response A reads better.\n\nVerdict: [[A]]")
    f = figures(results)
    assert (f.pairs, f.judgments, f.parsed, f.forced, f.unparsable, f.failed) == (4, 8, 8, 0, 0, 0)
    assert f.accuracy == 0.5 and f.position_consistency == 0.0 and f.pair_accuracy == 0.0
    assert len(engine.calls) == 1  # every pair, both orders, in one batched call


def test_a_judge_that_picks_the_right_answer_is_right_and_consistent_in_both_orders(tmp_path: Path) -> None:
    results, _ = judged(tmp_path, lambda r, p, k: f"Verdict: [[{shown_as(r, GOOD)}]]")
    f = figures(results)
    assert f.accuracy == 1.0 and f.pair_accuracy == 1.0 and f.position_consistency == 1.0
    # Each pair was shown with the better answer as A and then as B.
    assert [o.better_shown_as for o in results[0].orders] == ["A", "B"]


def test_forced_verdicts_are_reported_apart_and_never_counted_correct(tmp_path: Path) -> None:
    def respond(request: Request, params: SamplingParams, k: int) -> Completion | str:
        if request.prefix.endswith(VERDICT_LEAD):
            return forced(0.9 if shown_as(request, GOOD) == "A" else 0.1)  # the forced verdict is right
        return "Both look fine to me."

    results, _ = judged(tmp_path, respond)
    f = figures(results)
    assert (f.parsed, f.forced) == (0, 8)
    assert f.accuracy == 0.0 and f.pair_accuracy == 0.0 and f.forced_accuracy == 1.0
    assert f.position_consistency == 1.0  # forced verdicts still say whether the judge is position-consistent


def test_unforced_and_failed_judgments_carry_no_verdict(tmp_path: Path) -> None:
    pairs, _ = read_pairs(rewardbench(tmp_path, rows=1))
    outputs = iter([Completion(text="", error="server error"), Completion(text="no verdict here")])
    results = judge_pairs(ScriptedEngine(lambda r, p, k: next(outputs)), pairs, max_tokens=8, force_verdicts=False)
    assert [(o.how, o.verdict) for o in results[0].orders] == [("failed", None), ("unparsable", None)]
    f = figures(results)
    assert f.accuracy == 0.0 and f.position_consistency is None and f.forced_accuracy is None


def test_conversation_layout_reads_the_shared_prompt_and_the_two_replies(tmp_path: Path) -> None:
    path = tmp_path / "pairs.json"
    user = {"role": "user", "content": "What is 2 + 2?"}
    path.write_text(json.dumps([{"chosen": [user, {"role": "assistant", "content": GOOD}], "rejected": [user, {"role": "assistant", "content": BAD}]}]))
    pairs, fingerprint = read_pairs(path)
    assert [(p.prompt, p.chosen, p.rejected, p.subset, p.previous_steps) for p in pairs] == [("What is 2 + 2?", GOOD, BAD, "pairs", None)]
    assert len(fingerprint) == 64


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "q", "chosen": "a"}, "row 1: missing field 'rejected'"),
        ({"chosen": "a", "rejected": "b"}, "row 1: missing field 'prompt'"),
        ({"chosen": [{"role": "user", "content": "q"}], "rejected": []}, "row 1 field 'chosen': the last message must be the assistant's reply"),
        ({"prompt": "q", "chosen": "a", "rejected": [{"role": "assistant", "content": "b"}]}, "row 1: fields 'chosen' and 'rejected' must both be texts"),
    ],
)
def test_a_malformed_pair_row_is_one_line_naming_row_and_field(tmp_path: Path, row: dict[str, Any], message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(UserError, match="bad.jsonl " + message.replace("(", r"\(")):
        read_pairs(path)


def test_per_subset_figures_and_a_run_dir_of_another_kind_is_refused(tmp_path: Path, step_prefs_run: Path) -> None:
    def respond(request: Request, params: SamplingParams, k: int) -> str:
        math = any(f"(#{i})" in request.messages[-1]["content"] for i in (0, 2))  # rewardbench(): even rows are "math"
        return f"Verdict: [[{shown_as(request, GOOD) if math else 'A'}]]"

    results, _ = judged(tmp_path, respond)
    by_subset = {name: figures([r for r in results if r.subset == name]) for name in ("math", "chat")}
    assert (by_subset["math"].accuracy, by_subset["math"].position_consistency) == (1.0, 1.0)
    assert (by_subset["chat"].accuracy, by_subset["chat"].position_consistency) == (0.5, 0.0)
    with pytest.raises(UserError, match="holds 'step_prefs' rows; judge pairs come from an EFT or a Self-Taught run"):
        read_pairs(step_prefs_run)


@pytest.mark.slow
def test_eval_judge_runs_the_embedded_model_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "judge.json"
    source = rewardbench(tmp_path, rows=3)
    args = ["eval", "judge", "--pairs", str(source), "--max-tokens", "24", "--dtype", "float32", "--out", str(out), "--plot", str(tmp_path / "judge.png")]
    wide = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "judgeforge.cli", *args], capture_output=True, text=True, env=wide)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "judgeforge eval judge" in result.stdout and "consistency" in result.stdout
    (record,) = json.loads(out.read_text())
    overall = record["overall"]
    assert overall["pairs"] == 3 and overall["judgments"] == 6
    assert overall["parsed"] + overall["forced"] + overall["unparsable"] + overall["failed"] == 6
    assert set(record["subsets"]) == {"math", "chat"} and sum(s["pairs"] for s in record["subsets"].values()) == 3
    assert len(record["weights_hash"]) == 64 and len(record["pairs_fingerprint"]) == 64
    assert record["engine"]["dtype"] == "float32" and (tmp_path / "judge.png").stat().st_size > 0
    # The figures are those of the recorded verdicts: re-derivable from the per-pair results.
    right = sum(o["how"] == "parsed" and o["verdict"] == o["better_shown_as"] for r in record["results"] for o in r["orders"])
    assert overall["accuracy"] == right / 6


def test_a_missing_field_fails_the_command_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "a"}) + "\n")
    result = subprocess.run([sys.executable, "-m", "judgeforge.cli", "eval", "judge", "--pairs", str(path)], capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: {path} row 0: missing field 'rejected' (pair layouts: RewardBench prompt, chosen, rejected[, subset]; or chosen/rejected conversations)"
    )
