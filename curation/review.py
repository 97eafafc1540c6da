"""Human review in Argilla: push a sample of a run, pull the reviewers' answers, apply them to a new run.

A model that judges its own data needs a human check before its verdicts are trusted. ``review push``
sends a (stratified) sample of a run dir's rows to an Argilla dataset whose fields and questions come
from the run's kind — for step-wise preference pairs: the problem, the previous steps, the chosen and
the rejected step, and "Is the chosen step really better?" (yes / no / tie) plus a free-text note — with
the model's own verdict attached to each record as a suggestion. Records are keyed by the row id, so
pushing again updates records instead of duplicating them and keeps the answers already given.
``review pull`` writes the submitted and discarded responses into ``RUN_DIR/review.parquet`` (one row
per reviewer and record, one column per question). ``review apply`` writes a new run dir: each reviewed
row is kept, relabelled (step_prefs: a "no" swaps chosen and rejected) or dropped (a "tie", or a record
the reviewers discarded), decided by the majority of its reviewers (an even split leaves the row as it
was), and the manifest records, per question, how many rows and answers were reviewed and how often the
reviewers agreed with the model.

What reviewers see and answer is declared by each kind (``Kind.review`` in ``schemas/``). The server is the user's own
Argilla deployment (``ARGILLA_API_URL`` / ``ARGILLA_API_KEY``, SDK 2.x from the ``argilla`` extra).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from judgeforge.data_cards.runinfo import RunInfo, load_run_info, reproduce_commands
from judgeforge.schemas.kind import Outcome, ReviewSpec, Row
from judgeforge.schemas.registry import get_kind
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from judgeforge import __version__
from judgeforge.errors import UserError
from judgeforge.runs import RunDir, argv, redact

if TYPE_CHECKING:
    import argilla as rg

SIDECAR = "review.parquet"
REVIEW_KEY = b"judgeforge.review"
NOTE = "note"
DISCARDED = "discarded"
SEARCH_PAGE = 200  # records per search request
_SEVERITY: dict[str, int] = {"keep": 0, "relabel": 1, "drop": 2}


# ---------------------------------------------------------------------------------------------------
# What reviewers see and answer, per kind
# ---------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------------


def sample_ids(info: RunInfo, size: int, stratify_by: str | None, seed: int) -> list[str]:
    """A reproducible sample of row ids; with ``stratify_by``, every value keeps its share (at least one)."""
    dataset = info.dataset()
    columns = ["id"] + ([stratify_by] if stratify_by else [])
    if stratify_by and stratify_by not in dataset.schema.names:
        raise UserError(f"--stratify-by '{stratify_by}': no such column in {info.root} (columns: {', '.join(dataset.schema.names)})")
    if stratify_by and isinstance(dataset.schema.field(stratify_by).type, (pa.ListType, pa.StructType)):
        raise UserError(f"--stratify-by '{stratify_by}': pick a column of plain values, not lists or structs")
    table = dataset.to_table(columns=columns)
    ids = table.column("id").to_pylist()
    rng = random.Random(seed)
    if not stratify_by:
        ordered = sorted(ids)
        rng.shuffle(ordered)
        return sorted(ordered[:size])
    groups: dict[str, list[str]] = {}
    for row_id, value in zip(ids, table.column(stratify_by).to_pylist(), strict=True):
        groups.setdefault(str(value), []).append(row_id)
    size = min(size, len(ids))
    keys = sorted(groups)
    quota = {k: len(groups[k]) * size / len(ids) for k in keys}
    take = {k: min(len(groups[k]), max(1, int(quota[k]))) for k in keys}
    while sum(take.values()) > size:  # more strata than the sample: the smallest give way
        smallest = min((k for k in keys if take[k] > 0), key=lambda k: (quota[k], k))
        take[smallest] -= 1
    while sum(take.values()) < size:  # fill up where the share is furthest from its quota
        open_keys = [k for k in keys if take[k] < len(groups[k])]
        take[max(open_keys, key=lambda k: (quota[k] - take[k], k))] += 1
    chosen: list[str] = []
    for k in keys:
        members = sorted(groups[k])
        rng.shuffle(members)
        chosen.extend(members[: take[k]])
    return sorted(chosen)


def read_rows(info: RunInfo, ids: list[str]) -> list[Row]:
    """The full rows with these ids, read with a filter instead of loading the whole run."""
    table = info.dataset().to_table(filter=pc.field("id").isin(ids))
    by_id = {r["id"]: r for r in table.to_pylist()}
    return [by_id[i] for i in ids]


# ---------------------------------------------------------------------------------------------------
# Talking to Argilla
# ---------------------------------------------------------------------------------------------------


class Connection(BaseModel):
    """Where the Argilla server is; the key is used for requests and never written anywhere."""

    api_url: str | None
    api_key: str | None
    workspace: str | None = None
    timeout: int = 60


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@contextmanager
def _argilla_errors(url: str) -> Iterator[None]:
    """Turn connection, credential and API failures into one-line :class:`UserError` s."""
    import warnings

    import httpx
    from argilla._exceptions import (
        ArgillaAPIError,
        ArgillaCredentialsError,
        ArgillaError,
    )

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"argilla\.")  # "dataset not found", "using default workspace"
            yield
    except ArgillaCredentialsError as exc:
        raise UserError(f"Argilla at {url} rejected the API key: check --api-key / ARGILLA_API_KEY") from exc
    except ArgillaAPIError as exc:
        if exc.status_code == 401:
            raise UserError(f"Argilla at {url} rejected the API key: check --api-key / ARGILLA_API_KEY") from exc
        if exc.status_code == 403:
            raise UserError(f"Argilla at {url}: this API key's user may not do that (reviews need an owner or a workspace admin)") from exc
        raise UserError(f"Argilla at {url}: {_one_line(exc)}") from exc
    except httpx.TransportError as exc:
        raise UserError(f"cannot reach Argilla at {url}: {_one_line(exc)}") from exc
    except ArgillaError as exc:
        raise UserError(f"Argilla at {url}: {_one_line(exc)}") from exc


def connect(conn: Connection) -> rg.Argilla:
    """A logged-in SDK client; one clear line when the server is missing, unreachable or refuses the key."""
    if not conn.api_url:
        raise UserError("no Argilla server: pass --api-url or set ARGILLA_API_URL")
    if not conn.api_key:
        raise UserError("no Argilla API key: pass --api-key or set ARGILLA_API_KEY")
    import logging

    import argilla as rg

    logging.getLogger("argilla.sdk").setLevel(logging.ERROR)
    with _argilla_errors(conn.api_url):
        return rg.Argilla(api_url=conn.api_url, api_key=conn.api_key, timeout=conn.timeout, retries=0)


def _settings(spec: ReviewSpec, stratify_by: str | None, reviewers: int) -> rg.Settings:
    import argilla as rg

    metadata: list[Any] = [rg.TermsMetadataProperty("source_id", title="source id")]
    if stratify_by and stratify_by not in {m.name for m in spec.metadata} | {"source_id"}:
        metadata.append(rg.TermsMetadataProperty(_meta_name(stratify_by), title=stratify_by))
    kinds = {"terms": rg.TermsMetadataProperty, "integer": rg.IntegerMetadataProperty, "float": rg.FloatMetadataProperty}
    metadata.extend(kinds[m.kind](m.name, title=m.name.replace("_", " ")) for m in spec.metadata)
    questions: list[Any] = [rg.LabelQuestion(q.name, labels=q.labels, title=q.title, description=q.description or None) for q in spec.questions]
    questions.append(rg.TextQuestion(NOTE, title="Note (optional)", required=False, use_markdown=True))
    return rg.Settings(
        fields=[rg.TextField(f.name, title=f.title, use_markdown=True) for f in spec.fields],
        questions=questions,
        metadata=metadata,
        guidelines=spec.guidelines,
        distribution=rg.TaskDistribution(min_submitted=reviewers),
    )


def _meta_name(column: str) -> str:
    return f"strata_{column.lower()}"


def _find_dataset(client: rg.Argilla, name: str, workspace: str | None) -> rg.Dataset | None:
    return client.datasets(name, workspace=workspace) if workspace else client.datasets(name)


def _check_questions(dataset: rg.Dataset, spec: ReviewSpec, name: str) -> None:
    have = sorted(q.name for q in dataset.settings.questions)
    want = sorted([q.name for q in spec.questions] + [NOTE])
    if have != want:
        raise UserError(f"Argilla dataset '{name}' asks {', '.join(have)}, but this run's kind needs {', '.join(want)}: use another --dataset")


def _existing_ids(client: rg.Argilla, dataset: rg.Dataset) -> set[str]:
    return {r.external_id for r in _search_all(client, dataset, None, with_responses=False)}


def _search_all(client: rg.Argilla, dataset: rg.Dataset, statuses: list[str] | None, with_responses: bool = True) -> Iterator[Any]:
    """Every record of the dataset (optionally only those with a response in ``statuses``), page by page."""
    import argilla as rg

    query = rg.Query(filter=rg.Filter([("response.status", "in", statuses)])) if statuses else rg.Query()
    offset = 0
    while True:
        items, total = client.api.records.search(dataset.id, query=query.api_model(), offset=offset, limit=SEARCH_PAGE, with_suggestions=True, with_responses=with_responses)
        for model, _score in items:
            yield model
        offset += len(items)
        if not items or offset >= total:
            return


def _record(spec: ReviewSpec, row: Row, stratify_by: str | None, agent: str) -> rg.Record:
    import argilla as rg

    metadata: dict[str, Any] = {"source_id": row["source_id"], **{m.name: m.value(row) for m in spec.metadata}}
    metadata = {k: v for k, v in metadata.items() if v is not None}
    if stratify_by and _meta_name(stratify_by) not in metadata and stratify_by not in metadata:
        metadata[_meta_name(stratify_by)] = str(row[stratify_by])
    suggestions = []
    for q in spec.questions:
        if q.model_answer is not None:
            value, score = q.model_answer(row)
            suggestions.append(rg.Suggestion(q.name, value, score=score, agent=agent))
    return rg.Record(id=row["id"], fields={f.name: f.render(row) for f in spec.fields}, metadata=metadata, suggestions=suggestions)


class PushResult(BaseModel):
    dataset: str
    workspace: str
    url: str
    sampled: int
    created: int
    updated: int
    rows_in_run: int


def push(info: RunInfo, conn: Connection, name: str, sample: int, stratify_by: str | None, seed: int, reviewers: int, console: Console) -> PushResult:
    """Create (or reuse) the dataset for the run's kind and upsert a sample of its rows as records."""
    import argilla as rg

    spec = get_kind(info.kind).review
    ids = sample_ids(info, sample, stratify_by, seed)
    rows = read_rows(info, ids)
    client = connect(conn)
    model = ((info.manifest.get("models") or {}).get("judge") or (info.manifest.get("models") or {}).get("policy") or {}).get("model", "model")
    agent = f"judgeforge:{info.manifest.get('run_id', '')}:{model}"
    with _argilla_errors(conn.api_url or ""):
        dataset = _find_dataset(client, name, conn.workspace)
        if dataset is None:
            dataset = rg.Dataset(name=name, workspace=conn.workspace, settings=_settings(spec, stratify_by, reviewers), client=client).create()
        else:
            _check_questions(dataset, spec, name)
        before = _existing_ids(client, dataset)
        records = [_record(spec, row, stratify_by, agent) for row in rows]
        with Progress(TextColumn("[bold]push"), BarColumn(), MofNCompleteColumn(), TextColumn("records"), console=console) as progress:
            task = progress.add_task("push", total=len(records))
            for start in range(0, len(records), 100):
                batch = records[start : start + 100]
                for record in batch:
                    record.dataset = dataset
                client.api.records.bulk_upsert(dataset.id, [r.api_model() for r in batch])
                progress.advance(task, len(batch))
        workspace = dataset.workspace.name
    created = len(set(ids) - before)
    return PushResult(
        dataset=name, workspace=workspace, url=f"{conn.api_url.rstrip('/')}/dataset/{dataset.id}/annotation-mode" if conn.api_url else "",
        sampled=len(ids), created=created, updated=len(ids) - created, rows_in_run=info.num_rows(),
    )


# ---------------------------------------------------------------------------------------------------
# Pulling answers back
# ---------------------------------------------------------------------------------------------------


class ReviewSource(BaseModel):
    """Where a sidecar's answers came from; stored in its Parquet metadata."""

    kind: str
    run_id: str | None
    dataset: str
    workspace: str
    api_url: str
    questions: list[str]
    records: int
    records_completed: int
    pulled_at: str


def _sidecar_schema(spec: ReviewSpec) -> pa.Schema:
    columns = [pa.field("row_id", pa.string()), pa.field("reviewer", pa.string()), pa.field("status", pa.string())]
    for q in spec.questions:
        columns += [pa.field(q.name, pa.string()), pa.field(f"model_{q.name}", pa.string())]
    columns.append(pa.field(NOTE, pa.string()))
    return pa.schema(columns)


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def pull(info: RunInfo, conn: Connection, name: str) -> tuple[Path, ReviewSource, int]:
    """Fetch submitted and discarded responses into ``RUN_DIR/review.parquet``; return it, its source, #answers."""
    spec = get_kind(info.kind).review
    client = connect(conn)
    with _argilla_errors(conn.api_url or ""):
        dataset = _find_dataset(client, name, conn.workspace)
        if dataset is None:
            raise UserError(f"no Argilla dataset '{name}'{f' in workspace {conn.workspace}' if conn.workspace else ''}: push the run first")
        _check_questions(dataset, spec, name)
        questions = {q.id: q.name for q in dataset.settings.questions}
        users: dict[str, str] = {}
        answers: list[Row] = []
        for model in _search_all(client, dataset, ["submitted", DISCARDED]):
            suggested = {questions.get(s.question_id, s.question_name): s.value for s in model.suggestions or ()}
            for response in model.responses or ():
                status = str(getattr(response.status, "value", response.status))
                if status not in ("submitted", DISCARDED):
                    continue
                uid = str(response.user_id)
                if uid not in users:
                    user = client.users(id=uid)
                    users[uid] = user.username if user is not None else uid
                values = {k: (v or {}).get("value") for k, v in (response.values or {}).items()}
                answer: Row = {"row_id": model.external_id, "reviewer": users[uid], "status": status, NOTE: values.get(NOTE)}
                for q in spec.questions:
                    answer[q.name] = values.get(q.name)
                    answer[f"model_{q.name}"] = suggested.get(q.name)
                answers.append(answer)
        progress = dataset.progress()
        workspace = dataset.workspace.name
    known = set(info.dataset().to_table(columns=["id"]).column("id").to_pylist())
    foreign = sorted({a["row_id"] for a in answers} - known)
    if foreign:
        raise UserError(f"Argilla dataset '{name}' holds records that are not rows of {info.root} (e.g. '{foreign[0]}'): was it pushed from another run?")
    source = ReviewSource(
        kind=info.kind, run_id=info.manifest.get("run_id"), dataset=name, workspace=workspace, api_url=redact([conn.api_url or ""])[0],
        questions=[q.name for q in spec.questions], records=int(progress.get("total", 0)),
        records_completed=int(progress.get("completed", 0)), pulled_at=_now(),
    )
    answers.sort(key=lambda a: (a["row_id"], a["reviewer"]))
    schema = _sidecar_schema(spec).with_metadata({REVIEW_KEY: source.model_dump_json().encode()})
    path = info.root / SIDECAR
    _atomic_parquet(pa.Table.from_pylist(answers, schema=schema), path)
    return path, source, len(answers)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------------
# Applying the answers
# ---------------------------------------------------------------------------------------------------


@dataclass
class QuestionStats:
    rows_reviewed: int = 0
    answers: int = 0
    agree_with_model: int = 0
    compared_with_model: int = 0
    unanimous_rows: int = 0
    rows_with_several_answers: int = 0
    labels: Counter[str] = field(default_factory=Counter)

    def report(self) -> dict[str, Any]:
        return {
            "rows_reviewed": self.rows_reviewed,
            "answers": self.answers,
            "agreement_with_model": round(self.agree_with_model / self.compared_with_model, 4) if self.compared_with_model else None,
            "answers_compared_with_model": self.compared_with_model,
            "reviewer_unanimity": round(self.unanimous_rows / self.rows_with_several_answers, 4) if self.rows_with_several_answers else None,
            "labels": dict(sorted(self.labels.items())),
        }


def _majority(votes: list[str]) -> str | None:
    """The most common vote, or None on an even split between the leaders."""
    ranked = Counter(votes).most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def decide(spec: ReviewSpec, answers: list[Row]) -> tuple[dict[str, Outcome | None], dict[str, QuestionStats]]:
    """Per row id: keep / relabel / drop (None: the reviewers split evenly); per question: the statistics."""
    by_row: dict[str, list[Row]] = {}
    for a in answers:
        by_row.setdefault(a["row_id"], []).append(a)
    stats = {q.name: QuestionStats() for q in spec.questions}
    decisions: dict[str, Outcome | None] = {}
    for row_id, row_answers in by_row.items():
        outcomes: list[Outcome | None] = []
        for q in spec.questions:
            votes = [DISCARDED if a["status"] == DISCARDED else a[q.name] for a in row_answers]
            votes = [v for v in votes if v is not None]
            submitted = [a for a in row_answers if a["status"] == "submitted" and a[q.name] is not None]
            s = stats[q.name]
            if submitted:
                s.rows_reviewed += 1
                s.answers += len(submitted)
                s.labels.update(a[q.name] for a in submitted)
                model = [a for a in submitted if a[f"model_{q.name}"] is not None]
                s.compared_with_model += len(model)
                s.agree_with_model += sum(a[q.name] == a[f"model_{q.name}"] for a in model)
                if len(submitted) > 1:
                    s.rows_with_several_answers += 1
                    s.unanimous_rows += len({a[q.name] for a in submitted}) == 1
            winner = _majority(votes)
            if winner is None and votes:
                outcomes.append(None)
            elif winner is not None:
                if winner != DISCARDED and winner not in q.outcomes:
                    raise UserError(f"{SIDECAR}: row '{row_id}' has the answer '{winner}' to '{q.name}', which this kind does not know")
                outcomes.append("drop" if winner == DISCARDED else q.outcomes[winner])
        decided = [o for o in outcomes if o is not None]
        decisions[row_id] = max(decided, key=lambda o: _SEVERITY[o]) if decided else None
    return decisions, stats


def read_sidecar(info: RunInfo) -> tuple[list[Row], ReviewSource]:
    path = info.root / SIDECAR
    if not path.is_file():
        raise UserError(f"no review answers at {path}: run `judgeforge review pull {info.root} --dataset NAME` first")
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(REVIEW_KEY)
    if raw is None:
        raise UserError(f"{path}: not a judgeforge review file (no '{REVIEW_KEY.decode()}' in its metadata)")
    source = ReviewSource.model_validate_json(raw)
    if source.kind != info.kind:
        raise UserError(f"{path}: holds answers about '{source.kind}' rows, but {info.root} holds '{info.kind}' rows")
    return table.to_pylist(), source


def _fingerprint(parent: str, answers: bytes) -> str:
    return hashlib.sha256(parent.encode() + b"\n" + answers).hexdigest()


def default_out(root: Path) -> Path:
    """``runs/demo/step_prefs`` → ``runs/demo-reviewed`` (the new run lands in ``runs/demo-reviewed/step_prefs``)."""
    parent = root.resolve().parent
    return parent.with_name(f"{parent.name}-reviewed")


def apply(info: RunInfo, out: Path) -> dict[str, Any]:
    """Write ``out/<kind>/``: the run with reviewed rows kept, relabelled or dropped; return its manifest."""
    answers, source = read_sidecar(info)
    spec = get_kind(info.kind).review
    if [q.name for q in spec.questions] != source.questions:
        raise UserError(f"{info.root / SIDECAR}: answers questions {source.questions}, but '{info.kind}' asks {[q.name for q in spec.questions]}")
    decisions, stats = decide(spec, answers)
    final = out / info.kind
    if final.exists():
        raise UserError(f"{final} already exists: choose another --out or remove it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to --out '{out}': {exc.strerror or exc}") from exc
    started = _now()
    staging = out / f".{info.kind}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    counts: Counter[str] = Counter()
    try:
        run = RunDir(staging, info.kind)
        for index, shard in enumerate(info.shards):
            table = pq.read_table(shard)
            kept: list[Row] = []
            shard_counts: Counter[str] = Counter()
            for row in table.to_pylist():
                outcome = (decisions[row["id"]] or "split") if row["id"] in decisions else "unreviewed"
                shard_counts[outcome] += 1
                if outcome == "drop":
                    continue
                if outcome == "relabel":
                    if spec.relabel is None:
                        raise UserError(f"kind '{info.kind}' has no relabelling; its questions must not answer 'relabel'")
                    row = spec.relabel(row)
                kept.append(row)
            counts.update(shard_counts)
            stats_out = {"rows": len(kept), "inputs": table.num_rows, "review": dict(shard_counts)}
            run.write_chunk(index, pa.Table.from_pylist(kept, schema=table.schema), stats_out)
        shutil.copy2(info.root / SIDECAR, staging / SIDECAR)
        parent = info.manifest
        command = redact(argv())
        rows_out = sum(pq.ParquetFile(p).metadata.num_rows for p in run.shards())
        fingerprint = _fingerprint(str(parent.get("fingerprint")), (info.root / SIDECAR).read_bytes())
        manifest = {
            **parent,
            "judgeforge_version": __version__,
            "kind": info.kind,
            "run_id": fingerprint[:16],
            "fingerprint": fingerprint,
            "status": "complete",
            "command": command,
            "commands": [*reproduce_commands(parent), command],
            "parent": {"path": str(info.root.resolve()), "run_id": parent.get("run_id"), "fingerprint": parent.get("fingerprint")},
            "review": {
                "argilla_dataset": source.dataset,
                "workspace": source.workspace,
                "pulled_at": source.pulled_at,
                "records_pushed": source.records,
                "records_completed": source.records_completed,
                "reviewers": len({a["reviewer"] for a in answers}),
                "answers": len(answers),
                "rows": {k: counts.get(k, 0) for k in ("unreviewed", "keep", "relabel", "drop", "split")},
                "questions": {name: s.report() for name, s in stats.items()},
            },
            "rows_in": info.num_rows(),
            "rows_out": rows_out,
            "shards": [p.name for p in run.shards()],
            "started_at": started,
            "finished_at": _now(),
        }
        run.write_json(run.manifest_path, manifest)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------


def _connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--api-url", envvar="ARGILLA_API_URL", show_envvar=True, default=None, help="Argilla server URL, e.g. http://localhost:6900."),
        click.option("--api-key", envvar="ARGILLA_API_KEY", show_envvar=True, default=None, help="Argilla API key (prefer the environment variable; it is never written anywhere)."),
        click.option("--workspace", envvar="ARGILLA_WORKSPACE", show_envvar=True, default=None, help="Argilla workspace (default: your first workspace)."),
        click.option("--dataset", "dataset_name", required=True, help="Name of the Argilla dataset."),
        click.option("--timeout", type=click.IntRange(min=1), default=60, show_default=True, help="Seconds to wait for each request to the server."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _summary(title: str, lines: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for label, value in lines:
        table.add_row(label, value)
    return table


_RUN_DIR = click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))


@click.group()
def review() -> None:
    """Human review of a run in Argilla: push a sample, pull the answers, apply them to a new run."""


@review.command("push")
@_RUN_DIR
@_connection_options
@click.option("--sample", type=click.IntRange(min=1), default=200, show_default=True, help="How many rows to send for review.")
@click.option("--stratify-by", default=None, help="Column whose values keep their share of the sample (each value at least one row).")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed: the same seed picks the same rows.")
@click.option("--reviewers", type=click.IntRange(min=1), default=1, show_default=True, help="Answers needed before a record counts as completed (new datasets only).")
def push_command(run_dir: Path, api_url: str | None, api_key: str | None, workspace: str | None, dataset_name: str, timeout: int,
                 sample: int, stratify_by: str | None, seed: int, reviewers: int) -> None:
    """Send a sample of RUN_DIR's rows to an Argilla dataset built for the run's kind.

    Creates the dataset (fields, questions, metadata and guidelines from the kind) or reuses it; each
    record is keyed by its row id and carries the model's own verdict as a suggestion, so pushing again
    updates records instead of duplicating them and keeps answers already given.
    """
    console = Console(stderr=True)
    info = load_run_info(run_dir)
    conn = Connection(api_url=api_url, api_key=api_key, workspace=workspace, timeout=timeout)
    result = push(info, conn, dataset_name, sample, stratify_by, seed, reviewers, console)
    Console().print(_summary("review push", [
        ("dataset", f"{result.dataset} (workspace {result.workspace})"), ("review at", result.url),
        ("records sent", f"{result.sampled} of {result.rows_in_run} rows"), ("new / updated", f"{result.created} / {result.updated}"),
    ]))


@review.command("pull")
@_RUN_DIR
@_connection_options
def pull_command(run_dir: Path, api_url: str | None, api_key: str | None, workspace: str | None, dataset_name: str, timeout: int) -> None:
    """Fetch the submitted and discarded answers into RUN_DIR/review.parquet (one row per reviewer and record)."""
    info = load_run_info(run_dir)
    conn = Connection(api_url=api_url, api_key=api_key, workspace=workspace, timeout=timeout)
    path, source, n = pull(info, conn, dataset_name)
    Console().print(_summary("review pull", [
        ("answers", str(n)), ("records completed", f"{source.records_completed} of {source.records}"), ("written to", str(path)),
    ]))


@review.command("apply")
@_RUN_DIR
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output directory; the reviewed run goes to OUT/<kind>/ [default: RUN_DIR's parent + '-reviewed'].")
def apply_command(run_dir: Path, out: Path | None) -> None:
    """Write a new run dir from RUN_DIR and its pulled answers: reviewed rows kept, relabelled or dropped.

    A row's fate is the majority of its reviewers' answers (per kind: step_prefs keeps "yes", swaps chosen
    and rejected on "no", drops "tie"); a discarded record is dropped; an even split leaves the row as it
    was. The manifest links to RUN_DIR and records per question the rows and answers reviewed and the
    reviewers' agreement with the model's verdicts.
    """
    info = load_run_info(run_dir)
    out = out or default_out(run_dir)
    manifest = apply(info, out)
    rows = manifest["review"]["rows"]
    lines = [
        ("dataset", str(out / info.kind)), ("rows in / out", f"{manifest['rows_in']} / {manifest['rows_out']}"),
        ("kept / relabelled / dropped", f"{rows['keep']} / {rows['relabel']} / {rows['drop']}"), ("unreviewed / split", f"{rows['unreviewed']} / {rows['split']}"),
    ]
    for name, q in manifest["review"]["questions"].items():
        agreement = "-" if q["agreement_with_model"] is None else f"{q['agreement_with_model']:.0%} of {q['answers_compared_with_model']} answers"
        lines.append((f"{name}: agreement with model", agreement))
    Console().print(_summary("review apply", lines))
