"""R-PRM logic without a model: verdict parsing, the verdict slot, pairing, corruption, the ProcessBench F1."""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from judgeforge.builders.base import BuildContext
from judgeforge.builders.rprm import Analysis, Case, RprmPrefsBuilder, RprmPrefsConfig, RprmSftBuilder, RprmSftConfig, _pairs
from judgeforge.builders.rprm_score import ProcessBenchScore, predicted_first_wrong, processbench_score
from judgeforge.builders.step_labels import corrupt_step
from judgeforge.cli import main
from judgeforge.engines.base import Completion, Request, SamplingParams, TokenLogprob
from judgeforge.formats.rprm import ANALYSIS, VERDICT_LEAD, analysis_request, parse_analysis, step_reward, verdict_slot
from judgeforge.formats.step_inputs import StepInput
from judgeforge.formats.verdicts import SlotReading, draw
from judgeforge.schemas.rprm import dpo_view, sft_view
from tests.helpers import read_rows
from tests.scripted import ScriptedEngine, yes_no

ITEM = StepInput(
    id="s/step-2",
    solution_id="s",
    question="What is 2 + 3 * 4?",
    previous_steps=["Step 1: 3 * 4 = 12."],
    now_step="Step 2: 2 + 12 = 15.",
    step_index=2,
    label="No",
)


@pytest.mark.parametrize(
    ("text", "finish", "verdict", "status"),
    [
        (f"The sum is wrong.\n{VERDICT_LEAD} No", "eos", "No", "ok"),
        (f"fine.\n{VERDICT_LEAD}\n **Yes**\n", "eos", "Yes", "ok"),
        (f"fine.\n{VERDICT_LEAD} yes", "eos", None, "off_format"),
        ("I cannot tell.", "eos", None, "none"),
        (f"Looks fine.\n{VERDICT_LEAD}", "eos", None, "none"),
        (f"{VERDICT_LEAD} Yes/No", "eos", None, "both"),
        (f"{VERDICT_LEAD} Yes\n{VERDICT_LEAD} No", "eos", None, "contradictory"),
        (f"{VERDICT_LEAD} No\nAgain: {VERDICT_LEAD} No", "eos", None, "several"),
        ("The step computes 2 + 12 and", "length", None, "truncated"),
        (f"{VERDICT_LEAD} Ye", "length", None, "truncated"),
    ],
)
def test_parse_analysis_counts_every_malformed_kind(text: str, finish: str, verdict: str | None, status: str) -> None:
    parsed = parse_analysis(text, finish)
    assert (parsed.verdict, parsed.status) == (verdict, status)


def test_yes_no_verdict_inside_a_longer_word_or_sentence_is_not_a_verdict() -> None:
    # Only "Yes" / "No" standing alone after the lead is a verdict: not the start of a word or a phrase.
    for answer in ("No idea", "Nothing is wrong", "Yesterday it was", "Yes because 2 + 12 = 14", "Not really", "Nope", "Yes-ish"):
        parsed = parse_analysis(f"Hard to say.\n{VERDICT_LEAD} {answer}", "eos")
        assert (parsed.verdict, parsed.status) == (None, "none"), answer
    for answer, verdict in (("No", "No"), ("No.", "No"), ("Yes, since 2 + 12 = 14.", "Yes"), ("**No**", "No"), ("_Yes_!", "Yes")):
        assert parse_analysis(f"x\n{VERDICT_LEAD} {answer}").verdict == verdict, answer


def test_yes_no_verdict_in_another_case_than_the_format_is_not_kept() -> None:
    # The format asks for "... (Yes/No)? Yes" or "... No": a kept analysis is a training target ending in that line.
    off = [f"x\n{VERDICT_LEAD} yes", f"x\n{VERDICT_LEAD} NO", f"x\n{VERDICT_LEAD} **yes**", "x\nverification: is the step correct (yes/no)? Yes"]
    for text in off:
        parsed = parse_analysis(text, "eos")
        assert (parsed.verdict, parsed.status) == (None, "off_format"), text
    # An off-format restatement still counts: it contradicts, or repeats, the verdict in the format.
    assert parse_analysis(f"{VERDICT_LEAD} Yes\nverification: is the step correct (yes/no)? no").status == "contradictory"
    assert parse_analysis(f"{VERDICT_LEAD} Yes\n{VERDICT_LEAD} YES").status == "several"


def test_a_parsed_analysis_is_kept_up_to_its_verdict() -> None:
    parsed = parse_analysis(f"Wrong sum.\n{VERDICT_LEAD} No. Anything after is dropped.")
    assert parsed.text == f"Wrong sum.\n{VERDICT_LEAD} No"


def test_verdict_slot_and_p_yes() -> None:
    prefix = analysis_request(ITEM, seed=1).prefix
    assert verdict_slot(f"{prefix} the steps so far are fine.\n", "stop") == f"{prefix} the steps so far are fine.\n{VERDICT_LEAD}"
    assert verdict_slot(f"{prefix} the steps so far", "length") == f"{prefix} the steps so far\n\n{VERDICT_LEAD}"
    assert verdict_slot(f"{prefix} ok.\n{VERDICT_LEAD} Yes and more", "eos") == f"{prefix} ok.\n\n{VERDICT_LEAD}"
    top = {" Yes": math.log(0.6), "Yes": math.log(0.1), " No": math.log(0.3), " The": math.log(0.05)}
    reading = ANALYSIS.vocabulary.read(Completion(text=" Yes", logprobs=[TokenLogprob(token=" Yes", logprob=math.log(0.6), top=top)]))
    assert reading.token == "Yes" and reading.probability("Yes") == pytest.approx(0.7)
    assert ANALYSIS.vocabulary.read(Completion(text=" No")) == SlotReading("No", None)  # no log-probabilities: the vote only
    assert ANALYSIS.vocabulary.read(Completion(text=" The", logprobs=[TokenLogprob(token=" The", logprob=-0.1, top={" The": -0.1})])) == SlotReading(None, None)


def test_forced_verdicts_are_drawn_from_p_yes_at_the_temperature() -> None:
    def p_yes(p: float) -> SlotReading[str]:
        return SlotReading(None, {"Yes": p, "No": 1 - p})

    assert draw(p_yes(0.7), 0.0, random.Random(0)) == "Yes" and draw(p_yes(0.3), 0.0, random.Random(0)) == "No"
    draws = Counter(draw(p_yes(0.8), 1.0, random.Random(seed)) for seed in range(2000))
    assert 0.77 < draws["Yes"] / 2000 < 0.83
    flat = Counter(draw(p_yes(0.8), 2.0, random.Random(seed)) for seed in range(2000))  # 0.8^0.5 / (0.8^0.5 + 0.2^0.5) = 2/3
    assert 0.63 < flat["Yes"] / 2000 < 0.70


def test_step_reward_is_mean_p_yes_else_the_yes_vote_share() -> None:
    assert step_reward([0.9, None, 0.5], ["Yes", "No", None]) == (pytest.approx(0.7), "p_yes")
    assert step_reward([None, None, None], ["Yes", "No", "Yes"]) == (pytest.approx(2 / 3), "vote")
    assert step_reward([None], [None]) == (None, "none")


def test_forced_verdicts_are_off_by_default_and_marked_in_their_rows() -> None:
    item = ITEM.model_copy(update={"label": "Yes"})
    answers = [f" the sum is off.\n{VERDICT_LEAD} No", " the sum looks fine", f" fine.\n{VERDICT_LEAD} yes"]  # in format, none, off format

    def respond(request: Request, params: SamplingParams, k: int) -> Completion | str:
        return yes_no(0.9) if params.logprobs else Completion(text=answers[k], finish_reason="eos")

    def build(builder_cls: Any, config: Any) -> tuple[list[Any], Counter[str]]:
        builder = builder_cls(config, BuildContext({"policy": ScriptedEngine(respond)}, seed=0, run_id="r"))
        return builder.build([item]), builder.stats

    rows, stats = build(RprmSftBuilder, RprmSftConfig(k=3, temperature=0.0))
    assert rows == [] and stats["verdicts_forced"] == 0 and (stats["verdicts_none"], stats["verdicts_off_format"]) == (1, 1)
    rows, stats = build(RprmSftBuilder, RprmSftConfig(k=3, temperature=0.0, force_verdict=True))
    # Only the analysis without a verdict is forced (an off-format one stated its verdict); the forced row says so.
    assert stats["verdicts_forced"] == 1 and [(r.analysis_index, r.forced_verdict) for r in rows] == [(1, True)]
    assert rows[0].analysis.endswith(f"fine\n\n{VERDICT_LEAD} Yes") and parse_analysis(rows[0].analysis)[:2] == ("Yes", "ok")
    pairs, _ = build(RprmPrefsBuilder, RprmPrefsConfig(k=3, temperature=0.0, force_verdict=True))
    assert [(p.chosen_forced_verdict, p.rejected_forced_verdict) for p in pairs] == [(True, False)]


def test_pairs_prefer_fresh_analyses_and_respect_the_limit() -> None:
    chosen = [Analysis(0, "a", "No", "ok"), Analysis(1, "b", "No", "ok")]
    rejected = [Analysis(2, "c", "Yes", "ok"), Analysis(3, "d", "Yes", "ok")]
    assert [(c.index, r.index) for c, r in _pairs(chosen, rejected, 2)] == [(0, 2), (1, 3)]
    assert len(_pairs(chosen, rejected, 10)) == 4
    case = Case(ITEM, [*chosen, Analysis(4, "a", "No", "ok"), Analysis(5, "e", None, "truncated"), *rejected])
    assert [a.index for a in case.matching()] == [0, 1]  # the duplicate text is dropped
    assert case.counts() == {"num_analyses": 6, "num_matching": 3, "num_mismatching": 2, "num_malformed": 1}


def test_processbench_f1_matches_a_hand_computed_example() -> None:
    # Labels: three erroneous solutions (first wrong 1, 0, 2) and two correct ones (-1).
    labels = [1, 0, 2, -1, -1]
    rewards = [
        [0.9, 0.2, 0.1],  # first below 0.5: step 1 -> right
        [0.8, 0.3],  # step 1, label 0 -> wrong
        [0.7, 0.6, 0.55],  # none below -> -1, label 2 -> wrong
        [0.9, 0.8],  # -1 -> right
        [0.4, 0.9],  # step 0 -> wrong
    ]
    predictions = [predicted_first_wrong(r, 0.5) for r in rewards]
    assert predictions == [1, 1, -1, -1, 0]
    score = processbench_score(labels, predictions)
    # accuracy on erroneous = 1/3, on correct = 1/2, F1 = 2 * (1/3) * (1/2) / (1/3 + 1/2) = (1/3) / (5/6) = 0.4
    assert score.accuracy_erroneous == pytest.approx(1 / 3) and score.accuracy_correct == pytest.approx(0.5)
    assert score.f1 == pytest.approx(0.4)
    assert ProcessBenchScore(erroneous=2, erroneous_right=0, correct=1, correct_right=1).f1 == 0.0
    assert ProcessBenchScore(correct=3, correct_right=3).f1 is None  # needs erroneous solutions too


# Two ProcessBench subsets whose steps carry the reward the scripted scorer gives them ("value 0.9": P(Yes) = 0.9).
# (first wrong step, rewards up to it); -1: a correct solution.
SUBSETS: dict[str, list[tuple[int, list[float]]]] = {
    "gsm8k": [(1, [0.9, 0.3]), (0, [0.4]), (-1, [0.8, 0.6]), (-1, [0.7, 0.45])],
    "math": [(1, [0.55, 0.52]), (0, [0.2]), (-1, [0.9, 0.45]), (-1, [0.8, 0.7]), (-1, [0.6])],
}
# At 0.5: gsm8k 2/2 erroneous and 1/2 correct right, F1 2/3; math 1/2 and 2/3, F1 4/7. ProcessBench's figure is their
# mean, 13/21 = 0.619; pooling the 9 solutions (3/4 and 3/5 right) would give 2/3 instead.
MEAN_AT_HALF, POOLED_AT_HALF = (2 / 3 + 4 / 7) / 2, 2 / 3
# Swept on gsm8k: 0.425, the midpoint of its rewards 0.4 and 0.45, is the only threshold judging all four right (F1 1);
# math at 0.425: 1/2 erroneous and 3/3 correct right, F1 2/3; mean 5/6.


def processbench_rows(subset: str | None) -> list[dict[str, Any]]:
    return [
        {"problem": f"{name} problem {n}", "steps": [f"value {r}" for r in rewards], "label": label, **({"subset": name} if subset else {})}
        for name, solutions in SUBSETS.items()
        for n, (label, rewards) in enumerate(solutions)
    ]


def scorer() -> ScriptedEngine:
    """Analyses that stop at the verdict lead; at the slot, P(Yes) is the value the now step names."""

    def respond(request: Request, params: SamplingParams, k: int) -> Completion | str:
        if not params.logprobs:
            return " the step follows."
        value = re.search(r"\[Now step\]\nStep \d+: value ([0-9.]+)", request.messages[0]["content"])
        assert value is not None
        return yes_no(float(value.group(1)))

    return ScriptedEngine(respond)


def score_rprm(monkeypatch: pytest.MonkeyPatch, source: Path, out: Path, *options: str) -> tuple[Result, dict[str, Any]]:
    monkeypatch.setattr("judgeforge.executors.local.make_engine", lambda spec: scorer())
    result = CliRunner().invoke(main, ["score", "rprm", "--source", str(source), "--k", "1", "--out", str(out), *options])
    summary = out / "rprm_scores" / "summary.json"
    return result, json.loads(summary.read_text()) if summary.exists() else {}


def test_processbench_f1_is_the_mean_of_per_subset_f1s(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = tmp_path / "processbench.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in processbench_rows(subset="field")))
    result, summary = score_rprm(monkeypatch, source, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert summary["f1"] == pytest.approx(MEAN_AT_HALF) and summary["f1"] != pytest.approx(POOLED_AT_HALF)
    assert {name: s["f1"] for name, s in summary["subsets"].items()} == pytest.approx({"gsm8k": 2 / 3, "math": 4 / 7})
    assert summary["subsets"]["math"] == {
        "erroneous": 2,
        "erroneous_right": 1,
        "correct": 3,
        "correct_right": 2,
        "accuracy_erroneous": 0.5,
        "accuracy_correct": pytest.approx(2 / 3),
        "f1": pytest.approx(4 / 7),
    }
    assert (summary["threshold"], summary["threshold_chosen_by"], summary["threshold_split"]) == (0.5, "fixed", None)
    assert f"ProcessBench F1 = {MEAN_AT_HALF:.4f} (mean over 2 subsets" in result.output and "  math: F1 0.5714" in result.output
    rows = read_rows(tmp_path / "out" / "rprm_scores")
    assert {r["subset"] for r in rows} == {"gsm8k", "math"} and len(rows) == sum(len(r) for s in SUBSETS.values() for _, r in s)


def test_processbench_subsets_are_the_files_of_a_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = tmp_path / "processbench"
    folder.mkdir()
    for name in SUBSETS:  # ProcessBench's splits saved one file each, with no subset field
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in processbench_rows(subset=None) if r["problem"].startswith(name)))
    result, summary = score_rprm(monkeypatch, folder, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert summary["f1"] == pytest.approx(MEAN_AT_HALF) and set(summary["subsets"]) == {"gsm8k", "math"}


def test_threshold_sweep_picks_the_best_threshold_on_the_named_split(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = tmp_path / "processbench.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in processbench_rows(subset="field")))
    result, summary = score_rprm(monkeypatch, source, tmp_path / "out", "--threshold", "sweep", "--threshold-split", "gsm8k")
    assert result.exit_code == 0, result.output
    assert summary["threshold"] == pytest.approx(0.425) and (summary["threshold_chosen_by"], summary["threshold_split"]) == ("sweep", "gsm8k")
    assert {name: s["f1"] for name, s in summary["subsets"].items()} == pytest.approx({"gsm8k": 1.0, "math": 2 / 3})
    assert summary["f1"] == pytest.approx(5 / 6) and "threshold 0.425 chosen by sweep on gsm8k" in result.output
    # The rewards do not depend on the threshold: the same --out re-scored at a number recomputes nothing but the metric.
    again, fixed = score_rprm(monkeypatch, source, tmp_path / "out", "--threshold", "0.5")
    assert again.exit_code == 0, again.output
    assert (
        fixed["f1"] == pytest.approx(MEAN_AT_HALF)
        and json.loads((tmp_path / "out" / "rprm_scores" / "manifest.json").read_text())["chunks"]["built_this_run"] == 0
    )
    bad, _ = score_rprm(monkeypatch, source, tmp_path / "out", "--threshold", "sweep", "--threshold-split", "aime")
    assert bad.exit_code != 0 and "'aime' is not a subset of the scored solutions (subsets: gsm8k, math)" in bad.output


@pytest.mark.parametrize(
    ("threshold", "split", "message"),
    [
        ("sweep", None, "--threshold sweep needs --threshold-split NAME"),
        ("0.5", "gsm8k", "--threshold-split only goes with --threshold sweep"),
        ("high", None, "--threshold must be a number from 0 to 1 or 'sweep', not 'high'"),
        ("1.5", None, "--threshold must be a number from 0 to 1 or 'sweep', not 1.5"),
    ],
)
def test_threshold_options_are_checked_before_scoring(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, threshold: str, split: str | None, message: str) -> None:
    source = tmp_path / "processbench.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in processbench_rows(subset="field")))
    result, _ = score_rprm(monkeypatch, source, tmp_path / "out", "--threshold", threshold, *(["--threshold-split", split] if split else []))
    assert result.exit_code != 0 and message in result.output and not (tmp_path / "out" / "rprm_scores").exists()


def test_corruptions_change_one_number_or_one_operation() -> None:
    step = "Step 2: He found 17 more, getting him back to 36+17=53 pebbles."
    number = corrupt_step(step, "number", random.Random(0))
    assert number is not None and number[0].startswith("Step 2: He found 17 more, getting him back to 36+17=") and "53" not in number[0]
    operation = corrupt_step(step, "operation", random.Random(0))
    assert operation == ("Step 2: He found 17 more, getting him back to 36-17=19 pebbles.", "operation 36+17=53 -> 36-17=19")
    assert corrupt_step("Step 1: Read the problem.", "number", random.Random(0)) is None
    assert corrupt_step("Step 1: He has 3 apples.", "operation", random.Random(0)) is None
    big = corrupt_step("Step 3: The total is $400,000 + $56,000 = $456,000.", "number", random.Random(0))
    assert big is not None and "456,000" not in big[0] and big[1].startswith("number 456,000 -> ")


def test_trl_views_use_the_analysis_prompt() -> None:
    row = {"question": ITEM.question, "previous_steps": ITEM.previous_steps, "now_step": ITEM.now_step, "analysis": "x", "chosen": "c", "rejected": "r"}
    request = analysis_request(ITEM, seed=0)
    assert sft_view([row])[0] == {"prompt": [request.messages[0]], "completion": [{"role": "assistant", "content": "x"}]}
    assert dpo_view([row])[0] == {
        "prompt": [request.messages[0]],
        "chosen": [{"role": "assistant", "content": "c"}],
        "rejected": [{"role": "assistant", "content": "r"}],
    }


@pytest.mark.parametrize("command", [["build", "step-labels"], ["build", "rprm-sft"], ["build", "rprm-prefs"], ["score", "rprm"]])
def test_help_documents_every_option(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    group: Any = main
    for name in command:
        group = group.get_command(None, name)
    for param in group.params:
        assert param.opts[0] in result.output and param.help, param.opts[0]


def test_eval_prm_is_score_rprm_under_the_eval_group(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = tmp_path / "processbench.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in processbench_rows(subset="field")))
    monkeypatch.setattr("judgeforge.executors.local.make_engine", lambda spec: scorer())
    result = CliRunner().invoke(main, ["eval", "prm", "--source", str(source), "--k", "1", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "rprm_scores" / "summary.json").read_text())["f1"] == pytest.approx(MEAN_AT_HALF)
