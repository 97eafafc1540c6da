"""Growing a run: a larger ``--limit`` (or rows added at the end of a file) extends a run when nothing else changed.

The executor's logic on the example family's builder and the scripted engine: the old shards are kept
byte for byte, the new inputs go into new chunks (a partial last chunk stays as it was), the manifest
records the growth, and the grown run holds the rows a run built at that size at once holds; ``--shard``
processes grow it as one process does; any other change is refused with every differing option (old →
new) and the ``--cache`` way to reuse the old run's engine calls. reasoning-gym sources keep their first
problems as ``--limit`` grows. On the embedded model: a step-prefs run grown from 1 to 3 problems holds
exactly the rows of the 3-problem session run, and a run refused for another ``--chunk-size`` is rebuilt
in a new ``--out`` from the old run's cache without one engine computation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.console import make_console
from judgeforge.engines import EngineSpec
from judgeforge.errors import UserError
from judgeforge.executors.local import RunOptions, ShardSpec, chunk_bounds, execute
from judgeforge.runs import Growth, Manifest, read_manifest
from judgeforge.sources import SourceConfig, load_problems
from tests.example_family.builder import ShortAnswersBuilder, ShortAnswersConfig
from tests.helpers import STEP_PREFS_TINY, read_rows
from tests.scripted import ScriptedEngine

QUIET = make_console(stderr=True, quiet=True)


def problems_file(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"question": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n" for i in range(n)))
    return path


def answer(request: Any, params: Any, k: int) -> str:
    number = request.messages[-1]["content"].split("What is ")[1].split(" ")[0]
    return f"Step 1: The answer is {2 * int(number)}."


def build(
    out: Path, source: Path, limit: int | None, chunk_size: int = 2, builder: type[ShortAnswersBuilder] = ShortAnswersBuilder, **options: Any
) -> Manifest:
    """One build of the example family on the scripted engine (the executor's whole plan/resume/grow path)."""
    shard = options.pop("shard", ShardSpec())
    engine = options.pop("engine", None) or ScriptedEngine(answer)
    cfg = SourceConfig(source=str(source), limit=limit)
    opts = RunOptions(out=out, chunk_size=chunk_size, shard=shard, engines={"policy": EngineSpec()}, **options)
    return execute(builder, ShortAnswersConfig(), cfg, builder.load_inputs(cfg), {"policy": engine}, opts, console=QUIET)


def shard_ids(run: Path) -> list[list[str]]:
    import pyarrow.parquet as pq

    return [pq.read_table(p).column("source_id").to_pylist() for p in sorted((run / "data").glob("shard-*.parquet"))]


def test_chunk_bounds_keep_a_grown_run_s_chunks() -> None:
    assert chunk_bounds(5, 2) == [(0, 2), (2, 4), (4, 5)]
    grown = [Growth(inputs_before=3, inputs_after=6, chunks_before=2, at="t")]
    assert chunk_bounds(6, 2, grown) == [(0, 2), (2, 3), (3, 5), (5, 6)]
    assert chunk_bounds(4, 2, [Growth(inputs_before=2, inputs_after=4, chunks_before=1, at="t")]) == chunk_bounds(4, 2)  # a full last chunk: no seam
    twice = [*grown, Growth(inputs_before=6, inputs_after=7, chunks_before=4, at="t")]
    assert chunk_bounds(7, 2, twice) == [(0, 2), (2, 3), (3, 5), (5, 6), (6, 7)]


def test_a_larger_limit_grows_the_run_keeping_its_shards(tmp_path: Path) -> None:
    source = problems_file(tmp_path / "p.jsonl", 6)
    run = tmp_path / "out" / "short_answers"
    first = build(tmp_path / "out", source, 3)
    before = {p.name: p.stat().st_mtime_ns for p in (run / "data").glob("*.parquet")}
    grown = build(tmp_path / "out", source, 5)
    after = {p.name: p.stat().st_mtime_ns for p in (run / "data").glob("*.parquet")}
    assert {k: after[k] for k in before} == before  # the old shards, the partial one too, untouched
    assert shard_ids(run) == [["p:0", "p:1"], ["p:2"], ["p:3", "p:4"]]
    assert grown.status == "complete" and grown.rows_in == 5 and grown.chunks and grown.chunks.built_this_run == 1
    assert [g.model_dump(exclude={"at"}) for g in grown.growth] == [{"inputs_before": 3, "inputs_after": 5, "chunks_before": 2}]
    assert grown.run_id == first.run_id and grown.fingerprint != first.fingerprint
    fresh = build(tmp_path / "fresh", source, 5)
    assert read_rows(run) == read_rows(tmp_path / "fresh" / "short_answers")  # the same rows, in other chunks
    assert fresh.run_id == grown.run_id and fresh.fingerprint == grown.fingerprint
    # The grown run resumes as itself, and grows again.
    again = build(tmp_path / "out", source, 5)
    assert again.chunks and again.chunks.built_this_run == 0 and again.growth == grown.growth
    build(tmp_path / "out", source, None)
    assert shard_ids(run)[-1] == ["p:5"] and read_manifest(run / "manifest.json").rows_in == 6  # type: ignore[union-attr]


def test_rows_added_at_the_end_of_a_file_grow_the_run(tmp_path: Path) -> None:
    source = problems_file(tmp_path / "p.jsonl", 2)
    build(tmp_path / "out", source, None)
    problems_file(source, 4)
    grown = build(tmp_path / "out", source, None)
    assert grown.rows_in == 4 and grown.growth[0].inputs_before == 2


def test_a_sharded_growth_writes_the_rows_one_process_writes(tmp_path: Path) -> None:
    source = problems_file(tmp_path / "p.jsonl", 5)
    build(tmp_path / "out", source, 1)
    parts = [build(tmp_path / "out", source, 5, shard=ShardSpec(index=i, count=2)) for i in range(2)]
    assert [p.status for p in parts] == ["partial", "complete"]
    run = tmp_path / "out" / "short_answers"
    assert shard_ids(run) == [["p:0"], ["p:1", "p:2"], ["p:3", "p:4"]]
    manifest = read_manifest(run / "manifest.json")
    assert manifest and manifest.status == "complete" and manifest.rows_in == 5 and manifest.growth[0].inputs_before == 1
    build(tmp_path / "fresh", source, 5)
    assert read_rows(run) == read_rows(tmp_path / "fresh" / "short_answers")


def refusal(excinfo: pytest.ExceptionInfo[UserError]) -> str:
    return str(excinfo.value.message)


def test_any_other_change_is_refused_naming_each_option_and_the_cache(tmp_path: Path) -> None:
    source = problems_file(tmp_path / "p.jsonl", 4)
    build(tmp_path / "out", source, 3)
    run = tmp_path / "out" / "short_answers"
    with pytest.raises(UserError) as changed:
        build(tmp_path / "out", source, 4, chunk_size=3, seed=7)
    text = refusal(changed)
    assert "built with other options (recorded → now)" in text
    assert "  --chunk-size: 2 → 3" in text and "  --seed: 0 → 7" in text and "--limit" not in text
    assert f"--cache {run / 'cache.sqlite'}" in text
    with pytest.raises(UserError) as fewer:
        build(tmp_path / "out", source, 2)
    assert "built from 3 inputs and the source now gives 2; give --limit 3" in refusal(fewer)
    edited = source.read_text().replace("What is 1 + 1?", "What is 1 + 2?")
    source.write_text(edited)
    with pytest.raises(UserError) as rewritten:
        build(tmp_path / "out", source, 4)
    assert "the first 3 inputs the source gives now are not the 3 the run was built from" in refusal(rewritten)


def test_a_builder_whose_rows_span_its_chunk_grows_only_from_a_full_chunk(tmp_path: Path) -> None:
    class Balanced(ShortAnswersBuilder):
        chunk_scoped = "it balances answers over each chunk"

    source = problems_file(tmp_path / "p.jsonl", 5)
    build(tmp_path / "odd", source, 3, builder=Balanced)
    with pytest.raises(UserError, match="draws each chunk's rows from all of the chunk's inputs .it balances answers over each chunk"):
        build(tmp_path / "odd", source, 5, builder=Balanced)
    build(tmp_path / "even", source, 4, builder=Balanced)
    assert build(tmp_path / "even", source, 5, builder=Balanced).rows_in == 5


@pytest.mark.parametrize("task", ["gsm_symbolic", "acre", "list_functions"])
def test_a_gym_source_keeps_its_first_problems_as_the_limit_grows(task: str) -> None:
    """reasoning-gym draws acre and list_functions for a dataset size: judgeforge draws every task from at least 1000."""
    small, large = (load_problems(SourceConfig(source=f"gym:{task}", limit=n)) for n in (2, 3))
    assert small == large[:2]


@pytest.mark.slow
def test_a_run_grown_from_one_to_three_problems_holds_the_rows_of_a_three_problem_run(step_prefs_run: Path, tmp_path: Path) -> None:
    args = ["build", "step-prefs", *STEP_PREFS_TINY, "--chunk-size", "2", "--out", str(tmp_path)]
    assert CliRunner().invoke(main, [*args, "--limit", "1"]).exit_code == 0
    first = {p.name: p.read_bytes() for p in (tmp_path / "step_prefs/data").glob("*.parquet")}
    grown = CliRunner().invoke(main, [*args, "--limit", "3"])
    assert grown.exit_code == 0, grown.output
    assert "3 (grown from 1)" in grown.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "step_prefs/data").glob("*.parquet") if p.name in first} == first
    # Compared as sets (read_rows sorts by id): the grown run chunks its problems [0] [1, 2], the session run [0, 1] [2].
    assert read_rows(tmp_path / "step_prefs") == read_rows(step_prefs_run)
    manifest = read_manifest(tmp_path / "step_prefs/manifest.json")
    assert manifest and manifest.status == "complete" and manifest.growth[0].inputs_before == 1 and manifest.chunks and manifest.chunks.total == 2


@pytest.mark.slow
def test_another_chunk_size_is_refused_and_rebuilt_from_the_old_cache_without_computing(step_prefs_run: Path, tmp_path: Path) -> None:
    args = ["build", "step-prefs", *STEP_PREFS_TINY, "--limit", "3"]
    refused = CliRunner().invoke(main, [*args, "--chunk-size", "3", "--out", str(step_prefs_run.parent)])
    assert refused.exit_code == 2 and "  --chunk-size: 2 → 3" in refused.output
    cache = step_prefs_run / "cache.sqlite"
    assert f"--cache {cache}" in refused.output
    rebuilt = CliRunner().invoke(main, [*args, "--chunk-size", "3", "--out", str(tmp_path), "--cache", str(cache)])
    assert rebuilt.exit_code == 0, rebuilt.output
    manifest = read_manifest(tmp_path / "step_prefs/manifest.json")
    assert manifest and manifest.calls and all(c.requests == c.cache_hits and c.prompt_tokens == 0 for c in manifest.calls.values())
    # The same rows but for their run id, which names the recipe (--chunk-size included).
    assert without_run_id(read_rows(tmp_path / "step_prefs")) == without_run_id(read_rows(step_prefs_run))


def without_run_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "meta": {k: v for k, v in row["meta"].items() if k != "run_id"}} for row in rows]
