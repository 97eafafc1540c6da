"""``judgeforge curate``: run a YAML spec of filters over a built run and write a new, curated run.

The input run is never modified. Its shards are opened by DuckDB as one view (``src``) with a stable
row number ``_rid`` (shard index × 2^32 + row in shard); filters run in spec order, each over the rows
the previous ones left (``cur``), and record what they remove in a ``drops`` table — ids and reasons,
not rows. Only then are the curated shards written, one per input shard, by pyarrow: the kind's Arrow
schema and Parquet metadata (kind, schema version) survive, so every reader of the kind accepts the
curated run. DuckDB's own ``COPY`` would drop that metadata.

The output goes to a temporary sibling directory that is renamed into place at the end: a failed or
killed curation leaves nothing half-written. ``manifest.json`` links the input run (path, run id,
fingerprint), copies its provenance (builder, config, source, models, seed), and records the spec and
the funnel: rows in and out per filter, its counters and report, and a few example drops with their
reasons. ``curation_log.parquet`` lists every dropped or flagged row: id, filter, action, reason.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from judgeforge import __version__
from judgeforge.builders import diagnose_run
from judgeforge.builders.base import too_few
from judgeforge.curation.filters import FILTERS, Decontaminate, Filter, Stage, lit, one_row
from judgeforge.errors import UserError
from judgeforge.files import clear_stale, replace_dir, temp_path, utc_now
from judgeforge.runs import (
    MANIFEST,
    TEST_SPLIT,
    Curation,
    FunnelStep,
    InputLink,
    Manifest,
    Run,
    RunDir,
    SplitRef,
    open_run,
    read_manifest,
    redact,
    reproduce_commands,
)
from judgeforge.schemas.registry import get_kind

LOG_NAME = "curation_log.parquet"


def connect(shards: list[Path], memory_limit: str = "2GB", temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the view ``src``: every row of ``shards`` plus its ``_rid``."""
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = {lit(memory_limit)}")
    except duckdb.Error as exc:
        raise UserError(f"--memory-limit '{memory_limit}': {exc}") from exc
    if temp_dir is not None:
        con.execute(f"SET temp_directory = {lit(str(temp_dir))}")
    files = ", ".join(lit(str(s)) for s in shards)
    con.execute(f"CREATE VIEW src AS SELECT (file_index::BIGINT << 32) + file_row_number AS _rid, * FROM read_parquet([{files}])")
    return con


# --- the spec --------------------------------------------------------------------------------------


class FilterEntry(BaseModel):
    """One entry of a spec: which filter, its funnel name, drop or flag, and its parameters."""

    model_config = ConfigDict(extra="allow")

    filter: str = Field(description="filter type")
    name: str | None = Field(None, description="name in the funnel (default: the filter type)")
    action: Literal["drop", "flag"] = Field("drop", description="drop matching rows, or only flag them in the log")
    hint: str | None = Field(None, description="what to change when this filter removes most rows (shown instead of the filter's own advice)")


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str | None = Field(None, description="the kind this spec is for (checked against the run)")
    filters: list[FilterEntry] = Field(min_length=1)


def shipped_specs() -> Path:
    return Path(str(resources.files("judgeforge.curation") / "specs"))


def default_spec_path(kind: str) -> Path:
    """The spec a kind declares as its default: a shipped spec's file name, or a path of its own."""
    name = get_kind(kind).default_spec
    path = Path(name) if Path(name).is_absolute() else shipped_specs() / name
    if not path.is_file():
        raise UserError(f"kind '{kind}' declares the default curation spec '{name}', which does not exist; give one with --spec")
    return path


def resolve_spec(spec: Path) -> Path:
    """``--spec``: a YAML file, or the name of a spec shipped with judgeforge (``step_prefs_weak_judge``)."""
    if spec.is_file():
        return spec
    shipped = shipped_specs() / f"{spec.name.removesuffix('.yaml')}.yaml"
    if spec.parent == Path(".") and shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in shipped_specs().glob("*.yaml")))
    raise UserError(f"spec '{spec}' is neither a file nor a shipped spec (shipped: {names})")


@dataclass
class Step:
    filter: Filter
    action: str
    hint: str | None = None


def load_spec(path: Path, kind: str) -> tuple[dict[str, Any], list[Step]]:
    """Parse and check a spec file; returns its data and the filters, in order. Touches no run data."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read spec '{path}': {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{where}: invalid YAML") from exc
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{path}: {_first_error(exc)}") from exc
    if spec.kind is not None and spec.kind != kind:
        raise UserError(f"{path}: is a spec for kind '{spec.kind}', the run holds '{kind}'")
    steps, names = [], set()
    for i, entry in enumerate(spec.filters):
        cls = FILTERS.get(entry.filter)
        if cls is None:
            raise UserError(f"{path}: filters[{i}]: unknown filter '{entry.filter}' (known: {', '.join(FILTERS)})")
        name = entry.name or entry.filter
        if name in names:
            raise UserError(f"{path}: filters[{i}]: a second filter named '{name}'; give it another 'name:'")
        names.add(name)
        try:
            params = cls.Params.model_validate(entry.model_extra or {})
        except ValidationError as exc:
            raise UserError(f"{path}: filters[{i}] ({name}): {_first_error(exc)}") from exc
        steps.append(Step(cls(name, params), entry.action, entry.hint))
    return spec.model_dump(mode="json", exclude_none=True), steps


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown parameter '{where}'"
    return f"{where}: {err['msg']}" if where else err["msg"]


# --- output placement ------------------------------------------------------------------------------


def default_out(run: Run) -> Path:
    return run.root.parent / f"{run.root.name}-curated"


def _check_out(run: Run, out: Path) -> None:
    src, dst = run.root.resolve(), out.resolve()
    if dst == src or src in dst.parents or dst in src.parents:
        raise UserError(f"--out '{out}' overlaps the input run '{run.root}'; a curated run never overwrites its input")
    if dst.exists():
        if not dst.is_dir() or (any(dst.iterdir()) and not _is_curated(dst)):
            raise UserError(f"--out '{out}' exists and is not a curated run; choose another --out")


def _is_curated(folder: Path) -> bool:
    try:
        manifest = read_manifest(folder / MANIFEST)
    except UserError:
        return False
    return manifest is not None and manifest.curation is not None


# --- running ---------------------------------------------------------------------------------------


class CurateOptions(BaseModel):
    spec: Path | None = None
    out: Path | None = None
    eval_source: str | None = None
    memory_limit: str = "2GB"
    examples: int = 3
    batch_rows: int = 20_000
    command: list[str] = []


def _steps(run: Run, opts: CurateOptions) -> tuple[Path, dict[str, Any], list[Step]]:
    """The spec's filters for ``run``, checked against its schema and prepared (fresh ones per run: filters keep counters)."""
    kind = run.kind.name
    spec_path = resolve_spec(opts.spec) if opts.spec else default_spec_path(kind)
    spec, steps = load_spec(spec_path, kind)
    if opts.eval_source is not None:
        decon = [s for s in steps if isinstance(s.filter, Decontaminate)]
        if not decon:
            raise UserError(f"--eval given but spec '{spec_path}' has no decontaminate filter")
        for step in decon:
            step.filter.params = Decontaminate.Params.model_validate({**step.filter.params.model_dump(exclude={"eval"}), "eval": {"source": opts.eval_source}})
        for entry in spec["filters"]:
            if entry["filter"] == Decontaminate.type_name:
                entry["eval"] = {"source": opts.eval_source}
    for step in steps:
        step.filter.validate(run.schema, kind)
    return spec_path, spec, steps


def curate(run_dir: Path, opts: CurateOptions, console: Console | None = None) -> tuple[Manifest, Path]:
    """Curate ``run_dir`` into a new run; returns its manifest and where it went.

    A run built with a held-out test split (``RUN/test``) has it curated too, by the same spec, on its own
    (nothing a filter counts or balances crosses the splits), into the curated run's ``test/``.
    """
    console = console or Console(stderr=True)
    started, clock = utc_now(), time.perf_counter()
    run = open_run(run_dir)
    if run.manifest is None:
        raise UserError(f"run dir '{run_dir}' has no manifest.json to link the curated run to")
    source = run.manifest
    test = run.test_split()
    spec_path, spec, steps = _steps(run, opts)
    out = opts.out or default_out(run)
    _check_out(run, out)
    for step in steps:
        step.filter.prepare()
    out.parent.mkdir(parents=True, exist_ok=True)
    clear_stale(out.parent, out.name)
    tmp = temp_path(out)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        funnel, rows_in, rows_out, shards, diagnosis = _filter_into(run, steps, opts, tmp, console)
        manifest = _manifest(run, source, spec, spec_path, opts, funnel, rows_in, rows_out, shards, started, time.perf_counter() - clock)
        assert manifest.curation is not None
        manifest.curation.diagnosis = diagnosis
        if test is not None:
            _, _, test_steps = _steps(test, opts)
            for step in test_steps:
                step.filter.prepare()
            console.print(f"[dim]the held-out test split ({test.root}), by the same spec:[/]")
            t_funnel, t_in, t_out, t_shards, t_diagnosis = _filter_into(test, test_steps, opts, tmp / TEST_SPLIT, console)
            t_source = test.require_manifest()
            t_manifest = _manifest(test, t_source, spec, spec_path, opts, t_funnel, t_in, t_out, t_shards, started, time.perf_counter() - clock)
            assert t_manifest.curation is not None
            t_manifest.curation.diagnosis = t_diagnosis
            given = t_source.splits.get(TEST_SPLIT)
            t_split = SplitRef(inputs=given.inputs if given else t_in, rows=t_out, path=TEST_SPLIT, fraction=given.fraction if given else None)
            t_manifest.split, t_manifest.splits = TEST_SPLIT, {TEST_SPLIT: t_split}
            train = source.splits.get("train")
            manifest.splits = {"train": SplitRef(inputs=train.inputs if train else rows_in, rows=rows_out), TEST_SPLIT: t_split}
            RunDir(tmp / TEST_SPLIT, run.kind.name).write_manifest(t_manifest)
        RunDir(tmp, run.kind.name).write_manifest(manifest)
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest, out


def _filter_into(
    run: Run, steps: list[Step], opts: CurateOptions, target_root: Path, console: Console
) -> tuple[list[FunnelStep], int, int, list[str], list[str]]:
    """Run the filters over ``run`` and write its kept rows into ``target_root`` (shards and the log of drops); the
    funnel, rows in and out, the shards written and, when too few rows are kept, why (:func:`diagnose`)."""
    work = target_root / ".work"
    work.mkdir(parents=True)
    con = connect(list(run.shards), opts.memory_limit, work)
    try:
        funnel, rows_in, rows_out = _run_filters(con, run, steps, opts, console)
        diagnosis = diagnose(run, steps, funnel, rows_in, rows_out)
        dropped = con.sql("SELECT _rid FROM drops WHERE action = 'drop' ORDER BY _rid").fetchnumpy()["_rid"]
        shards = write_shards(run, RunDir(target_root, run.kind.name), np.asarray(dropped, dtype=np.int64))
        con.execute(
            f"COPY (SELECT s.id, d.filter, d.action, d.reason FROM drops d JOIN src s USING (_rid) ORDER BY d._rid) "
            f"TO {lit(str(target_root / LOG_NAME))} (FORMAT parquet)"
        )
    finally:
        con.close()
    shutil.rmtree(work)
    return funnel, rows_in, rows_out, shards, diagnosis


def _run_filters(con: duckdb.DuckDBPyConnection, run: Run, steps: list[Step], opts: CurateOptions, console: Console) -> tuple[list[FunnelStep], int, int]:
    con.execute("CREATE TEMP TABLE drops (_rid BIGINT, filter VARCHAR, action VARCHAR, reason VARCHAR)")
    con.execute("CREATE TEMP VIEW cur AS SELECT * FROM src WHERE _rid NOT IN (SELECT _rid FROM drops WHERE action = 'drop')")
    stage = Stage(con, run.schema, opts.batch_rows)

    def count() -> int:
        return int(one_row(con, "SELECT count(*) FROM cur")[0])

    rows_in = rows = count()
    funnel: list[FunnelStep] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]curate[/] {task.description}"),
        TextColumn("{task.completed}/{task.total} filters"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("", total=len(steps))
        for step in steps:
            f = step.filter
            progress.update(task, description=f"{f.name} · {rows:,} rows")
            start, cpu = time.perf_counter(), _cpu_seconds()
            sql = f.select(stage)
            con.execute(f"INSERT INTO drops SELECT _rid, ?, ?, min(reason) FROM ({sql}) GROUP BY _rid", [f.name, step.action])
            hit = int(one_row(con, "SELECT count(*) FROM drops WHERE filter = ?", [f.name])[0])
            after = count()
            examples = con.execute(
                "SELECT s.id, d.reason FROM (SELECT * FROM drops WHERE filter = ? ORDER BY _rid LIMIT ?) d JOIN src s USING (_rid) ORDER BY d._rid",
                [f.name, opts.examples],
            ).fetchall()
            funnel.append(
                FunnelStep.model_validate(
                    {
                        "name": f.name,
                        "filter": f.type_name,
                        "action": step.action,
                        "rows_in": rows,
                        "rows_out": after,
                        "dropped" if step.action == "drop" else "flagged": hit,
                        "examples": [{"id": i, "reason": r} for i, r in examples],
                        "stats": dict(f.stats),
                        "report": f.report,
                        "seconds": round(time.perf_counter() - start, 3),
                        "cpu_seconds": round(_cpu_seconds() - cpu, 3),
                    }
                )
            )
            rows = after
            progress.advance(task)
    return funnel, rows_in, rows


EMPTY_INPUT = "the input run holds no rows"


def diagnose(run: Run, steps: list[Step], funnel: list[FunnelStep], rows_in: int, rows_out: int, most: int = 2) -> list[str]:
    """Why a curation kept no rows, or fewer than a tenth of them: the (at most ``most``) filters that removed the
    most, each as it explains its drops, with what to change — the spec entry's ``hint``, or the filter's own advice.
    A filter that checks the judge's verdicts adds what weakens them in the input (all forced, one position named),
    counted by the kind's declaration. Nothing when the curation kept enough."""
    if not too_few(rows_out, rows_in):
        return []
    if not rows_in:
        upstream = diagnose_run(run.manifest) if run.manifest is not None else []
        if upstream and upstream[0].startswith(EMPTY_INPUT):  # a curation of an empty curated run: its own reason
            return upstream[:1]
        return [EMPTY_INPUT + (f": {upstream[0]}" if upstream else "")]
    hits = [(step, f) for step, f in zip(steps, funnel, strict=True) if f.dropped]
    top = sorted(sorted(hits, key=lambda h: -(h[1].dropped or 0))[:most], key=lambda h: funnel.index(h[1]))
    weakness = _verdict_weakness(run) if any(step.filter.judges for step, _ in top) else ""
    lines = []
    for step, f in top:
        why, fix = step.filter.explain(f)
        fix = step.hint or fix
        cause = ""
        if step.filter.judges and weakness:
            cause = f": {weakness}"
            fix = fix if "--judge-model" in fix else f"build with a stronger --judge-model, or {fix}"
        count = f"all {f.dropped}" if f.dropped == f.rows_in and (f.dropped or 0) > 1 else f"{f.dropped} of {f.rows_in}"
        lines.append(f"{f.name}: removed {count} rows{f' ({why})' if why else ''}{cause} — {fix}")
    return lines or ["no filter dropped a row (flagged rows are kept): see the funnel"]


def _verdict_weakness(run: Run) -> str:
    """What weakens the input run's verdicts (all forced, one position named...), by the kind's own count; "" if nothing does."""
    count = run.kind.verdicts
    if count is None or run.manifest is None:
        return ""
    return count.count(run.dataset().to_table(columns=list(count.columns)), run.manifest.config).weakness()


def _cpu_seconds() -> float:
    """CPU time of this process, all threads (DuckDB's included): wall time lies on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_shards(run: Run, target: RunDir, dropped: np.ndarray, edit: Callable[[int, pa.Table], pa.Table] | None = None) -> list[str]:
    """One curated shard per input shard, with the input's schema and metadata; dropped rows (sorted ``_rid`` s) left out.

    ``edit(index, table)``, when given, rewrites shard ``index``'s rows in place first (``review apply``: relabelled rows)."""
    names = []
    for index, shard in enumerate(run.shards):
        table = pq.read_table(shard) if edit is None else edit(index, pq.read_table(shard))
        low, high = np.searchsorted(dropped, [index << 32, (index + 1) << 32])
        keep = np.ones(table.num_rows, dtype=bool)
        keep[dropped[low:high] - (index << 32)] = False
        kept = table.filter(pa.array(keep))
        target.write_chunk(index, kept, {"rows": kept.num_rows, "rows_in": table.num_rows, "input_shard": shard.name})
        names.append(target.chunk_path(index).name)
    return names


def _manifest(
    run: Run,
    source: Manifest,
    spec: dict[str, Any],
    spec_path: Path,
    opts: CurateOptions,
    funnel: list[FunnelStep],
    rows_in: int,
    rows_out: int,
    shards: list[str],
    started: str,
    seconds: float,
) -> Manifest:
    finished = utc_now()
    identity = {"input_fingerprint": source.fingerprint, "spec": spec}
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    link = InputLink(path=str(run.root.resolve()), run_id=source.run_id, fingerprint=source.fingerprint, rows=rows_in)
    if source.curation is not None:
        link.curation = source.curation
    command = redact(opts.command)
    return Manifest.model_validate(
        {
            "judgeforge_version": __version__,
            "kind": run.kind.name,
            "run_id": fingerprint[:16],
            "fingerprint": fingerprint,
            **source.provenance(),
            "curation": Curation(input=link, spec_path=str(spec_path), spec=spec, funnel=funnel, rows_in=rows_in, rows_out=rows_out, log=LOG_NAME),
            "command": command,
            # The whole chain, so the card and the Hub manifest can rebuild it after the input run is gone.
            "commands": [*reproduce_commands(source), command],
            "status": "complete",
            "started_at": started,
            "finished_at": finished,
            "timeline": source.then("curate", started, finished, __version__),
            "rows_in": rows_in,
            "rows_out": rows_out,
            "timings": {"curate_s": round(seconds, 3)},
            "shards": shards,
        }
    )
