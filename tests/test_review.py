"""Argilla review: push → reviewers answer through the SDK → pull → apply, against a real Argilla server.

The session fixture starts Debian's ``redis-server`` and the real ``argilla-server`` (its own virtualenv,
``make argilla-server``) on free loopback ports, with SQLite and the in-memory search engine from
``tests/argilla_memory_search.py``; nothing here is mocked. One server serves the whole session. The
round trips cover every review-question family: step-wise preferences on a real built run, and R-PRM,
judge data, S2R, step labels and IFT on small synthetic runs of their kinds. The unit tests at the end
check every kind's review declaration, the sampling, the decisions and ``apply`` without the server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.curation.review import sampling, transport
from judgeforge.curation.review.apply import apply
from judgeforge.curation.review.sidecar import SIDECAR, ReviewSource, write_sidecar
from judgeforge.curation.review.votes import decide
from judgeforge.runs import RunDir, open_run
from judgeforge.schemas import step_prefs
from judgeforge.schemas.base import BaseRow, rows_to_table
from judgeforge.schemas.kind import ReviewField, ReviewQuestion, ReviewSpec
from judgeforge.schemas.registry import KINDS, all_kinds, get_kind
from judgeforge.schemas.rprm import RprmPrefsRow
from judgeforge.schemas.s2r import Verification
from judgeforge.sources import Problem
from tests import test_default_specs as specs
from tests.argilla_fixture import Argilla, answer_records, cli, free_port, one_line_error
from tests.helpers import read_rows
from tests.test_cards import step_prefs_rows, synthetic_run

DATASET = "step-prefs-review"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`user_id` not provided:UserWarning")  # the SDK warns while reading records back
def test_review_round_trip(step_prefs_run: Path, argilla: Argilla, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "SEARCH_PAGE", 2)  # make pull page through the server's search
    rows = {r["id"]: r for r in read_rows(step_prefs_run)}
    assert len(rows) >= 4, "the session run must have at least 4 pairs to review"
    push = [
        "review",
        "push",
        str(step_prefs_run),
        "--dataset",
        DATASET,
        "--api-url",
        argilla.url,
        "--sample",
        "4",
        "--stratify-by",
        "solution_status",
        "--workspace",
        "default",
    ]
    first = cli(push, argilla.owner_key)
    assert first.exit_code == 0, first.output
    assert "4 / 0" in first.output  # new / updated

    import argilla as rg

    owner = rg.Argilla(api_url=argilla.url, api_key=argilla.owner_key)
    dataset = owner.datasets(DATASET, workspace="default")
    pushed = sorted(r.id for r in dataset.records())
    assert len(pushed) == 4 and set(pushed) <= set(rows)
    assert {f.name for f in dataset.settings.fields} == {"question", "previous_steps", "chosen", "rejected"}
    record = next(iter(dataset.records(with_suggestions=True)))
    assert record.fields["question"] == rows[record.id]["question"]

    r0, r1, r2, r3 = pushed
    shown = answer_records(
        argilla.url,
        argilla.reviewer_keys[0],
        DATASET,
        "chosen_better",
        {r0: ("submitted", "no"), r1: ("submitted", "tie"), r2: ("submitted", "yes"), r3: ("discarded", None)},
    )
    assert set(shown.values()) == {"yes"}  # the model's own verdict is shown
    answer_records(argilla.url, argilla.reviewer_keys[1], DATASET, "chosen_better", {r0: ("submitted", "no"), r1: ("draft", "yes"), r2: ("submitted", "no")})

    again = cli(push, argilla.owner_key)  # same sample again: updates, no duplicates, answers kept
    assert again.exit_code == 0, again.output
    assert "0 / 4" in again.output
    assert len(list(dataset.records())) == 4

    pulled = cli(["review", "pull", str(step_prefs_run), "--dataset", DATASET, "--api-url", argilla.url], argilla.owner_key)
    assert pulled.exit_code == 0, pulled.output
    answers = pq.read_table(step_prefs_run / SIDECAR).to_pylist()
    got = sorted((a["row_id"], a["reviewer"], a["status"], a["chosen_better"]) for a in answers)
    assert got == sorted(
        [
            (r0, "reviewer1", "submitted", "no"),
            (r0, "reviewer2", "submitted", "no"),
            (r1, "reviewer1", "submitted", "tie"),
            (r2, "reviewer1", "submitted", "yes"),
            (r2, "reviewer2", "submitted", "no"),
            (r3, "reviewer1", "discarded", None),
        ]
    )  # reviewer2's draft on r1 is not an answer
    assert all(a["model_chosen_better"] == "yes" for a in answers)
    assert {a["note"] for a in answers if a["row_id"] == r0} == {"reviewer1 says no", "reviewer2 says no"}

    out = tmp_path / "reviewed"
    applied = cli(["review", "apply", str(step_prefs_run), "--out", str(out)])
    assert applied.exit_code == 0, applied.output
    new_run = out / "step_prefs"
    open_run(new_run, "step_prefs")  # every shard still stamped with the kind
    assert (
        pq.read_schema(next((new_run / "data").glob("*.parquet"))).remove_metadata()
        == pq.read_schema(next((step_prefs_run / "data").glob("*.parquet"))).remove_metadata()
    )
    after = {r["id"]: r for r in read_rows(new_run)}
    assert set(after) == set(rows) - {r1, r3}  # "tie" and the discarded record are dropped
    assert (after[r0]["chosen"], after[r0]["rejected"]) == (rows[r0]["rejected"], rows[r0]["chosen"])  # "no": swapped
    assert (after[r0]["chosen_score"], after[r0]["rejected_score"]) == (rows[r0]["rejected_score"], rows[r0]["chosen_score"])
    assert after[r2] == rows[r2]  # one yes, one no: an even split leaves the row as it was
    for row_id in set(rows) - set(pushed):
        assert after[row_id] == rows[row_id]

    manifest = json.loads((new_run / "manifest.json").read_text())
    parent = json.loads((step_prefs_run / "manifest.json").read_text())
    assert manifest["parent"]["run_id"] == parent["run_id"] and manifest["builder"] == parent["builder"]
    assert manifest["commands"] == [parent["command"], manifest["command"]]  # build, then this apply (argv as recorded)
    assert manifest["rows_in"] == len(rows) and manifest["rows_out"] == len(rows) - 2
    stats = manifest["review"]
    assert stats["rows"] == {"unreviewed": len(rows) - 4, "keep": 0, "relabel": 1, "drop": 2, "split": 1}
    assert stats["reviewers"] == 2 and stats["answers"] == 6 and stats["records_pushed"] == 4
    question = stats["questions"]["chosen_better"]
    assert question["rows_reviewed"] == 3 and question["answers"] == 5
    assert question["agreement_with_model"] == pytest.approx(1 / 5, abs=1e-4)  # one "yes" among five answers
    assert question["reviewer_unanimity"] == pytest.approx(1 / 2, abs=1e-4)  # r0 unanimous, r2 split
    assert question["labels"] == {"no": 3, "tie": 1, "yes": 1}
    assert (new_run / SIDECAR).is_file()
    assert "ARGILLA_API_KEY" not in (new_run / "manifest.json").read_text() and argilla.owner_key not in (new_run / "manifest.json").read_text()

    again_out = cli(["review", "apply", str(step_prefs_run), "--out", str(out)])
    assert "already exists" in one_line_error(again_out)


# --- small synthetic rows of every kind (the default-spec tests' factories, with what review reads varied) ---


def _ift(i: int) -> BaseRow:
    return specs.ift(f"q{i}/ift-0", verified=i != 2)


def _eft(i: int) -> BaseRow:
    return specs.eft(
        f"q{i}/eft-step-2/AB",
        previous_steps=["Step 1: Tom has 3 + 4 apples."],
        step_index=2,
        step_a=" 3 + 4 = 7.",
        step_b=" 3 + 4 = 8.",
        value_a=0.9,
        value_b=0.1 * i,
    )


def _step_labels(i: int) -> BaseRow:
    choices: list[list[bool | None]] = [[True, True], [True, False], [None, False]]
    labels = choices[i]
    return specs.step_labels(
        f"q{i}/corrupted", labels=labels, first_wrong=[-1, 1, None][i], origin="corrupted", corruption="step 2: number 7 -> 8", corruption_kind="number"
    )


def _rprm_sft(i: int) -> BaseRow:
    return specs.rprm_sft(f"q{i}/step-1/analysis-0").model_copy(update={"num_matching": 3, "num_mismatching": 1})


def _rprm_prefs(i: int) -> BaseRow:
    return specs.rprm_prefs(f"q{i}/step-1/pair-0-{i + 1}").model_copy(
        update={"num_matching": 1, "num_mismatching": 3, "rejected_forced_verdict": True, "rejected_index": i + 1}
    )


def _rprm_scores(i: int) -> BaseRow:
    update = {
        "label": "No",
        "reward": [0.8, 0.2, None][i],
        "method": ["p_yes", "vote", "none"][i],
        "p_yes": [0.7, 0.9],
        "votes": ["Yes", None],
        "analyses": ["Yes.", "?"],
    }
    return specs.rprm_score(f"s0/step-{i + 1}", i + 1).model_copy(update=update)


def _ste(i: int) -> BaseRow:
    return specs.ste(f"x{i}/ste", "B", f"Name {i + 2} primes.", num_judgments=4, num_correct=3)


def _s2r(i: int) -> BaseRow:
    made = [Verification(answer="7", style="confirmative", text="ok", verdict="correct", forced=False, valid=valid) for valid in (True, True, False, i == 0)]
    return specs.trajectory(f"q{i}", [specs.WRONG, specs.RIGHT], f"What is 3 + 4? ({i})").model_copy(update={"verifications": made})


def _s2r_prompt(i: int) -> BaseRow:
    problem = Problem(
        id=f"q{i}", question=f"What is {i} + 1?", answer=str(i + 1) if i != 2 else None, solution=f"{i} + 1 = {i + 1}", meta={"gym_task": "basic_arithmetic"}
    )
    return specs.s2r_prompt(f"q{i}", problem.question, problem.answer).model_copy(update={"problem": problem.model_dump_json()})


ROWS = {
    "ift": _ift,
    "eft": _eft,
    "step_prefs": lambda i: step_prefs_rows(["final_answer"] * (i + 1))[i],
    "step_labels": _step_labels,
    "rprm_sft": _rprm_sft,
    "rprm_prefs": _rprm_prefs,
    "rprm_scores": _rprm_scores,
    "ste_judgments": _ste,
    "s2r_trajectories": _s2r,
    "s2r_rl_prompts": _s2r_prompt,
}


def _rows(kind: str, n: int = 3) -> list[dict[str, Any]]:
    return [ROWS[kind](i).model_dump() for i in range(n)]


# --- a round trip per review-question family, on synthetic runs ------------------------------------

FAMILIES = {"rprm_prefs": "R-PRM", "ste_judgments": "judge data", "s2r_trajectories": "S2R", "step_labels": "step labels", "ift": "IFT"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(FAMILIES))
@pytest.mark.filterwarnings("ignore:`user_id` not provided:UserWarning")
def test_review_round_trip_per_family(kind: str, argilla: Argilla, tmp_path: Path) -> None:
    spec = get_kind(kind).review
    question = spec.questions[0]
    run = synthetic_run(tmp_path / kind, [ROWS[kind](i) for i in range(3)])
    rows = {r["id"]: r for r in read_rows(run)}
    name = f"{kind}-review"
    pushed = cli(["review", "push", str(run), "--dataset", name, "--api-url", argilla.url, "--sample", "3", "--workspace", "default"], argilla.owner_key)
    assert pushed.exit_code == 0, pushed.output

    import argilla as rg

    dataset = rg.Argilla(api_url=argilla.url, api_key=argilla.owner_key).datasets(name, workspace="default")
    assert [f.name for f in dataset.settings.fields] == [f.name for f in spec.fields]
    assert {q.name for q in dataset.settings.questions} == {question.name, "note"}
    assert {m.name for m in spec.metadata} <= {m.name for m in dataset.settings.metadata}
    for record in dataset.records():
        assert record.fields == {f.name: f.render(rows[record.id]) for f in spec.fields}  # the kind's markdown, exactly

    r0, r1, r2 = sorted(rows)
    no = next(label for label in question.labels if label != "yes")
    shown = answer_records(
        argilla.url, argilla.reviewer_keys[0], name, question.name, {r0: ("submitted", "yes"), r1: ("submitted", no), r2: ("discarded", None)}
    )
    model = {row_id: (question.model_answer(row) or (None, None))[0] for row_id, row in rows.items()} if question.model_answer else {}
    assert shown == model  # what the data itself claims is what reviewers are shown
    answer_records(argilla.url, argilla.reviewer_keys[1], name, question.name, {r0: ("submitted", "yes")})
    pulled = cli(["review", "pull", str(run), "--dataset", name, "--api-url", argilla.url, "--workspace", "default"], argilla.owner_key)
    assert pulled.exit_code == 0, pulled.output

    out = tmp_path / "reviewed"
    applied = cli(["review", "apply", str(run), "--out", str(out)])
    assert applied.exit_code == 0, applied.output
    after = {r["id"]: r for r in read_rows(out / kind)}
    assert after[r0] == rows[r0]
    assert r2 not in after  # discarded
    fate = question.outcomes[no]
    if fate == "relabel":
        assert spec.relabel is not None and after[r1] == spec.relabel(rows[r1]) != rows[r1]
    else:
        assert fate == "drop" and r1 not in after
    review = json.loads((out / kind / "manifest.json").read_text())["review"]
    assert review["rows"] == {"unreviewed": 0, "keep": 1, "relabel": int(fate == "relabel"), "drop": 1 + int(fate == "drop"), "split": 0}
    stats = review["questions"][question.name]
    given = [("yes", model.get(r0)), ("yes", model.get(r0)), (no, model.get(r1))]
    compared = [(a, m) for a, m in given if m is not None]
    assert stats["answers"] == 3 and stats["answers_compared_with_model"] == len(compared)
    assert stats["agreement_with_model"] == (pytest.approx(sum(a == m for a, m in compared) / len(compared), abs=1e-4) if compared else None)


@pytest.mark.slow
def test_connection_errors(tmp_path: Path, argilla: Argilla) -> None:
    run = synthetic_run(tmp_path / "run", step_prefs_rows(["final_answer"]))
    args = ["review", "push", str(run), "--dataset", "never-created", "--sample", "1"]
    wrong_key = one_line_error(cli([*args, "--api-url", argilla.url], "not-a-valid-key"))
    assert "rejected the API key" in wrong_key and "not-a-valid-key" not in wrong_key
    closed = f"http://127.0.0.1:{free_port()}"
    assert f"cannot reach Argilla at {closed}" in one_line_error(cli([*args, "--api-url", closed], argilla.owner_key))
    assert "no Argilla server" in one_line_error(CliRunner().invoke(main, args, env={"ARGILLA_API_URL": None, "ARGILLA_API_KEY": "x"}))
    missing = one_line_error(cli(["review", "pull", str(run), "--dataset", "never-created", "--api-url", argilla.url], argilla.owner_key))
    assert "no Argilla dataset 'never-created'" in missing


# --- every kind's review declaration (no server) ---------------------------------------------------


def test_every_kind_has_its_own_review() -> None:
    assert set(ROWS) == set(KINDS)
    for kind in all_kinds():
        spec = kind.review
        for row in _rows(kind.name):
            for f in spec.fields:
                text = f.render(row)
                assert isinstance(text, str) and text.strip(), (kind.name, f.name)  # an empty field is invisible in Argilla
            for m in spec.metadata:
                value = m.value(row)
                assert value is None or isinstance(value, {"terms": str, "integer": int, "float": float}[m.kind]), (kind.name, m.name, value)
            for q in spec.questions:
                answer = q.model_answer(row) if q.model_answer else None
                assert answer is None or (answer[0] in q.labels and (answer[1] is None or 0 <= answer[1] <= 1)), (kind.name, q.name, answer)
        relabels = any("relabel" in q.outcomes.values() for q in spec.questions)
        assert relabels == (spec.relabel is not None), kind.name


def test_review_questions_ask_what_each_family_needs() -> None:
    titles = {k.name: k.review.questions[0].title for k in all_kinds()}
    assert titles["rprm_sft"] == "Is the analysis's verdict right for this step?"
    assert titles["rprm_prefs"] == "Is the chosen analysis's verdict right for this step?"
    assert titles["rprm_scores"] == "Is the reward's Yes/No side right for this step?"
    assert titles["eft"] == titles["ste_judgments"] == "Is the kept verdict correct?"
    assert titles["s2r_trajectories"] == "Are the verifications valid?"
    assert titles["s2r_rl_prompts"] == "Is the gold answer right for this question?"
    assert titles["step_labels"] == "Is the first wrong step marked correctly?"
    assert titles["ift"] == "Is this solution correct and well split into steps?"


def _model_answers(kind: str) -> list[tuple[str, float | None] | None]:
    question = get_kind(kind).review.questions[0]
    assert question.model_answer is not None
    return [question.model_answer(row) for row in _rows(kind)]


def test_model_answers_are_what_the_data_claims() -> None:
    assert _model_answers("ift") == [("yes", None), ("yes", None), ("wrong", None)]  # the third did not verify
    assert _model_answers("eft") == [("yes", 0.9), ("yes", 0.8), ("yes", 0.7)]  # confidence: the rollout value gap
    assert _model_answers("ste_judgments") == [("yes", 0.75)] * 3  # 3 of 4 sampled judgments picked y^w
    assert _model_answers("rprm_sft") == [("yes", 0.75)] * 3 and _model_answers("rprm_prefs") == [("yes", 0.25)] * 3  # matching share
    # reward 0.8 says Yes, 0.2 says No, against the label No; no reward, no claim
    assert _model_answers("rprm_scores") == [("no", None), ("yes", None), None]
    assert _model_answers("step_labels") == [("yes", None), ("yes", None), None]  # the first wrong step unknown: no claim
    assert _model_answers("s2r_trajectories") == [("yes", 0.75), ("yes", 0.5), ("yes", 0.5)]  # share of valid Stage-0 verifications
    assert _model_answers("s2r_rl_prompts") == [("yes", None), ("yes", None), None]  # no gold answer, no claim


def test_fields_show_the_row_as_reviewers_need_it() -> None:
    def fields(kind: str, i: int = 0) -> dict[str, str]:
        row = _rows(kind)[i]
        return {f.name: f.render(row) for f in get_kind(kind).review.fields}

    eft = fields("eft")
    assert eft["step_a"] == "Step 2: 3 + 4 = 7." and eft["previous_steps"] == "Step 1: Tom has 3 + 4 apples."
    assert eft["judgment"].startswith("**Kept verdict: Step A is better**") and eft["question"].endswith("**Reference answer:** 7")
    ste = fields("ste_judgments")
    assert (ste["response_a"], ste["response_b"]) == ("3 + 4 = 7 pears.", "Name 2 primes.: 3 + 4 = 7 apples.")  # as the judge saw them: y^w in B
    labels = fields("step_labels", 1)
    assert "**marked as the first wrong step**" in labels["steps"].split("\n\n")[2] and "**Step 2**" in labels["marking"]
    assert "every step is labelled correct" in fields("step_labels", 0)["marking"]
    trajectory = fields("s2r_trajectories")["trajectory"]
    assert trajectory.index("#### Attempt 1: answer `1` (wrong) · *not trained*") < trajectory.index("#### Verification 1") < trajectory.index("#### Attempt 2")
    assert "Reward **0.800** (mean P(Yes) over 2 evaluations): side **Yes**" in fields("rprm_scores")["reward"]
    assert "no reward" in fields("rprm_scores", 2)["reward"]
    assert fields("rprm_prefs")["rejected"].startswith("Verdict: **No** (the step is wrong)")
    assert "Gold solution" in fields("s2r_rl_prompts")["answer"]


def test_relabelling_swaps_pairs() -> None:
    prefs = _rows("rprm_prefs")[1]
    relabel = get_kind("rprm_prefs").review.relabel
    assert relabel is not None
    flipped = relabel(prefs)
    assert flipped["label"] == "No" and (flipped["num_matching"], flipped["num_mismatching"]) == (3, 1)
    assert (flipped["chosen"], flipped["chosen_verdict"], flipped["chosen_forced_verdict"], flipped["chosen_index"]) == (prefs["rejected"], "No", True, 2)
    assert (flipped["rejected"], flipped["rejected_verdict"], flipped["rejected_index"]) == (prefs["chosen"], "Yes", 0)
    assert relabel(flipped) == prefs
    pair = _rows("step_prefs")[0]
    swap = step_prefs.REVIEW.relabel
    assert swap is not None
    assert (swap(pair)["chosen"], swap(pair)["rejected_score"]) == (pair["rejected"], pair["chosen_score"]) and swap(swap(pair)) == pair


def test_review_spec_rejects_what_argilla_or_apply_could_not_do() -> None:
    field = ReviewField("prompt", "Prompt", lambda r: r["prompt"])
    relabels = ReviewQuestion("ok", "OK?", {"yes": "yes", "no": "no"}, {"yes": "keep", "no": "relabel"})
    with pytest.raises(ValueError, match="no relabel"):
        ReviewSpec((field,), (relabels,), "g")
    with pytest.raises(ValueError, match="outcomes"):
        ReviewSpec((field,), (ReviewQuestion("ok", "OK?", {"yes": "yes", "no": "no"}, {"yes": "keep"}),), "g")
    with pytest.raises(ValueError, match="distinct names"):
        ReviewSpec((ReviewField("note", "Note", lambda r: ""),), (ReviewQuestion("ok", "OK?", {"yes": "yes"}, {"yes": "keep"}),), "g")


# --- sampling, decisions and apply on small synthetic runs (no server) -----------------------------


def test_stratified_sample_keeps_shares_and_is_reproducible(tmp_path: Path) -> None:
    run = open_run(synthetic_run(tmp_path / "run", step_prefs_rows(["final_answer"] * 60 + ["max_steps"] * 30 + ["rollback_limit"] * 2)))
    ids = sampling.sample_ids(run, 10, "solution_status", seed=1)
    assert len(ids) == 10 and ids == sampling.sample_ids(run, 10, "solution_status", seed=1)
    statuses = {r["id"]: r["solution_status"] for r in sampling.read_rows(run, ids)}
    counts = {s: list(statuses.values()).count(s) for s in set(statuses.values())}
    assert counts == {"final_answer": 6, "max_steps": 3, "rollback_limit": 1}  # the rare stratum still gets one
    assert sampling.sample_ids(run, 10, "solution_status", seed=2) != ids
    assert len(sampling.sample_ids(run, 500, None, seed=0)) == 92


def test_decisions_follow_the_majority() -> None:
    spec = step_prefs.REVIEW

    def answer(row: str, who: str, status: str, value: str | None) -> dict[str, Any]:
        return {"row_id": row, "reviewer": who, "status": status, "chosen_better": value, "model_chosen_better": "yes", "note": None}

    decisions, stats = decide(
        spec,
        [
            answer("a", "x", "submitted", "yes"),
            answer("a", "y", "submitted", "yes"),
            answer("a", "z", "submitted", "tie"),
            answer("b", "x", "discarded", None),
            answer("b", "y", "discarded", None),
            answer("b", "z", "submitted", "yes"),
            answer("c", "x", "submitted", "no"),
            answer("d", "x", "submitted", "no"),
            answer("d", "y", "submitted", "tie"),
        ],
    )
    assert decisions == {"a": "keep", "b": "drop", "c": "relabel", "d": None}
    report = stats["chosen_better"].report()
    assert report["rows_reviewed"] == 4 and report["answers"] == 7 and report["agreement_with_model"] == pytest.approx(3 / 7, abs=1e-4)


def test_apply_writes_through_the_curation_shard_writer(tmp_path: Path) -> None:
    """Drops and relabels land on the right rows of every shard, in place; shard layout and stats are curate's."""
    rows = [ROWS["rprm_prefs"](i) for i in range(4)]
    root = synthetic_run(tmp_path / "run", rows[:2])
    RunDir(root, "rprm_prefs").write_chunk(1, rows_to_table(RprmPrefsRow, rows[2:]), {"rows": 2})
    run = open_run(root)
    ids = [r.id for r in rows]
    votes = {ids[0]: "no", ids[1]: "yes", ids[2]: "no", ids[3]: None}  # relabel, keep, relabel, discarded
    answers = [
        {"row_id": i, "reviewer": "x", "status": "discarded" if v is None else "submitted", "verdict_right": v, "model_verdict_right": "yes", "note": None}
        for i, v in votes.items()
    ]
    source = ReviewSource(
        kind="rprm_prefs", run_id=None, dataset="d", workspace="w", api_url="u", questions=["verdict_right"], records=4, records_completed=4, pulled_at="t"
    )
    write_sidecar(run, answers, source)
    manifest = apply(run, tmp_path / "out")
    new = tmp_path / "out" / "rprm_prefs"
    relabel = get_kind("rprm_prefs").review.relabel
    assert relabel is not None
    before = [r.model_dump() for r in rows]
    shards = [pq.read_table(p).to_pylist() for p in sorted((new / "data").glob("shard-*.parquet"))]
    assert shards == [[relabel(before[0]), before[1]], [relabel(before[2])]]  # row order kept, the discarded row gone
    assert [json.loads(pq.read_schema(p).metadata[b"judgeforge.chunk_stats"])["rows_in"] for p in sorted((new / "data").glob("*.parquet"))] == [2, 2]
    assert manifest.rows_in == 4 and manifest.rows_out == 3 and manifest.review is not None
    assert manifest.review.rows == {"unreviewed": 0, "keep": 1, "relabel": 2, "drop": 1, "split": 0}


def test_apply_without_pull_is_one_clear_line(tmp_path: Path) -> None:
    run = synthetic_run(tmp_path / "run", step_prefs_rows(["final_answer"]))
    line = one_line_error(CliRunner().invoke(main, ["review", "apply", str(run), "--out", str(tmp_path / "out")]))
    assert "no review answers" in line and "review pull" in line
    assert not (tmp_path / "out").exists()
