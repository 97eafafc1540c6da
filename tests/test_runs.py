"""The run layer: shard specs, secret redaction, atomic shards with stats, temp files of other writers,
foreign-file rejection, the typed manifest, and the one ``open_run`` every reader goes through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from judgeforge.errors import UserError
from judgeforge.executors.local import ShardSpec, inputs_fingerprint
from judgeforge.files import temp_path, write_json, writer_id
from judgeforge.runs import Manifest, RunDir, open_run, read_manifest, redact
from judgeforge.schemas.base import rows_to_table
from judgeforge.schemas.step_prefs import StepPrefsRow
from judgeforge.sources import Problem
from tests.test_cards import step_prefs_rows


def test_shard_spec() -> None:
    assert ShardSpec.parse("1/4") == ShardSpec(index=1, count=4)
    for bad in ("3/2", "2/2", "0/0", "a/b", "1"):
        with pytest.raises(UserError, match="--shard"):
            ShardSpec.parse(bad)


def test_redact_hides_secrets_and_url_credentials() -> None:
    argv = ["judgeforge", "--api-key", "sk-123", "--hf-token=hf_abc", "--base-url", "http://user:pw@host:8000/v1", "--max-step-tokens", "24"]
    assert redact(argv) == ["judgeforge", "--api-key", "***", "--hf-token=***", "--base-url", "http://***@host:8000/v1", "--max-step-tokens", "24"]


def _rows(n: int) -> list[StepPrefsRow]:
    return step_prefs_rows(["max_steps"] * n)


def test_chunks_are_written_atomically_with_their_stats(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "step_prefs", "step_prefs")
    run.write_chunk(0, rows_to_table(StepPrefsRow, _rows(2)), {"rows": 2, "builder": {"pairs": 2}})
    assert run.done(3) == {0}
    assert run.chunk_stats(0) == {"rows": 2, "builder": {"pairs": 2}}
    assert [r["id"] for r in pq.read_table(run.chunk_path(0)).to_pylist()] == ["p0/step-1", "p1/step-1"]
    assert not list(run.data.glob(".*"))
    opened = open_run(tmp_path / "step_prefs", "step_prefs")
    assert opened.kind.name == "step_prefs" and opened.shards == (run.chunk_path(0),) and opened.num_rows() == 2 and opened.manifest is None


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def test_opening_a_run_dir_removes_only_dead_writers_temp_files(tmp_path: Path) -> None:
    """Several processes (``--shard i/N``) write into one run dir: none may delete another's half-written shard."""
    run = RunDir(tmp_path / "step_prefs", "step_prefs")
    alive = temp_path(run.chunk_path(1))  # this process, still writing
    alive.write_bytes(b"being written")
    dead = alive.with_name(alive.name.rsplit("-", 1)[0] + f"-{_dead_pid()}")  # a killed writer on this machine
    dead.write_bytes(b"half a file")
    elsewhere = run.data / f".shard-00002.parquet.tmp-another-host-{os.getpid()}"  # a writer on another machine
    elsewhere.write_bytes(b"being written there")
    RunDir(tmp_path / "step_prefs", "step_prefs")
    assert sorted(p.name for p in run.data.glob(".*")) == sorted([alive.name, elsewhere.name])


def test_the_finished_manifest_is_claimed_by_one_writer_and_a_dead_writer_s_claim_is_taken_over(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "step_prefs", "step_prefs")
    fingerprint = "f" * 64
    assert run.claim_final_manifest(fingerprint)
    assert not run.claim_final_manifest(fingerprint)  # held by a live writer (this process)
    (claim,) = run.root.glob(".manifest-*.claim")
    claim.write_text(f"{writer_id().rsplit('-', 1)[0]}-{_dead_pid()}")  # its writer was killed before writing the manifest
    assert run.claim_final_manifest(fingerprint)
    claim.write_text(f"another-host-{_dead_pid()}")  # a writer elsewhere is never presumed gone
    assert not run.claim_final_manifest(fingerprint)
    run.write_manifest(Manifest(fingerprint=fingerprint, status="complete"))
    claim.unlink()
    assert not run.claim_final_manifest(fingerprint)  # already written by whoever completed the run


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
        StepPrefsRow(**{**_rows(1)[0].model_dump(), "step_index": "not a number"})
    with pytest.raises(ValueError):
        StepPrefsRow(**{**_rows(1)[0].model_dump(), "unexpected": 1})


def test_inputs_fingerprint_tracks_content() -> None:
    a = [Problem(id="1", question="q", answer="1")]
    assert inputs_fingerprint(a) == inputs_fingerprint([Problem(id="1", question="q", answer="1")])
    assert inputs_fingerprint(a) != inputs_fingerprint([Problem(id="1", question="q", answer="2")])


def test_manifest_reads_old_and_unknown_keys_and_writes_back_what_it_read(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    data = {"kind": "step_prefs", "builder": {"name": "x", "version": "1"}, "rows_out": 3, "from_the_future": {"a": 1}, "builder_stats": {"pairs": 2}}
    write_json(path, data)
    manifest = read_manifest(path)
    assert manifest is not None and manifest.builder is not None and manifest.builder.name == "x" and manifest.rows_out == 3
    assert manifest.dump() == data  # nothing added, nothing lost, counters stay integers
    assert manifest.provenance() == {"builder": {"name": "x", "version": "1"}, "from_the_future": {"a": 1}, "builder_stats": {"pairs": 2}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[1]", "not a judgeforge manifest"),
        (json.dumps({"rows_out": "many"}), "field 'rows_out'"),
        (json.dumps({"status": "done"}), "field 'status'"),
    ],
)
def test_a_bad_manifest_is_a_one_line_error_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(UserError, match=message) as caught:
        read_manifest(tmp_path / "manifest.json")
    assert str(tmp_path / "manifest.json") in str(caught.value) and "\n" not in str(caught.value)


def test_open_run_checks_kind_schema_and_manifest(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "step_prefs", "step_prefs")
    run.write_chunk(0, rows_to_table(StepPrefsRow, _rows(1)), {"rows": 1})
    with pytest.raises(UserError, match="holds 'step_prefs' rows, expected 'step_labels'"):
        open_run(run.root, "step_labels")
    run.write_manifest(Manifest(kind="ift", status="complete"))
    with pytest.raises(UserError, match="says kind 'ift', but the shards hold 'step_prefs' rows"):
        open_run(run.root)
    run.write_manifest(Manifest(kind="step_prefs", status="complete", rows_out=1))
    opened = open_run(run.root)
    assert opened.manifest == Manifest(kind="step_prefs", status="complete", rows_out=1) and opened.require_manifest().rows_out == 1
    old = pa.table({"id": ["a"]}).replace_schema_metadata({b"judgeforge.kind": b"step_prefs", b"judgeforge.schema_version": b"0"})
    pq.write_table(old, run.data / "shard-00001.parquet")
    with pytest.raises(UserError, match="schema version '0' of kind 'step_prefs'.*rebuild the run"):
        open_run(run.root)
    (run.data / "shard-00001.parquet").unlink()
    unknown = pa.table({"id": ["a"]}).replace_schema_metadata({b"judgeforge.kind": b"no_such_kind"})
    pq.write_table(unknown, tmp_path / "other.parquet")
    (tmp_path / "x" / "data").mkdir(parents=True)
    (tmp_path / "other.parquet").rename(tmp_path / "x" / "data" / "shard-00000.parquet")
    with pytest.raises(UserError, match="unknown kind 'no_such_kind'"):
        open_run(tmp_path / "x")
