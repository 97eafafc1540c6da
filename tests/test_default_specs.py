"""Every kind's default curation spec, on a small hand-made run of that kind.

For each registered kind the declared default spec must exist, load and validate against the kind's
Arrow schema, and — curating a run of one or two good rows plus one bad row per check — drop exactly
the bad rows, each by the filter meant to catch it, while every filter of the spec that can drop by
default catches one. The kind-specific filters these specs use (verdict_match, final_attempt,
first_wrong_check) get their own tests at the end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from judgeforge.curation.filters import Decontaminate, Filter, LengthBias
from judgeforge.curation.pipeline import LOG_NAME, CurateOptions, curate, default_spec_path, load_spec
from judgeforge.formats.judge import format_judgment
from judgeforge.formats.rprm import ANALYSIS_START, verdict_line
from judgeforge.formats.s2r import attempt_segment, verification_segment
from judgeforge.formats.s2r import verdict_line as verification_verdict
from judgeforge.formats.steps import format_step, solution_text
from judgeforge.schemas.base import BaseRow, arrow_schema
from judgeforge.schemas.eft import EftRow
from judgeforge.schemas.ift import IftRow
from judgeforge.schemas.registry import all_kinds, get_kind
from judgeforge.schemas.rprm import RprmPrefsRow, RprmScoreRow, RprmSftRow
from judgeforge.schemas.s2r import S2RPromptRow, S2RTrajectoryRow, Sample, Segment, Verification
from judgeforge.schemas.self_taught import SampledJudgment, SelfTaughtRow
from judgeforge.schemas.step_labels import StepLabelRow
from tests.test_curation import META, make_run
from tests.test_curation import judgment as step_judgment
from tests.test_curation import row as step_prefs_row

# A text long enough that MinHash reliably finds a copy with one word changed (and without repeated 3-grams).
STORY = (
    "Tom starts the morning with three red apples in a wicker basket, walks to the busy market near the river, buys four "
    "more green apples from a friendly farmer, and then wants to know how many apples he carries home before"
)
QUESTION = f"{STORY} dinner?"
NEAR_QUESTION = f"{STORY} lunch?"
LOOP = "and then " * 30
Case = list[tuple[BaseRow, str | None]]  # rows in order, each with the filter that must drop it (None: kept)


def drawn_after(kept: str, prefix: str) -> str:
    """An id that label_balance (seed 0) down-samples before ``kept``: its md5 draw sorts after it."""

    def draw(i: str) -> str:
        return hashlib.md5(f"{i}0".encode()).hexdigest()

    return next(i for i in (f"{prefix}-{n}" for n in range(100)) if draw(i) > draw(kept))


# --- ift -------------------------------------------------------------------------------------------


def ift(id: str, steps: list[str] | None = None, **fields: Any) -> IftRow:
    steps = steps or [format_step(1, f" {STORY} dinner, he adds 3 + 4 = 7."), format_step(2, " The answer is 7.")]
    values: dict[str, Any] = dict(
        id=id,
        source_id=id.split("/")[0],
        meta=META,
        question=QUESTION,
        steps=steps,
        solution=solution_text(steps),
        gold_answer="7",
        final_answer="7",
        origin="samples",
        verified=True,
    )
    return IftRow(**{**values, **fields})


def ift_case() -> Case:
    near = [format_step(1, f" {STORY} lunch, he adds 3 + 4 = 7."), format_step(2, " The answer is 7.")]
    return [
        (ift("good/ift-0"), None),
        (ift("wrong/ift-0", final_answer="8", verified=False, question="Tom has 3 apples and buys 4 more; how many?"), "answer_check"),
        (ift("short/ift-0", steps=["Step 1: 7"], question="Short?"), "length"),
        (ift("loop/ift-0", steps=[format_step(1, f" {LOOP}7.")], question="Loop?"), "repetition"),
        (ift("copy/ift-0"), "exact_dedup"),
        (ift("good/ift-1", steps=near), "near_dedup"),
    ]


# --- eft -------------------------------------------------------------------------------------------


def eft(id: str, label: str = "A", question: str = QUESTION, **fields: Any) -> EftRow:
    good, bad = "Step 1: add the apples, 3 + 4 = 7.", "Step 1: subtract, 4 - 3 = 1."
    step_a, step_b = (good, bad) if label == "A" else (bad, good)
    values: dict[str, Any] = dict(
        id=id,
        source_id=id.split("/")[0],
        meta=META,
        pair_id=id.rsplit("/", 1)[0],
        question=question,
        previous_steps=[],
        step_index=1,
        step_a=step_a,
        step_b=step_b,
        label=label,
        judgment=format_judgment(f"Step {label} adds the apples correctly.", label),
        forced_verdict=False,
        value_a=1.0 if label == "A" else 0.0,
        value_b=0.0 if label == "A" else 1.0,
        rollouts=4,
        gold_answer="7",
        judge_raw_better_first="[[A]]",
        judge_raw_better_second="[[B]]",
    )
    return EftRow(**{**values, **fields})


def eft_case() -> Case:
    good = "good/eft-step-1/AB"
    return [
        (eft(good), None),
        (eft("good/eft-step-1/BA", label="B"), None),
        (eft("wrong/eft-step-1/AB", question="Wrong?", judgment=format_judgment("Step B is better.", "B")), "verdict_match"),
        (eft("same/eft-step-1/AB", question="Same?", step_b="Step 1: add the apples, 3 + 4 = 7."), "chosen_not_rejected"),
        (eft("short/eft-step-1/AB", question="Short?", step_b="x"), "length"),
        (eft("loop/eft-step-1/AB", question="Loop?", judgment=format_judgment(LOOP, "A")), "repetition"),
        (eft("copy/eft-step-1/AB"), "exact_dedup"),
        (eft(drawn_after(good, "extra/eft-step-1/AB"), question="Another problem?"), "label_balance"),
    ]


# --- step_prefs ------------------------------------------------------------------------------------


def step_prefs_case() -> Case:
    chosen, rejected = "Step 1: add the apples, 3 + 4 = 7.", "Step 1: subtract, 4 - 3 = 1."
    return [
        (step_prefs_row("good/step-1", question=QUESTION, chosen=chosen, rejected=rejected), None),
        (step_prefs_row("same/step-1", rejected="Step 1: add the apples for same/step-1, 3 + 4 = 7."), "chosen_not_rejected"),
        (step_prefs_row("close/step-1", chosen_score=0.3), "score_gap"),
        (step_prefs_row("swapped/step-1", judgments=[step_judgment(0, 1, "B"), step_judgment(1, 0, "A")]), "position_swap"),
        (step_prefs_row("wrong/step-1", final_answer="8", solution_correct=False), "answer_check"),
        (step_prefs_row("short/step-1", rejected="x"), "length"),
        (step_prefs_row("loop/step-1", chosen=f"Step 1: {LOOP}"), "repetition"),
        (step_prefs_row("copy/step-1", question=QUESTION, chosen=chosen, rejected=rejected), "exact_dedup"),
        (step_prefs_row("near/step-1", question=NEAR_QUESTION, chosen=chosen, rejected=rejected), "near_dedup"),
    ]


# --- step_labels -----------------------------------------------------------------------------------

GOLD_STEPS = [format_step(1, f" {STORY} dinner: 3 + 4 = 7."), format_step(2, " The answer is 7.")]


def step_labels(id: str, steps: list[str] = GOLD_STEPS, labels: list[bool | None] | None = None, **fields: Any) -> StepLabelRow:
    labels = [True] * len(steps) if labels is None else labels
    values: dict[str, Any] = dict(
        id=id,
        source_id=id.split("/")[0],
        meta=META,
        question=QUESTION,
        steps=steps,
        labels=labels,
        first_wrong=next((i for i, x in enumerate(labels) if x is False), -1),
        origin="gold",
        gold_answer="7",
        final_answer="7",
        final_answer_correct=True,
        step_values=[],
        rollouts=0,
        corruption=None,
        corruption_kind=None,
    )
    return StepLabelRow(**{**values, **fields})


def step_labels_case() -> Case:
    corrupted = [format_step(1, f" {STORY} dinner: 3 + 4 = 8."), GOLD_STEPS[1]]
    return [
        (step_labels("good/gold"), None),
        # A corrupted copy of the gold solution is nearly the same text, and is kept: no near_dedup here.
        (step_labels("good/corrupt-0", corrupted, [False, None], origin="corrupted", corruption="step 1: number 7 -> 8", corruption_kind="number"), None),
        (step_labels("mismarked/gold", question="Mismarked?", labels=[True, False], first_wrong=-1), "first_wrong_check"),
        (step_labels("missed/sample-0", question="Missed?", origin="sampled", final_answer="8", final_answer_correct=False), "first_wrong_check"),
        (step_labels("short/gold", ["Step 1: 7"], question="Short?"), "length"),
        (step_labels("loop/gold", [f"Step 1: {LOOP}7."], question="Loop?"), "repetition"),
        (step_labels("copy/gold"), "exact_dedup"),
    ]


# --- rprm_sft / rprm_prefs / rprm_scores -----------------------------------------------------------

REASONING = (
    f"{ANALYSIS_START} there are no previous steps, so the now step starts from the problem itself.\n"
    "Now step analysis: it adds the three apples Tom had to the four he bought, both numbers taken from the problem.\n"
    "Calculation analysis: three plus four is seven, which matches the result the step states.\n"
)


def analysis(verdict: str, reasoning: str = REASONING) -> str:
    return reasoning + verdict_line(verdict)


def rprm_case_fields(id: str, question: str) -> dict[str, Any]:
    return dict(
        id=id,
        source_id=id.split("/")[0],
        meta=META,
        question=question,
        previous_steps=[],
        now_step="Step 1: 3 + 4 = 7.",
        step_index=1,
        label="Yes",
        gold_answer="7",
        num_analyses=4,
        num_matching=2,
        num_mismatching=1,
        num_malformed=1,
    )


def rprm_sft(id: str, question: str = QUESTION, text: str | None = None) -> RprmSftRow:
    text = text or analysis("Yes")
    return RprmSftRow(**rprm_case_fields(id, question), analysis=text, verdict="Yes", forced_verdict=False, analysis_index=0)


def rprm_sft_case() -> Case:
    return [
        (rprm_sft("good/analysis-0"), None),
        (rprm_sft("wrong/analysis-0", "Wrong?", analysis("No")), "verdict_match"),
        (rprm_sft("short/analysis-0", "Short?", analysis("Yes", f"{ANALYSIS_START} fine.\n")), "length"),
        (rprm_sft("loop/analysis-0", "Loop?", analysis("Yes", f"{ANALYSIS_START} {LOOP}\n")), "repetition"),
        (rprm_sft("copy/analysis-0"), "exact_dedup"),
        (rprm_sft("good/analysis-1", text=analysis("Yes", REASONING.replace("matches", "equals"))), "near_dedup"),
    ]


def rprm_prefs(id: str, question: str = QUESTION, chosen: str | None = None, rejected: str | None = None) -> RprmPrefsRow:
    chosen, rejected = chosen or analysis("Yes"), rejected or analysis("No", REASONING.replace("matches", "differs from"))
    return RprmPrefsRow(
        **rprm_case_fields(id, question),
        chosen=chosen,
        rejected=rejected,
        chosen_verdict="Yes",
        rejected_verdict="No",
        chosen_forced_verdict=False,
        rejected_forced_verdict=False,
        chosen_index=0,
        rejected_index=1,
    )


def rprm_prefs_case() -> Case:
    return [
        (rprm_prefs("good/pair-0-1"), None),
        (rprm_prefs("same/pair-0-1", "Same?", rejected=analysis("Yes")), "chosen_not_rejected"),
        (rprm_prefs("wrong/pair-0-1", "Wrong?", chosen=analysis("No")), "chosen_verdict"),
        (rprm_prefs("right/pair-0-1", "Right?", rejected=analysis("Yes", REASONING.replace("matches", "agrees with"))), "rejected_verdict"),
        (rprm_prefs("short/pair-0-1", "Short?", chosen=analysis("Yes", f"{ANALYSIS_START} fine.\n")), "length"),
        (rprm_prefs("loop/pair-0-1", "Loop?", chosen=analysis("Yes", f"{ANALYSIS_START} {LOOP}\n")), "repetition"),
        (rprm_prefs("copy/pair-0-1"), "exact_dedup"),
    ]


def rprm_score(id: str, step_index: int) -> RprmScoreRow:
    return RprmScoreRow(
        id=id,
        source_id="solution-0",
        meta=META,
        subset="gsm8k",
        question=QUESTION,
        now_step=f"Step {step_index}: 3 + 4 = 7.",
        step_index=step_index,
        label="Yes",
        reward=0.9,
        method="p_yes",
        p_yes=[0.9],
        votes=["Yes"],
        analyses=[analysis("Yes")],
        solution_first_wrong=-1,
    )


def rprm_scores_case() -> Case:
    return [(rprm_score("solution-0/step-1", 1), None), (rprm_score("solution-0/step-2", 2), None), (rprm_score("again/step-1", 1), "exact_dedup")]


# --- s2r_trajectories / s2r_rl_prompts -------------------------------------------------------------

Attempt = tuple[str, str, bool, str]  # attempt text, its answer, whether it is right, its verification's verdict


def trajectory(id: str, attempts: list[Attempt], question: str = QUESTION) -> S2RTrajectoryRow:
    segments: list[Segment] = []
    for i, (text, answer, correct, verdict) in enumerate(attempts):
        check = f"Putting {answer} back into the problem, three apples and four apples give seven.\n\n{verification_verdict(verdict)}"
        shared: dict[str, Any] = dict(sample_index=i, answer=answer, answer_correct=correct)
        segments.append(Segment(role="attempt", text=attempt_segment(text, first=i == 0), style=None, verdict=None, forced=False, **shared))
        segments.append(Segment(role="verification", text=verification_segment(check, verdict), style="confirmative", verdict=verdict, forced=False, **shared))
    samples = [Sample(index=i, text=t, answer=a, correct=c, finish_reason="stop") for i, (t, a, c, _) in enumerate(attempts)]
    return S2RTrajectoryRow(
        id=id,
        source_id=id,
        meta=META,
        question=question,
        policy_prompt=question,
        gold_answer="7",
        accuracy=0.5,
        num_samples=len(samples),
        num_correct=sum(s.correct for s in samples),
        difficulty_level=2,
        num_attempts=len(attempts),
        segments=segments,
        loss_mask=[int(s.role == "verification" or s.answer_correct) for s in segments],
        completion="".join(s.text for s in segments),
        samples=samples,
        verifications=[
            Verification(answer=a, style="confirmative", text=f"Verdict: {v}", verdict=v, forced=False, valid=c == (v == "correct")) for _, a, c, v in attempts
        ],
    )


WRONG: Attempt = ("Tom has 3 apples and buys 4, so 4 - 3 = 1. The answer is \\boxed{1}.", "1", False, "incorrect")
RIGHT: Attempt = (f"{STORY} dinner: 3 + 4 = 7. The answer is \\boxed{{7}}.", "7", True, "correct")


def s2r_trajectories_case() -> Case:
    near = (RIGHT[0].replace("dinner", "lunch"), *RIGHT[1:])
    return [
        (trajectory("good", [WRONG, RIGHT]), None),
        (trajectory("rejected", [WRONG], "Rejected?"), "final_attempt"),
        (trajectory("confirmed-wrong", [(WRONG[0], "1", False, "correct")], "Confirmed wrong?"), "final_attempt"),
        (trajectory("long", [(" ".join(f"word{i}" for i in range(3000)) + " \\boxed{7}", "7", True, "correct")], "Long?"), "length"),
        (trajectory("loop", [(f"{LOOP * 10}\\boxed{{7}}", "7", True, "correct")], "Loop?"), "repetition"),
        (trajectory("copy", [WRONG, RIGHT]), "exact_dedup"),
        (trajectory("near", [WRONG, near]), "near_dedup"),
    ]


def s2r_prompt(id: str, question: str = QUESTION, answer: str | None = "7") -> S2RPromptRow:
    return S2RPromptRow(id=id, source_id=id, meta=META, question=question, prompt=[{"role": "user", "content": question}], answer=answer, problem="{}")


def s2r_rl_prompts_case() -> Case:
    return [
        (s2r_prompt("good"), None),
        (s2r_prompt("unanswerable", "Unanswerable question?", None), "has_answer"),
        (s2r_prompt("short", "Sum?"), "length"),
        (s2r_prompt("copy"), "exact_dedup"),
        (s2r_prompt("near", NEAR_QUESTION), "near_dedup"),
    ]


# --- self-taught -----------------------------------------------------------------------------------


def ste(id: str, label: str, instruction: str, **fields: Any) -> SelfTaughtRow:
    text = format_judgment(f"Response {label} answers the instruction; the other answers a different one.", label)
    values: dict[str, Any] = dict(
        id=id,
        source_id=id.split("/")[0],
        meta=META,
        instruction=instruction,
        similar_instruction=f"{instruction} (but for pears)",
        better_response=f"{instruction}: 3 + 4 = 7 apples.",
        worse_response="3 + 4 = 7 pears.",
        gold_answer=None,
        better_verified=None,
        worse_verified=None,
        label=label,
        judgment=text,
        judgment_index=0,
        judgment_forced=False,
        judgments=[SampledJudgment(index=0, better_shown_as=label, text=text, verdict=label, forced=False, p_a=None, correct=True)],
        rejected_indices=[],
        num_judgments=1,
        num_correct=1,
        num_parsed=1,
        num_forced=0,
        num_unparsable=0,
        iteration=0,
        judge_model="judge",
    )
    return SelfTaughtRow(**{**values, **fields})


def ste_judgments_case() -> Case:
    good = "apples/ste"
    return [
        (ste(good, "A", QUESTION), None),
        (ste("pears/ste", "B", "How many pears?"), None),
        (ste("wrong/ste", "A", "Wrong?", judgment=format_judgment("Response B is better.", "B")), "verdict_match"),
        (ste("same/ste", "A", "Same?", worse_response="Same?: 3 + 4 = 7 apples."), "chosen_not_rejected"),
        (ste("short/ste", "A", "Short?", worse_response="x"), "length"),
        (ste("loop/ste", "A", "Loop?", judgment=format_judgment(LOOP, "A")), "repetition"),
        (ste("copy/ste", "A", QUESTION), "exact_dedup"),
        (ste(drawn_after(good, "extra/ste"), "A", "How many plums?"), "label_balance"),
    ]


CASES: dict[str, Callable[[], Case]] = {
    "ift": ift_case,
    "eft": eft_case,
    "step_prefs": step_prefs_case,
    "step_labels": step_labels_case,
    "rprm_sft": rprm_sft_case,
    "rprm_prefs": rprm_prefs_case,
    "rprm_scores": rprm_scores_case,
    "ste_judgments": ste_judgments_case,
    "s2r_trajectories": s2r_trajectories_case,
    "s2r_rl_prompts": s2r_rl_prompts_case,
}


def _can_drop(f: Filter) -> bool:
    """Whether a filter of a default spec removes rows without options given at curate time."""
    return not isinstance(f, Decontaminate) and not (isinstance(f, LengthBias) and f.params.max_chosen_excess is None)


def curated(tmp_path: Path, rows: list[BaseRow], spec: Path | None = None) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """Curate a hand-made run (with its kind's default spec unless ``spec``): kept ids, and the log as id -> (filter, reason)."""
    _, out = curate(make_run(tmp_path / "in", rows), CurateOptions(spec=spec, out=tmp_path / "out"))
    kept = sorted(r["id"] for shard in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(shard).to_pylist())
    return kept, {r["id"]: (r["filter"], r["reason"]) for r in pq.read_table(out / LOG_NAME).to_pylist()}


@pytest.mark.parametrize("kind", [k.name for k in all_kinds()])
def test_default_spec_drops_exactly_what_the_kinds_checks_should(kind: str, tmp_path: Path) -> None:
    path = default_spec_path(kind)
    assert path.name == get_kind(kind).default_spec and yaml.safe_load(path.read_text())["kind"] == kind
    _, steps = load_spec(path, kind)
    for step in steps:
        step.filter.validate(arrow_schema(get_kind(kind).row), kind)
    rows = CASES[kind]()
    kept, log = curated(tmp_path, [r for r, _ in rows])
    assert kept == sorted(r.id for r, expected in rows if expected is None)
    assert {i: f for i, (f, _) in log.items()} == {r.id: expected for r, expected in rows if expected is not None}
    assert set(f for f, _ in log.values()) == {s.filter.name for s in steps if _can_drop(s.filter)}, "every check of the spec is exercised"


def _spec(tmp_path: Path, *filters: dict[str, Any]) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"filters": list(filters)}))
    return path


def test_verdict_match_reads_the_text_not_the_recorded_verdict(tmp_path: Path) -> None:
    rows = [
        rprm_sft("good/a"),
        rprm_sft("none/a", "None?", REASONING),
        rprm_sft("twice/a", "Twice?", analysis("Yes") + "\n" + verdict_line("Yes")),
        rprm_sft("lowercase/a", "Lowercase?", REASONING + verdict_line("Yes").replace("Yes", "yes")),
        rprm_sft("wrong/a", "Wrong?", analysis("No")),  # its row still says verdict "Yes"
    ]
    kept, log = curated(tmp_path, rows, _spec(tmp_path, {"filter": "verdict_match", "text": "analysis", "format": "rprm"}))
    assert kept == ["good/a"]
    assert log["wrong/a"][1] == "analysis: verdict No is not the label Yes"
    assert {log[i][1] for i in ("none/a", "twice/a", "lowercase/a")} == {"analysis: states no single verdict in the rprm format"}
    differ = {"filter": "verdict_match", "text": "analysis", "format": "rprm", "expect": "differ"}
    kept, log = curated(tmp_path / "differ", rows, _spec(tmp_path, differ))
    assert kept == ["wrong/a"] and log["good/a"][1] == "analysis: verdict Yes is the label Yes"


def test_final_attempt_rereads_the_completion(tmp_path: Path) -> None:
    no_gold = trajectory("no-gold", [WRONG], "No gold?").model_copy(update={"gold_answer": None})
    silent = trajectory("silent", [("I add the apples and get seven.", "7", True, "correct")], "Silent?")
    rows = [trajectory("good", [WRONG, RIGHT]), trajectory("rejected", [WRONG], "Rejected?"), no_gold, silent]
    kept, log = curated(tmp_path, rows, _spec(tmp_path, {"filter": "final_attempt"}))
    assert kept == ["good", "no-gold"]  # nothing to grade a row without a gold answer against
    assert log == {
        "rejected": ("final_attempt", "no final attempt confirmed by its own verification"),
        "silent": ("final_attempt", "the confirmed final attempt states no answer"),
    }
    confirmed_wrong = trajectory("confirmed-wrong", [(WRONG[0], "1", False, "correct")])
    _, log = curated(tmp_path / "wrong", [confirmed_wrong], _spec(tmp_path, {"filter": "final_attempt"}))
    assert log["confirmed-wrong"][1] == "final answer 1 does not match gold 7"


def test_first_wrong_check_keeps_unknown_and_ungraded_solutions(tmp_path: Path) -> None:
    rows = [
        step_labels("unknown/sample-0", labels=[None, False], first_wrong=None, origin="sampled"),  # first wrong step unknown: consistent
        step_labels("ungraded/sample-0", final_answer_correct=None, origin="sampled"),
        step_labels("late/sample-0", labels=[True, False], first_wrong=0, origin="sampled"),
    ]
    kept, log = curated(tmp_path, rows, _spec(tmp_path, {"filter": "first_wrong_check"}))
    assert kept == ["ungraded/sample-0", "unknown/sample-0"]
    assert log == {"late/sample-0": ("first_wrong_check", "first_wrong is 0, its labels say 1")}
