"""Run-dir plumbing: shard specs, secret redaction, atomic shards with stats, foreign-file rejection."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from judgeforge.errors import UserError
from judgeforge.runs import RunDir, ShardSpec, inputs_fingerprint, open_run, redact
from judgeforge.sources import Problem
from judgeforge.schemas.base import RowMeta, rows_to_table
from judgeforge.schemas.step_prefs import StepPrefsRow


def test_shard_spec() -> None:
    assert ShardSpec.parse("1/4") == ShardSpec(index=1, count=4)
    for bad in ("3/2", "2/2", "0/0", "a/b", "1"):
        with pytest.raises(UserError, match="--shard"):
            ShardSpec.parse(bad)


def test_redact_hides_secrets_and_url_credentials() -> None:
    argv = ["judgeforge", "--api-key", "sk-123", "--hf-token=hf_abc", "--base-url", "http://user:pw@host:8000/v1", "--max-step-tokens", "24"]
    assert redact(argv) == ["judgeforge", "--api-key", "***", "--hf-token=***", "--base-url", "http://***@host:8000/v1", "--max-step-tokens", "24"]


def _row(i: int) -> StepPrefsRow:
    return StepPrefsRow(
        id=f"p{i}/step-1", source_id=f"p{i}", meta=RowMeta(builder="step-prefs", builder_version="0.1.0", run_id="r", model="m"),
        question="q", previous_steps=[], step_index=1, chosen="a", rejected="b", chosen_is_final=False, rejected_is_final=True,
        chosen_score=2.0, rejected_score=0.0, candidates=["a", "b"], candidate_scores=[2.0, 0.0], judgments=[], judge_unparsable=0,
        gold_answer="1", final_answer=None, solution_correct=None, solution_status="max_steps",
    )


def test_chunks_are_written_atomically_with_their_stats(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "step_prefs", "step_prefs")
    run.write_chunk(0, rows_to_table(StepPrefsRow, [_row(0), _row(1)]), {"rows": 2, "builder": {"pairs": 2}})
    assert run.done(3) == {0}
    assert run.chunk_stats(0) == {"rows": 2, "builder": {"pairs": 2}}
    assert [r["id"] for r in pq.read_table(run.chunk_path(0)).to_pylist()] == ["p0/step-1", "p1/step-1"]
    assert not list(run.data.glob(".*"))
    (run.data / ".shard-00001.parquet.tmp-999").write_bytes(b"half a file")  # a killed writer's leftover
    RunDir(tmp_path / "step_prefs", "step_prefs")
    assert not list(run.data.glob(".*"))
    open_run(tmp_path / "step_prefs", "step_prefs")


def test_readers_reject_foreign_files(tmp_path: Path) -> None:
    data = tmp_path / "run" / "data"
    data.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), data / "shard-00000.parquet")
    with pytest.raises(UserError, match="not a judgeforge shard"):
        open_run(tmp_path / "run", "step_prefs")
    with pytest.raises(UserError, match="has no data"):
        open_run(tmp_path / "nothing", "step_prefs")


def test_writers_validate_rows() -> None:
    with pytest.raises(ValueError):
        StepPrefsRow(**{**_row(0).model_dump(), "step_index": "not a number"})
    with pytest.raises(ValueError):
        StepPrefsRow(**{**_row(0).model_dump(), "unexpected": 1})


def test_inputs_fingerprint_tracks_content() -> None:
    a = [Problem(id="1", question="q", answer="1")]
    assert inputs_fingerprint(a) == inputs_fingerprint([Problem(id="1", question="q", answer="1")])
    assert inputs_fingerprint(a) != inputs_fingerprint([Problem(id="1", question="q", answer="2")])
