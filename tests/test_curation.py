"""Curation filters on real Parquet through DuckDB: small hand-made step-prefs runs, exact ids kept and dropped.

Every run here is written with the real schema (``rows_to_table`` + ``RunDir.write_chunk``) and curated
through the real pipeline, so each test covers the filter's SQL/numpy, the ``_rid`` bookkeeping across
shards, the curated shards and the curation log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.curation.pipeline import CurateOptions, curate
from judgeforge.errors import UserError
from judgeforge.runs import Manifest, RunDir, open_run
from judgeforge.schemas.base import KIND_KEY, SCHEMA_VERSION_KEY, BaseRow, RowMeta, rows_to_table
from judgeforge.schemas.step_prefs import StepJudgment, StepPrefsRow

META = RowMeta(builder="hand", builder_version="0", run_id="hand", model="none")


def judgment(first: int, second: int, verdict: str | None) -> StepJudgment:
    return StepJudgment(first=first, second=second, raw=f"[[{verdict}]]", verdict=verdict, forced=False, p_first=None)


CONSISTENT = [judgment(0, 1, "A"), judgment(1, 0, "B")]


def row(id: str, **fields: Any) -> StepPrefsRow:
    """A valid step-prefs row; ``fields`` override the defaults. Candidates are [chosen, rejected]."""
    values: dict[str, Any] = {
        "id": id,
        "source_id": id.split("/")[0],
        "meta": META,
        "question": f"Problem {id}: Tom has 3 apples and buys 4 more. How many apples does he have now?",
        "previous_steps": [],
        "step_index": 1,
        "chosen": f"Step 1: add the apples for {id}, 3 + 4 = 7.",
        "rejected": "Step 1: subtract, 4 - 3 = 1.",
        "chosen_is_final": False,
        "rejected_is_final": False,
        "chosen_score": 2.0,
        "rejected_score": 0.0,
        "judgments": CONSISTENT,
        "judge_unparsable": 0,
        "gold_answer": "7",
        "final_answer": "7",
        "solution_correct": True,
        "solution_status": "final_answer",
    }
    values.update(fields)
    values.setdefault("candidates", [values["chosen"], values["rejected"]])
    values.setdefault("candidate_scores", [values["chosen_score"], values["rejected_score"]])
    return StepPrefsRow(**values)


def make_run(root: Path, rows: Sequence[BaseRow], shards: int = 1) -> Path:
    """A run dir of hand-made rows (all of one kind), split over ``shards`` shards, with a manifest."""
    model = type(rows[0])
    run = RunDir(root / model.kind, model.kind)
    per = -(-len(rows) // shards)
    for i in range(shards):
        part = list(rows[i * per : (i + 1) * per])
        run.write_chunk(i, rows_to_table(model, part), {"rows": len(part)})
    run.write_manifest(
        Manifest.model_validate(
            {
                "kind": model.kind,
                "run_id": "handmade00000000",
                "fingerprint": "f" * 64,
                "status": "complete",
                "builder": {"name": "hand", "version": "0"},
                "source": {"source": "hand"},
                "seed": 0,
            }
        )
    )
    return run.root


def run_spec(tmp_path: Path, rows: list[StepPrefsRow], filters: list[dict[str, Any]], shards: int = 1, **opts: Any) -> tuple[list[str], dict[str, Any], Path]:
    """Curate hand-made rows with ``filters``; returns the kept ids (in order), the manifest (as JSON data) and the output dir."""
    src = make_run(tmp_path / "in", rows, shards)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"kind": "step_prefs", "filters": filters}))
    manifest, out = curate(src, CurateOptions(spec=spec, out=tmp_path / "out", **opts))
    kept = [r["id"] for shard in sorted((out / "data").glob("shard-*.parquet")) for r in pq.read_table(shard, columns=["id"]).to_pylist()]
    return kept, manifest.dump(), out


def log(out: Path) -> dict[str, tuple[str, str, str]]:
    """id -> (filter, action, reason) from the curation log."""
    return {r["id"]: (r["filter"], r["action"], r["reason"]) for r in pq.read_table(out / "curation_log.parquet").to_pylist()}


# --- every filter, hand-checkable --------------------------------------------------------------------


def test_exact_dedup_normalises_text_and_keeps_the_first_row_across_shards(tmp_path: Path) -> None:
    q = "Tom has 3 apples and buys 4 more. How many?"
    rows = [
        row("a/step-1", question=q, chosen="Step 1: 3 + 4 = 7."),
        row("b/step-1", question=q, chosen="step 1:  3 + 4 = 7. "),  # same after case/space normalisation
        row("c/step-1", question=q, chosen="Step 1: 4 + 3 = 7."),
        row("d/step-2", question=q, chosen="Step 1: 4 + 3 = 7.", step_index=2),  # step_index is not a defining column here
        row("e/step-1", question=q, chosen="Step 1: 3 + 4 = 7.", rejected="Step 1: 7."),
    ]
    cols = ["question", "previous_steps", "chosen", "rejected"]
    kept, manifest, out = run_spec(tmp_path, rows, [{"filter": "exact_dedup", "columns": cols}], shards=2)
    assert kept == ["a/step-1", "c/step-1", "e/step-1"]
    assert log(out) == {"b/step-1": ("exact_dedup", "drop", "exact duplicate of a/step-1"), "d/step-2": ("exact_dedup", "drop", "exact duplicate of c/step-1")}
    step = manifest["curation"]["funnel"][0]
    assert (step["rows_in"], step["dropped"], step["rows_out"]) == (5, 2, 3)
    kept, _, _ = run_spec(tmp_path / "raw", rows, [{"filter": "exact_dedup", "columns": cols, "normalize": False}])
    assert kept == ["a/step-1", "b/step-1", "c/step-1", "e/step-1"]


def _words(seed: int, n: int) -> list[str]:
    import random

    rng = random.Random(seed)
    return [f"w{rng.randrange(100000)}" for _ in range(n)]


def test_near_dedup_clusters_by_minhash_lsh_and_compares_only_rows_sharing_same_columns(tmp_path: Path) -> None:
    base = _words(1, 120)
    one_word = base[:60] + ["changed"] + base[61:]  # Jaccard of word 5-grams: 111/121 = 0.92
    two_words = one_word[:90] + ["again"] + one_word[91:]  # near a/b: joins their cluster
    rows = [
        row("a/step-1", question=" ".join(base)),
        row("b/step-1", question=" ".join(one_word)),
        row("c/step-1", question=" ".join(_words(2, 120))),  # unrelated
        row("d/step-2", question=" ".join(one_word), step_index=2),  # same text, another step: never compared
        row("e/step-1", question=" ".join(two_words).upper()),  # case does not matter
        row("f/step-1", question=" ".join(base[:40])),  # a third of a: Jaccard 0.3
    ]
    filters = [{"filter": "near_dedup", "columns": ["question"], "same": ["step_index"]}]
    kept, manifest, out = run_spec(tmp_path, rows, filters, shards=2)
    assert kept == ["a/step-1", "c/step-1", "d/step-2", "f/step-1"]
    assert log(out) == {"b/step-1": ("near_dedup", "drop", "near duplicate of a/step-1"), "e/step-1": ("near_dedup", "drop", "near duplicate of a/step-1")}
    stats = manifest["curation"]["funnel"][0]["stats"]
    assert stats["documents"] == 6 and stats["clusters"] == 1
    # Without `same`, d joins the cluster too; a similarity floor of 0.97 keeps only the identical pair b-d joined.
    kept, _, _ = run_spec(tmp_path / "all", rows, [{"filter": "near_dedup", "columns": ["question"]}])
    assert kept == ["a/step-1", "c/step-1", "f/step-1"]
    kept, _, out = run_spec(tmp_path / "strict", rows, [{"filter": "near_dedup", "columns": ["question"], "min_similarity": 0.97}])
    assert kept == ["a/step-1", "b/step-1", "c/step-1", "e/step-1", "f/step-1"]
    assert log(out) == {"d/step-2": ("near_dedup", "drop", "near duplicate of b/step-1")}


def test_decontaminate_drops_or_flags_rows_sharing_a_word_8_gram_with_the_eval_set(tmp_path: Path) -> None:
    evals = tmp_path / "bench.jsonl"
    evals.write_text(
        json.dumps({"question": "A train leaves the station at noon travelling at sixty miles per hour toward the city.", "answer": "1"})
        + "\n"
        + json.dumps({"question": "What is the sum of the first ten prime numbers?", "answer": "129"})
        + "\n"
    )
    rows = [
        row("a/step-1", question="Suppose a train leaves the station at noon travelling at sixty miles per hour; when does it arrive?"),
        row("b/step-1", question="Suppose a train leaves the station at noon, going fast."),  # 7 shared words only
        row("c/step-1", question="Unrelated: how many legs do three spiders have?"),
        row("d/step-2", question="what is the sum of the first ten prime numbers"),  # case and punctuation ignored
        row("e/step-1", question="Suppose a train leaves the station at noon travelling at sixty miles per hour; when does it arrive?"),
    ]
    filters = [{"filter": "decontaminate", "columns": ["question"], "eval": {"source": str(evals)}}]
    kept, manifest, out = run_spec(tmp_path, rows, filters)
    assert kept == ["b/step-1", "c/step-1"]
    entries = log(out)
    assert set(entries) == {"a/step-1", "d/step-2", "e/step-1"}
    assert entries["a/step-1"][2] == "question: 6 word 8-gram(s) shared with eval problem 'bench:0'"
    assert entries["d/step-2"][2] == "question: 3 word 8-gram(s) shared with eval problem 'bench:1'"
    assert manifest["curation"]["funnel"][0]["stats"]["eval_problems"] == 2
    kept, manifest, out = run_spec(tmp_path / "flag", rows, [{**filters[0], "action": "flag"}])
    assert kept == [r.id for r in rows] and {v[1] for v in log(out).values()} == {"flag"}
    assert manifest["curation"]["funnel"][0]["flagged"] == 3


def test_decontaminate_without_an_eval_set_is_skipped_and_eval_option_fills_it_in(tmp_path: Path) -> None:
    evals = tmp_path / "bench.csv"
    evals.write_text("question,answer\nwhat is the sum of the first ten prime numbers,129\n")
    rows = [row("a/step-1", question="What is the sum of the first ten prime numbers, exactly?"), row("b/step-1")]
    kept, manifest, _ = run_spec(tmp_path, rows, [{"filter": "decontaminate"}])
    assert kept == ["a/step-1", "b/step-1"] and "no eval set" in manifest["curation"]["funnel"][0]["report"]["skipped"]
    kept, manifest, _ = run_spec(tmp_path / "eval", rows, [{"filter": "decontaminate"}], eval_source=str(evals))
    assert kept == ["b/step-1"] and manifest["curation"]["spec"]["filters"][0]["eval"] == {"source": str(evals)}


def test_length_bounds_in_characters(tmp_path: Path) -> None:
    rows = [
        row("a/step-1", chosen="x"),
        row("b/step-1"),
        row("c/step-1", rejected="y" * 300),
        row("d/step-1", chosen="z" * 301),
    ]
    kept, _, out = run_spec(tmp_path, rows, [{"filter": "length", "columns": ["chosen", "rejected"], "min_chars": 2, "max_chars": 300}])
    assert kept == ["b/step-1", "c/step-1"]
    assert log(out) == {"a/step-1": ("length", "drop", "chosen: 1 chars < min 2"), "d/step-1": ("length", "drop", "chosen: 301 chars > max 300")}


def test_length_bounds_in_tokens_of_the_embedded_tokenizer(tmp_path: Path) -> None:
    rows = [
        row("a/step-1", chosen="seven"),  # one token
        row("b/step-1", chosen="Step 1: add the apples together."),
        row("c/step-1", chosen=" the" * 60),  # " the" is one token: 60 tokens
        row("d/step-1", chosen=""),  # 0 tokens, but caught by the character bound first
    ]
    spec = {"filter": "length", "columns": ["chosen"], "min_chars": 1, "min_tokens": 2, "max_tokens": 40, "tokenizer": "smollm2"}
    kept, manifest, out = run_spec(tmp_path, rows, [spec])
    assert kept == ["b/step-1"]
    assert log(out) == {
        "a/step-1": ("length", "drop", "chosen: 1 tokens < min 2"),
        "c/step-1": ("length", "drop", "chosen: 60 tokens > max 40"),
        "d/step-1": ("length", "drop", "chosen: 0 chars < min 1"),
    }
    assert manifest["curation"]["funnel"][0]["stats"]["texts_tokenized"] == 3  # d never reached the tokenizer


def test_repetition_counts_repeated_word_ngrams(tmp_path: Path) -> None:
    rows = [
        row("a/step-1", chosen="Step 1: and then and then and then and then and then we stop."),
        row("b/step-1", chosen="Step 1: Tom has 3 apples, buys 4 more, so he has 3 + 4 = 7 apples."),
        row("c/step-1", chosen="yes yes yes yes"),  # only 2 word 3-grams: too short to judge
    ]
    kept, _, out = run_spec(tmp_path, rows, [{"filter": "repetition", "columns": ["chosen"], "ngram": 3, "max_duplicate_fraction": 0.3, "min_ngrams": 5}])
    assert kept == ["b/step-1", "c/step-1"]
    # "step 1 and then and then ... we stop" has 14 word 3-grams, 7 of them repeats of an earlier one.
    assert log(out) == {"a/step-1": ("repetition", "drop", "chosen: 50% of word 3-grams repeated (max 30%)")}


def test_answer_check_trusts_the_recorded_verdict_or_rechecks_with_math_verify(tmp_path: Path) -> None:
    rows = [
        row("a/step-1", final_answer="7", solution_correct=True),
        row("b/step-1", final_answer="8", solution_correct=False),
        row("c/step-1", final_answer=None, solution_correct=False, solution_status="max_steps"),
        row("d/step-1", gold_answer="0.5", final_answer="\\frac{1}{2}", solution_correct=None),
        row("e/step-1", gold_answer=None, final_answer="5", solution_correct=None),
    ]
    recorded = {"filter": "answer_check", "gold": "gold_answer", "answer": "final_answer", "correct": "solution_correct"}
    kept, _, out = run_spec(tmp_path, rows, [recorded])
    assert kept == ["a/step-1", "c/step-1", "d/step-1", "e/step-1"]
    assert log(out) == {"b/step-1": ("answer_check", "drop", "answer 8 marked wrong against gold 7")}
    kept, _, _ = run_spec(tmp_path / "unanswered", rows, [{**recorded, "drop_unanswered": True}])
    assert kept == ["a/step-1", "d/step-1", "e/step-1"]
    rechecked = {"filter": "answer_check", "gold": "gold_answer", "answer": "final_answer"}
    kept, manifest, out = run_spec(tmp_path / "recheck", rows, [rechecked])
    assert kept == ["a/step-1", "c/step-1", "d/step-1", "e/step-1"]  # 1/2 == 0.5 by math-verify
    assert log(out) == {"b/step-1": ("answer_check", "drop", "answer 8 does not match gold 7")}
    assert manifest["curation"]["funnel"][0]["stats"]["distinct_pairs_checked"] == 3


def test_chosen_not_rejected(tmp_path: Path) -> None:
    rows = [row("a/step-1", chosen="Step 1: 3 + 4 = 7.", rejected=" step 1:  3 + 4 = 7."), row("b/step-1")]
    kept, _, out = run_spec(tmp_path, rows, [{"filter": "chosen_not_rejected"}])
    assert kept == ["b/step-1"] and log(out) == {"a/step-1": ("chosen_not_rejected", "drop", "chosen equals rejected")}


def test_score_gap(tmp_path: Path) -> None:
    rows = [row("a/step-1", chosen_score=1.2, rejected_score=1.0), row("b/step-1", chosen_score=1.5, rejected_score=1.0), row("c/step-1")]
    kept, _, out = run_spec(tmp_path, rows, [{"filter": "score_gap", "min_gap": 0.5}])
    assert kept == ["b/step-1", "c/step-1"] and log(out) == {"a/step-1": ("score_gap", "drop", "score gap 0.2 < min 0.5")}


def test_position_swap_consistency_and_verdict_balance(tmp_path: Path) -> None:
    three = ["Step 1: good.", "Step 1: bad.", "Step 1: other."]
    rows = [
        row("a/step-1", judgments=CONSISTENT),
        row("b/step-1", judgments=[judgment(0, 1, "A"), judgment(1, 0, "A")]),  # says A whatever it sees
        row("c/step-1", judgments=[judgment(0, 1, "A")]),  # never judged in both orders: unchecked
        row("d/step-1", judgments=[judgment(0, 1, "A"), judgment(1, 0, None)]),  # one order unparsed: unchecked
        # chosen (0) vs rejected (1) consistent; 0 vs 2 inconsistent
        row(
            "e/step-1",
            chosen=three[0],
            rejected=three[1],
            candidates=three,
            candidate_scores=[3.0, 0.0, 1.0],
            judgments=[*CONSISTENT, judgment(0, 2, "B"), judgment(2, 0, "B"), judgment(1, 2, "B"), judgment(2, 1, "A")],
        ),
    ]
    kept, manifest, out = run_spec(tmp_path, rows, [{"filter": "position_swap"}])
    assert kept == ["a/step-1", "c/step-1", "d/step-1", "e/step-1"]
    assert log(out) == {"b/step-1": ("position_swap", "drop", "0 of 1 pair(s) judged in both orders prefer the chosen step")}
    step = manifest["curation"]["funnel"][0]
    assert step["report"]["verdicts"] == {"A": 7, "B": 5, "unparsed": 1, "A_share": round(7 / 12, 4)}
    assert step["stats"] == {"rows_checked": 3, "rows_unchecked": 2, "pairs_judged_both_orders": 3, "pairs_consistent": 2}
    kept, _, out = run_spec(tmp_path / "all", rows, [{"filter": "position_swap", "pairs": "all", "min_consistency": 0.7}])
    assert kept == ["a/step-1", "c/step-1", "d/step-1"]
    assert log(out)["e/step-1"][2] == "2 of 3 pair(s) judged in both orders name the same winner"


def test_position_swap_drops_a_pair_whose_both_orders_prefer_rejected(tmp_path: Path) -> None:
    """Defect: a pair was kept when both orders named the same winner, even when that winner was the rejected step."""
    rows = [
        row("a/step-1", judgments=CONSISTENT),  # chosen (0) wins as A and as B
        row("b/step-1", judgments=[judgment(0, 1, "B"), judgment(1, 0, "A")]),  # rejected (1) wins in both orders
    ]
    kept, manifest, out = run_spec(tmp_path, rows, [{"filter": "position_swap"}])
    assert kept == ["a/step-1"]
    assert log(out) == {"b/step-1": ("position_swap", "drop", "0 of 1 pair(s) judged in both orders prefer the chosen step")}
    assert manifest["curation"]["funnel"][0]["stats"]["pairs_consistent"] == 1
    # pairs: all has no label to agree with: the same winner in both orders is consistent.
    kept, _, _ = run_spec(tmp_path / "all", rows, [{"filter": "position_swap", "pairs": "all"}])
    assert kept == ["a/step-1", "b/step-1"]


def test_length_bias_reports_and_caps_chosen_excess(tmp_path: Path) -> None:
    rows = [
        row("a/step-1", chosen="c" * 100, rejected="r" * 10),
        row("b/step-1", chosen="c" * 30, rejected="r" * 10),
        row("c/step-1", chosen="c" * 10, rejected="r" * 20),
    ]
    kept, manifest, _ = run_spec(tmp_path, rows, [{"filter": "length_bias"}])
    assert kept == ["a/step-1", "b/step-1", "c/step-1"]
    report = manifest["curation"]["funnel"][0]["report"]
    assert report["chosen_chars"]["median"] == 30 and report["rejected_chars"]["median"] == 10
    assert report["chosen_longer"] == round(2 / 3, 4) and report["mean_difference"] == round(100 / 3, 1)
    kept, _, out = run_spec(tmp_path / "cap", rows, [{"filter": "length_bias", "max_chosen_excess": 50}])
    assert kept == ["b/step-1", "c/step-1"] and log(out)["a/step-1"][2] == "chosen is 90 chars longer than rejected (max 50)"


def _draw_order(ids: list[str], seed: int) -> list[str]:
    """The order label_balance keeps rows in: md5 of id + seed (computed here independently)."""
    return sorted(ids, key=lambda i: hashlib.md5(f"{i}{seed}".encode()).hexdigest())


def test_label_balance_down_samples_each_label_to_the_rarest_reproducibly(tmp_path: Path) -> None:
    finals = [f"p{i}/step-1" for i in range(5)]
    rows = [row(i) for i in finals] + [row("q0/step-1", solution_status="max_steps"), row("q1/step-1", solution_status="max_steps")]
    spec = {"filter": "label_balance", "column": "solution_status", "seed": 7}
    kept, manifest, out = run_spec(tmp_path, rows, [spec])
    expected = sorted(_draw_order(finals, 7)[:2]) + ["q0/step-1", "q1/step-1"]
    assert sorted(kept) == expected
    assert set(log(out)) == set(finals) - set(expected)
    report = manifest["curation"]["funnel"][0]["report"]
    assert report == {"labels_in": {"final_answer": 5, "max_steps": 2}, "labels_kept": {"final_answer": 2, "max_steps": 2}}
    kept_ratio, _, _ = run_spec(tmp_path / "ratio", rows, [{**spec, "max_ratio": 1.5}])
    assert len(kept_ratio) == 5
    again, _, _ = run_spec(tmp_path / "again", rows, [spec])
    assert again == kept


def test_label_balance_within_groups_and_with_required_labels(tmp_path: Path) -> None:
    rows = [
        row("g1/step-1", solution_status="final_answer"),
        row("g1/step-2", solution_status="final_answer"),
        row("g1/step-3", solution_status="max_steps"),
        row("g2/step-1", solution_status="final_answer"),  # g2 has no max_steps row: nothing to balance against
        row("g3/step-1", solution_status="rollback_limit"),
    ]
    spec = {"filter": "label_balance", "column": "solution_status", "by": ["source_id"], "labels": ["final_answer", "max_steps"], "seed": 0}
    kept, _, out = run_spec(tmp_path, rows, [spec])
    g1_final = _draw_order(["g1/step-1", "g1/step-2"], 0)[0]
    assert sorted(kept) == sorted([g1_final, "g1/step-3"])
    assert log(out)["g3/step-1"][2] == "label rollback_limit is not one of final_answer/max_steps"
    assert log(out)["g2/step-1"][2] == "label final_answer down-sampled to 0 of 1"


# --- the pipeline ------------------------------------------------------------------------------------


def test_filters_chain_into_a_funnel_and_the_curated_run_keeps_schema_metadata_and_provenance(tmp_path: Path) -> None:
    rows = [row("a/step-1"), row("b/step-1", chosen_score=0.1), row("c/step-1", final_answer="9", solution_correct=False), row("d/step-1")]
    filters = [
        {"filter": "score_gap", "min_gap": 0.5},
        {"filter": "answer_check", "name": "answers", "gold": "gold_answer", "answer": "final_answer", "correct": "solution_correct"},
    ]
    kept, manifest, out = run_spec(tmp_path, rows, filters, shards=2)
    assert kept == ["a/step-1", "d/step-1"]
    funnel = manifest["curation"]["funnel"]
    assert [(s["name"], s["rows_in"], s["dropped"], s["rows_out"]) for s in funnel] == [("score_gap", 4, 1, 3), ("answers", 3, 1, 2)]
    assert funnel[0]["examples"] == [{"id": "b/step-1", "reason": "score gap 0.1 < min 0.5"}]
    source = tmp_path / "in" / "step_prefs"
    assert manifest["curation"]["input"] == {"path": str(source.resolve()), "run_id": "handmade00000000", "fingerprint": "f" * 64, "rows": 4}
    assert manifest["builder"] == {"name": "hand", "version": "0"} and manifest["source"] == {"source": "hand"}
    assert manifest["kind"] == "step_prefs" and manifest["rows_out"] == 2 and manifest["run_id"] != "handmade00000000"
    assert json.loads((out / "manifest.json").read_text()) == manifest
    run = open_run(out, "step_prefs")  # every shard is stamped with the kind
    for shard in run.shards:
        schema = pq.read_schema(shard)
        assert schema.metadata[KIND_KEY] == b"step_prefs" and schema.metadata[SCHEMA_VERSION_KEY] == b"1"
        assert schema.remove_metadata().equals(pq.read_schema(source / "data" / shard.name).remove_metadata())
    assert not list(tmp_path.glob("**/.*tmp*")) and not (out / ".work").exists()


def test_a_filter_naming_a_missing_or_mistyped_column_fails_before_touching_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import judgeforge.curation.pipeline as pipeline

    def touched(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("data was read")

    monkeypatch.setattr(pipeline, "connect", touched)
    src = make_run(tmp_path / "in", [row("a/step-1")])
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"filters": [{"filter": "score_gap", "min_gap": 1}, {"filter": "length", "columns": ["chosen", "answer"], "min_chars": 1}]}))
    with pytest.raises(UserError) as err:
        curate(src, CurateOptions(spec=spec, out=tmp_path / "out"))
    assert "filter 'length': columns names column 'answer', which kind 'step_prefs' does not have" in err.value.message
    spec.write_text(yaml.safe_dump({"filters": [{"filter": "score_gap", "chosen": "question", "min_gap": 1}]}))
    with pytest.raises(UserError, match="chosen column 'question' of kind 'step_prefs' is string, expected number"):
        curate(src, CurateOptions(spec=spec, out=tmp_path / "out"))
    # An eval set that cannot be read fails before the filters ahead of it run, too.
    spec.write_text(yaml.safe_dump({"filters": [{"filter": "score_gap", "min_gap": 1}, {"filter": "decontaminate"}]}))
    with pytest.raises(UserError, match="source file '.*missing.jsonl' not found"):
        curate(src, CurateOptions(spec=spec, out=tmp_path / "out", eval_source=str(tmp_path / "missing.jsonl")))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"filters": [{"filter": "dedup"}]}, "filters[0]: unknown filter 'dedup'"),
        ({"filters": [{"filter": "score_gap", "min_gap": 1, "mingap": 2}]}, "filters[0] (score_gap): unknown parameter 'mingap'"),
        ({"filters": [{"filter": "length", "columns": ["chosen"]}]}, "give at least one of min_chars"),
        ({"filters": [{"filter": "score_gap", "min_gap": 1}, {"filter": "score_gap", "min_gap": 2}]}, "a second filter named 'score_gap'"),
        ({"kind": "ift", "filters": [{"filter": "score_gap", "min_gap": 1}]}, "is a spec for kind 'ift', the run holds 'step_prefs'"),
    ],
)
def test_bad_specs_fail_with_one_line_from_the_cli(tmp_path: Path, spec: dict[str, Any], message: str) -> None:
    src = make_run(tmp_path / "in", [row("a/step-1")])
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(main, ["curate", str(src), "--spec", str(path)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "in" / "step_prefs-curated").exists()


def test_a_curated_run_never_overwrites_its_input(tmp_path: Path) -> None:
    src = make_run(tmp_path / "in", [row("a/step-1"), row("b/step-1", chosen_score=0.0)])
    before = {p: p.stat().st_mtime_ns for p in src.rglob("*")}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"filters": [{"filter": "score_gap", "min_gap": 1}]}))
    for out in (src, src / "curated", src.parent):
        with pytest.raises(UserError, match="overlaps the input run"):
            curate(src, CurateOptions(spec=spec, out=out))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="exists and is not a curated run"):
        curate(src, CurateOptions(spec=spec, out=other))
    assert {p: p.stat().st_mtime_ns for p in src.rglob("*")} == before and (other / "notes.txt").read_text() == "mine"
    # The default output sits beside the input; curating again replaces the earlier curated run.
    _, first = curate(src, CurateOptions(spec=spec))
    assert first == tmp_path / "in" / "step_prefs-curated"
    _, second = curate(src, CurateOptions(spec=spec))
    assert second == first and [r["id"] for r in pq.read_table(first / "data" / "shard-00000.parquet").to_pylist()] == ["a/step-1"]
    assert {p: p.stat().st_mtime_ns for p in src.rglob("*")} == before


def test_inspect_prints_stats_and_runs_sql_over_the_kind_table(tmp_path: Path) -> None:
    src = make_run(tmp_path / "in", [row("a/step-1"), row("b/step-2", step_index=2), row("c/step-2", step_index=2)], shards=2)
    result = CliRunner().invoke(main, ["inspect", str(src), "--samples", "1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "step_prefs" in result.output and "rows" in result.output and "meta.builder" in result.output
    assert "1/1.67/2 (min/mean/max)" in result.output  # step_index
    assert "a/step-1" in result.output  # the sample row
    result = CliRunner().invoke(
        main, ["inspect", str(src), "--sql", "SELECT step_index, count(*) AS n FROM step_prefs GROUP BY 1 ORDER BY 1"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "│" in line]
    assert [line.split("│")[1:3] for line in lines] == [[" 1          ", " 1 "], [" 2          ", " 2 "]]
    bad = CliRunner().invoke(main, ["inspect", str(src), "--sql", "SELECT nope FROM step_prefs"])
    assert bad.exit_code == 2 and bad.output.startswith("Error: --sql: Binder Error")


# --- the vectorised text and MinHash helpers ---------------------------------------------------------


def test_word_hashing_matches_a_plain_python_tokenisation() -> None:
    import re

    import pyarrow as pa

    from judgeforge.curation.ngrams import normalise, word_hashes

    texts = ["Step 1: 3 + 4 = 7.", "a ,b", "  x\t\ty\n", "naïve café—déjà vu", "snake_case and  CAPS", "", None, "...", "é ü!"]
    words, counts = word_hashes(pa.array(texts, pa.string()))
    expected = [re.sub(r"\W+", " ", (t or "").lower()).split() for t in texts]
    assert counts.tolist() == [len(w) for w in expected]
    vocabulary = {w for ws in expected for w in ws}
    by_word = {}
    for w, h in zip([w for ws in expected for w in ws], words.tolist(), strict=True):
        assert by_word.setdefault(w, h) == h  # one word, one hash
    assert len(set(by_word.values())) == len(vocabulary)
    assert normalise(pa.array(["  A\t\tb  c\n", "x y"])).to_list() == ["a b c", "x y"]


def test_minhash_estimates_jaccard_without_bias_and_components_follow_chains() -> None:
    import random

    import numpy as np
    import pyarrow as pa

    from judgeforge.curation.minhash import MinHasher, components
    from judgeforge.curation.ngrams import text_ngrams

    rng = random.Random(0)
    texts, truth = [], []
    for _ in range(300):
        base = [f"w{rng.randrange(10**6)}" for _ in range(80)]
        other = list(base)
        for pos in rng.sample(range(80), rng.randrange(0, 12)):
            other[pos] = f"x{rng.randrange(10**6)}"
        a = {tuple(base[i : i + 5]) for i in range(76)}
        b = {tuple(other[i : i + 5]) for i in range(76)}
        truth.append(len(a & b) / len(a | b))
        texts += [" ".join(base), " ".join(other)]
    grams, counts = text_ngrams(pa.array(texts), 5, short_texts=True)
    sig = MinHasher().signatures(grams, counts)
    estimate = (sig[0::2] == sig[1::2]).mean(axis=1)
    error = estimate - np.array(truth)
    assert abs(error.mean()) < 0.01 and np.abs(error).mean() < 0.05
    assert components(7, np.array([1, 2, 3, 6]), np.array([2, 5, 4, 5])).tolist() == [0, 1, 1, 3, 3, 1, 1]


def test_curate_and_inspect_help_document_every_option() -> None:
    from judgeforge.curation.filters import FILTERS

    for name in ("curate", "inspect"):
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        for param in main.commands[name].params:  # type: ignore[attr-defined]
            if isinstance(param, click.Option):
                assert param.opts[0] in result.output and param.help, param.opts[0]
    curate_help = CliRunner().invoke(main, ["curate", "--help"]).output
    assert all(f in curate_help for f in FILTERS)
