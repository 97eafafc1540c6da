"""`judgeforge audit`: each check catches the disagreement it exists for, and a real run audits clean."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.curation.audit import CHECKS, AuditContext
from judgeforge.formats.judge import format_judgment
from tests.helpers import assert_pipeline_on, read_rows

CTX = AuditContext(config={}, problems={})


def check(kind: str, name: str, row: dict[str, Any], ctx: AuditContext = CTX) -> bool | None:
    (found,) = [c for c in CHECKS[kind] if c.name == name]
    return found.test(row, ctx)


def test_every_kind_has_checks() -> None:
    from judgeforge.schemas.registry import KINDS

    kinds = set(KINDS)
    assert kinds <= set(CHECKS) and all(CHECKS[k] for k in kinds)


def test_step_prefs_checks_catch_a_mid_step_answer_phrase_marked_final_and_a_misread_verdict() -> None:
    row = {
        "chosen": " To find the answer: first compute 3+4.",
        "rejected": " 3 + 4 = 8.",
        "chosen_is_final": True,
        "rejected_is_final": False,
        "previous_steps": [],
        "step_index": 1,
        "question": "q",
        "source_id": "p",
        "solution_status": "final_answer",
    }
    assert check("step_prefs", "EOS only after final steps", row) is True  # the view follows the flag...
    ctx = AuditContext(config={}, problems={}, last_step={"p": 2})
    assert check("step_prefs", "final step ends its search", row, ctx) is False  # ...but the search went on after a "final" step
    stated = {**row, "chosen": " 3 + 4 = 7. The answer is 7.", "chosen_is_final": False}
    assert check("step_prefs", "answer steps are final", stated) is False
    judged = {"judgments": [{"raw": "Verdict: a", "verdict": "B", "forced": False, "p_first": None}]}
    assert check("step_prefs", "judge verdicts re-parse", judged) is False
    assert (
        check("step_prefs", "judge verdicts re-parse", {"judgments": [{"raw": "x\n\nVerdict: [[A]]", "verdict": "A", "forced": False, "p_first": None}]})
        is True
    )


def test_judge_data_checks_catch_forced_and_contradictory_targets() -> None:
    good = {"judgment": format_judgment("Response A answers it.", "A"), "label": "A", "judgment_forced": False}
    assert check("ste_judgments", "kept judgment is a parsed, correct verdict", good) is True
    forced = {**good, "judgment_forced": True}
    assert check("ste_judgments", "kept judgment is a parsed, correct verdict", forced) is False  # not allowed by default
    allowed = AuditContext(config={"allow_forced_verdicts": True}, problems={})
    assert check("ste_judgments", "kept judgment is a parsed, correct verdict", forced, allowed) is True
    both = {**forced, "judgment": "[[B]] on reflection.\n\n" + format_judgment("", "A")}
    assert check("ste_judgments", "kept judgment is a parsed, correct verdict", both, allowed) is False
    eft = {"judgment": format_judgment("Step B is right.", "B"), "label": "A", "forced_verdict": False, "value_a": 1.0, "value_b": 0.0}
    assert check("eft", "judgment re-parses to label", eft) is False
    assert check("eft", "label follows rollout values", eft) is True
    assert check("eft", "label follows rollout values", {**eft, "value_a": 0.0}) is False


def test_rprm_s2r_and_step_label_checks_catch_wrong_labels() -> None:
    analysis = {
        "analysis": "The step adds 3 and 4 to get 7, which is right.\nVerification: Is the step correct (Yes/No)? No",
        "verdict": "Yes",
        "label": "Yes",
        "forced_verdict": False,
    }
    assert check("rprm_sft", "analysis verdict re-parses", analysis) is False
    segment = {"role": "verification", "text": "5 + 5 = 10, which matches.\nVerdict: correct", "verdict": "incorrect", "forced": False, "answer_correct": False}
    assert check("s2r_trajectories", "verifications re-parse", {"segments": [segment]}) is False
    assert check("s2r_trajectories", "verdicts match answers", {"segments": [{**segment, "verdict": "correct"}]}) is False
    assert check("s2r_trajectories", "no forced verification trained", {"segments": [{**segment, "forced": True}]}) is False
    gold = AuditContext(config={}, problems={}, gold_steps={"p": ["Step 1: x.", "Step 2: 2 * 2 = 4."]})
    identity = {"source_id": "p", "origin": "corrupted", "steps": ["Step 1: x.", "Step 2: 2 + 2 = 4."], "first_wrong": 1, "labels": [True, False]}
    assert check("step_labels", "corruption changes the value", identity, gold) is False
    assert check("step_labels", "corruption changes the value", {**identity, "steps": ["Step 1: x.", "Step 2: 2 + 3 = 4."]}, gold) is True
    assert check("step_labels", "first wrong matches labels", {**identity, "first_wrong": 0}) is False
    assert check("step_labels", "first wrong matches labels", {"labels": [True, True], "first_wrong": -1}) is True


def test_audit_of_a_real_run_agrees_and_a_tampered_copy_fails(step_prefs_run: Path, tmp_path: Path) -> None:
    assert_pipeline_on(step_prefs_run, tmp_path)
    copy = tmp_path / "step_prefs"
    shutil.copytree(step_prefs_run, copy)
    shard = min((copy / "data").glob("shard-*.parquet"))
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[0]["chosen_score"], rows[0]["rejected_score"] = rows[0]["rejected_score"], rows[0]["chosen_score"]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    result = CliRunner().invoke(main, ["audit", str(copy)], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    # Swapped scores put rejected on top and leave a negative gap: two checks see it.
    assert rows[0]["id"] in result.output and "2 check(s) disagree: chosen is best, rejected is worst, pair is no tie" in result.output
    assert {r["id"] for r in read_rows(copy)} == {r["id"] for r in read_rows(step_prefs_run)}


def test_audit_rejects_a_dir_without_shards(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["audit", str(tmp_path)])
    assert result.exit_code != 0 and "has no data/shard-*.parquet files" in result.output
