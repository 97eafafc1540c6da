"""Talking to Argilla: the connection, the dataset a kind is reviewed in, pushing records, pulling answers.

Everything that touches the Argilla SDK (2.x, the ``argilla`` extra) lives here and is imported lazily,
so the rest of judgeforge runs without it. The dataset's fields, questions, metadata and guidelines come
from the run's kind (``Kind.review``) plus a free-text note; each record is keyed by its row id and
carries the model's own answers as suggestions, so pushing again updates records instead of
duplicating them and keeps the answers already given. Connection, credential and API failures become
one-line :class:`~judgeforge.errors.UserError` s; the API key is used for requests and never written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from judgeforge.curation.review.sampling import read_rows, sample_ids
from judgeforge.curation.review.sidecar import DISCARDED, SUBMITTED, ReviewSource, model_column, write_sidecar
from judgeforge.errors import UserError
from judgeforge.files import utc_now
from judgeforge.runs import Run, redact
from judgeforge.schemas.kind import NOTE_QUESTION, SOURCE_META, ReviewSpec, Row

if TYPE_CHECKING:
    import argilla as rg

SEARCH_PAGE = 200  # records per search request
UPSERT_BATCH = 100  # records per upsert request


class Connection(BaseModel):
    """Where the Argilla server is; the key is used for requests and never written anywhere."""

    api_url: str | None
    api_key: str | None
    workspace: str | None = None
    timeout: int = 60


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@contextmanager
def argilla_errors(url: str) -> Iterator[None]:
    """Turn connection, credential and API failures into one-line :class:`UserError` s."""
    import warnings

    import httpx
    from argilla._exceptions import ArgillaAPIError, ArgillaCredentialsError, ArgillaError

    rejected = f"Argilla at {url} rejected the API key: check --api-key / ARGILLA_API_KEY"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"argilla\.")  # "dataset not found", "using default workspace"
            yield
    except ArgillaCredentialsError as exc:
        raise UserError(rejected) from exc
    except ArgillaAPIError as exc:
        if exc.status_code == 401:
            raise UserError(rejected) from exc
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
    with argilla_errors(conn.api_url):
        return rg.Argilla(api_url=conn.api_url, api_key=conn.api_key, timeout=conn.timeout, retries=0)


# --- the dataset ----------------------------------------------------------------------------------


def _meta_name(column: str) -> str:
    return f"strata_{column.lower()}"


def settings(spec: ReviewSpec, stratify_by: str | None, reviewers: int) -> rg.Settings:
    """The Argilla dataset settings for a kind: its fields, questions + a note, metadata and guidelines."""
    import argilla as rg

    metadata: list[Any] = [rg.TermsMetadataProperty(SOURCE_META, title="source id")]
    if stratify_by and stratify_by not in {m.name for m in spec.metadata} | {SOURCE_META}:
        metadata.append(rg.TermsMetadataProperty(_meta_name(stratify_by), title=stratify_by))
    kinds = {"terms": rg.TermsMetadataProperty, "integer": rg.IntegerMetadataProperty, "float": rg.FloatMetadataProperty}
    metadata.extend(kinds[m.kind](m.name, title=m.name.replace("_", " ")) for m in spec.metadata)
    questions: list[Any] = [rg.LabelQuestion(q.name, labels=q.labels, title=q.title, description=q.description or None) for q in spec.questions]
    questions.append(rg.TextQuestion(NOTE_QUESTION, title="Note (optional)", required=False, use_markdown=True))
    return rg.Settings(
        fields=[rg.TextField(f.name, title=f.title, use_markdown=True) for f in spec.fields],
        questions=questions,
        metadata=metadata,
        guidelines=spec.guidelines,
        distribution=rg.TaskDistribution(min_submitted=reviewers),
    )


def _find_dataset(client: rg.Argilla, name: str, workspace: str | None) -> rg.Dataset | None:
    return client.datasets(name, workspace=workspace) if workspace else client.datasets(name)


def _check_questions(dataset: rg.Dataset, spec: ReviewSpec, name: str) -> None:
    have = sorted(q.name for q in dataset.settings.questions)
    want = sorted([q.name for q in spec.questions] + [NOTE_QUESTION])
    if have != want:
        raise UserError(f"Argilla dataset '{name}' asks {', '.join(have)}, but this run's kind needs {', '.join(want)}: use another --dataset")


def _search_all(client: rg.Argilla, dataset: rg.Dataset, statuses: list[str] | None, with_responses: bool = True) -> Iterator[Any]:
    """Every record of the dataset (optionally only those with a response in ``statuses``), page by page."""
    import argilla as rg

    query = rg.Query(filter=rg.Filter([("response.status", "in", statuses)])) if statuses else rg.Query()
    offset = 0
    while True:
        items, total = client.api.records.search(
            dataset.id, query=query.api_model(), offset=offset, limit=SEARCH_PAGE, with_suggestions=True, with_responses=with_responses
        )
        for model, _score in items:
            yield model
        offset += len(items)
        if not items or offset >= total:
            return


# --- push -----------------------------------------------------------------------------------------


def record(spec: ReviewSpec, row: Row, stratify_by: str | None, agent: str) -> rg.Record:
    """One row as an Argilla record: its rendered fields, its metadata and the model's answers as suggestions."""
    import argilla as rg

    metadata: dict[str, Any] = {SOURCE_META: row["source_id"], **{m.name: m.value(row) for m in spec.metadata}}
    metadata = {k: v for k, v in metadata.items() if v is not None}
    if stratify_by and _meta_name(stratify_by) not in metadata and stratify_by not in metadata:
        metadata[_meta_name(stratify_by)] = str(row[stratify_by])
    suggestions = []
    for q in spec.questions:
        answer = q.model_answer(row) if q.model_answer is not None else None
        if answer is not None:
            suggestions.append(rg.Suggestion(q.name, answer[0], score=answer[1], agent=agent))
    return rg.Record(id=row["id"], fields={f.name: f.render(row) for f in spec.fields}, metadata=metadata, suggestions=suggestions)


class PushResult(BaseModel):
    dataset: str
    workspace: str
    url: str
    sampled: int
    created: int
    updated: int
    rows_in_run: int


def push(run: Run, conn: Connection, name: str, sample: int, stratify_by: str | None, seed: int, reviewers: int, console: Console) -> PushResult:
    """Create (or reuse) the dataset for the run's kind and upsert a sample of its rows as records."""
    import argilla as rg

    spec = run.kind.review
    manifest = run.require_manifest()
    ids = sample_ids(run, sample, stratify_by, seed)
    rows = read_rows(run, ids)
    client = connect(conn)
    author = manifest.models.get("judge") or manifest.models.get("policy")
    agent = f"judgeforge:{manifest.run_id or ''}:{author.model if author else 'model'}"
    with argilla_errors(conn.api_url or ""):
        dataset = _find_dataset(client, name, conn.workspace)
        if dataset is None:
            dataset = rg.Dataset(name=name, workspace=conn.workspace, settings=settings(spec, stratify_by, reviewers), client=client).create()
        else:
            _check_questions(dataset, spec, name)
        before = {r.external_id for r in _search_all(client, dataset, None, with_responses=False)}
        records = [record(spec, row, stratify_by, agent) for row in rows]
        with Progress(TextColumn("[bold]push"), BarColumn(), MofNCompleteColumn(), TextColumn("records"), console=console) as progress:
            task = progress.add_task("push", total=len(records))
            for start in range(0, len(records), UPSERT_BATCH):
                batch = records[start : start + UPSERT_BATCH]
                for r in batch:
                    r.dataset = dataset
                client.api.records.bulk_upsert(dataset.id, [r.api_model() for r in batch])
                progress.advance(task, len(batch))
        workspace = dataset.workspace.name
    created = len(set(ids) - before)
    return PushResult(
        dataset=name,
        workspace=workspace,
        url=f"{conn.api_url.rstrip('/')}/dataset/{dataset.id}/annotation-mode" if conn.api_url else "",
        sampled=len(ids),
        created=created,
        updated=len(ids) - created,
        rows_in_run=run.num_rows(),
    )


# --- pull -----------------------------------------------------------------------------------------


def pull(run: Run, conn: Connection, name: str) -> tuple[Path, ReviewSource, int]:
    """Fetch submitted and discarded responses into ``RUN_DIR/review.parquet``; return it, its source, #answers."""
    spec = run.kind.review
    client = connect(conn)
    with argilla_errors(conn.api_url or ""):
        dataset = _find_dataset(client, name, conn.workspace)
        if dataset is None:
            raise UserError(f"no Argilla dataset '{name}'{f' in workspace {conn.workspace}' if conn.workspace else ''}: push the run first")
        _check_questions(dataset, spec, name)
        questions = {q.id: q.name for q in dataset.settings.questions}
        users: dict[str, str] = {}
        answers: list[Row] = []
        for model in _search_all(client, dataset, [SUBMITTED, DISCARDED]):
            suggested = {questions.get(s.question_id, s.question_name): s.value for s in model.suggestions or ()}
            for response in model.responses or ():
                status = str(getattr(response.status, "value", response.status))
                if status not in (SUBMITTED, DISCARDED):
                    continue
                uid = str(response.user_id)
                if uid not in users:
                    user = client.users(id=uid)
                    users[uid] = user.username if user is not None else uid
                values = {k: (v or {}).get("value") for k, v in (response.values or {}).items()}
                answer: Row = {"row_id": model.external_id, "reviewer": users[uid], "status": status, NOTE_QUESTION: values.get(NOTE_QUESTION)}
                for q in spec.questions:
                    answer[q.name] = values.get(q.name)
                    answer[model_column(q.name)] = suggested.get(q.name)
                answers.append(answer)
        progress = dataset.progress()
        workspace = dataset.workspace.name
    known = set(run.dataset().to_table(columns=["id"]).column("id").to_pylist())
    foreign = sorted({a["row_id"] for a in answers} - known)
    if foreign:
        raise UserError(f"Argilla dataset '{name}' holds records that are not rows of {run.root} (e.g. '{foreign[0]}'): was it pushed from another run?")
    source = ReviewSource(
        kind=run.kind.name,
        run_id=run.require_manifest().run_id,
        dataset=name,
        workspace=workspace,
        api_url=redact([conn.api_url or ""])[0],
        questions=[q.name for q in spec.questions],
        records=int(progress.get("total", 0)),
        records_completed=int(progress.get("completed", 0)),
        pulled_at=utc_now(),
    )
    return write_sidecar(run, answers, source), source, len(answers)
