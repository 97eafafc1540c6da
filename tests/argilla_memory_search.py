"""An in-memory search engine for the Argilla server the test suite starts: test infrastructure, not product.

Why it exists: ``argilla-server`` keeps records in its SQL database but answers every record listing,
filter and progress count through a search engine, and only ships Elasticsearch and OpenSearch ones.
Neither can be installed on the machines this project is tested on (no downloads but PyPI and Debian),
so the review round trip (``judgeforge review push`` → reviewers answer → ``pull`` → ``apply``) could not
run against a real server. The server has a registry for search engines
(``SearchEngine.register(engine_name=...)`` in ``argilla_server.search_engine.base``) and picks one by the
``ARGILLA_SEARCH_ENGINE`` setting; this module registers ``memory`` there, and ``tests/argilla_launch.py``
imports it before starting the real server app. Everything else — the API, authentication, the SQL
database, redis, record status — is the real server.

What it implements for real, because the round trip goes through it: indexing records (fields, metadata,
suggestions, responses, status), partial updates, deleting records, adding/replacing/deleting responses
and suggestions, search with a text query, filters on record properties, metadata, suggestions and
responses (including the ``pending``/``submitted``/``discarded`` response-status filter, per user or for
anyone), sorting, pagination with the total count, dataset and per-user progress, metadata metrics.
Vector similarity search is not implemented and says so. The index lives in this process's memory
(module state: the server builds a new engine object per request) and is lost when the server stops,
exactly like a test database.

This file is imported by the server's own virtualenv (``.venv-argilla``), not by judgeforge.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from argilla_server.enums import MetadataPropertyType
from argilla_server.models import Dataset, MetadataProperty, Record, Response, Suggestion, User, VectorSettings
from argilla_server.search_engine.base import (
    AndFilter,
    Filter,
    FilterScope,
    FloatMetadataMetrics,
    IntegerMetadataMetrics,
    MetadataFilterScope,
    MetadataMetrics,
    Order,
    RangeFilter,
    RecordFilterScope,
    ResponseFilterScope,
    SearchEngine,
    SearchResponseItem,
    SearchResponses,
    SuggestionFilterScope,
    TermsFilter,
    TermsMetrics,
    TextQuery,
)

Doc = dict[str, Any]

# dataset id → record id → document. Module state, because the server asks the registry for a fresh
# engine object on every request.
_INDEXES: dict[str, dict[str, Doc]] = {}


def _index(dataset_id: Any) -> dict[str, Doc]:
    return _INDEXES.setdefault(str(dataset_id), {})


def _response_doc(response: Response) -> Doc:
    return {
        "status": str(response.status),
        "user_id": str(response.user_id),
        "values": {q: (v or {}).get("value") for q, v in (response.values or {}).items()},
    }


def _suggestion_doc(suggestion: Suggestion) -> Doc:
    return {"value": suggestion.value, "score": suggestion.score, "agent": suggestion.agent, "type": suggestion.type}


def _record_doc(dataset: Dataset, record: Record) -> Doc:
    names = {p.name for p in dataset.metadata_properties}
    return {
        "id": str(record.id),
        "external_id": record.external_id,
        "status": str(record.status),
        "inserted_at": record.inserted_at,
        "updated_at": record.updated_at,
        "fields": {k: v for k, v in (record.fields or {}).items()},
        "metadata": {k: v for k, v in (record.metadata_ or {}).items() if k in names and v is not None},
        "responses": {str(r.id): _response_doc(r) for r in record.responses},
        "suggestions": {s.question.name: _suggestion_doc(s) for s in record.suggestions},
    }


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(_text(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    return "" if value is None else str(value)


def _matches_text(doc: Doc, query: TextQuery | str | None) -> bool:
    if query is None:
        return True
    if isinstance(query, str):
        query = TextQuery(q=query)
    fields = doc["fields"]
    haystack = _text(fields.get(query.field) if query.field else fields).lower()
    return all(term in haystack for term in query.q.lower().split())


def _user_responses(doc: Doc, user: User | None) -> list[Doc]:
    return [r for r in doc["responses"].values() if user is None or r["user_id"] == str(user.id)]


def _scope_value(doc: Doc, scope: FilterScope) -> Any:
    if isinstance(scope, RecordFilterScope):
        return doc.get(scope.property)
    if isinstance(scope, MetadataFilterScope):
        return doc["metadata"].get(scope.metadata_property)
    if isinstance(scope, SuggestionFilterScope):
        return doc["suggestions"].get(scope.question, {}).get(scope.property)
    raise ValueError(f"cannot read scope {scope}")


def _value_matches(value: Any, flt: TermsFilter | RangeFilter) -> bool:
    if value is None:
        return False
    if isinstance(flt, TermsFilter):
        wanted = {str(v) for v in flt.values}
        return any(str(v) in wanted for v in (value if isinstance(value, list) else [value]))
    return (flt.ge is None or value >= flt.ge) and (flt.le is None or value <= flt.le)


def _matches(doc: Doc, flt: Filter) -> bool:
    if isinstance(flt, AndFilter):
        return all(_matches(doc, f) for f in flt.filters)
    scope = flt.scope
    if not isinstance(scope, ResponseFilterScope):
        return _value_matches(_scope_value(doc, scope), flt)
    responses = _user_responses(doc, scope.user)
    if scope.question:
        return any(_value_matches(r["values"].get(scope.question), flt) for r in responses)
    if scope.property == "status" and isinstance(flt, TermsFilter):
        statuses = {str(v) for v in flt.values}
        # "pending" for a user: that user has not answered; for nobody in particular: nobody has.
        return ("pending" in statuses and not responses) or any(r["status"] in statuses for r in responses)
    raise ValueError(f"cannot filter on response scope {scope}")


def _sort_value(doc: Doc, scope: FilterScope) -> Any:
    if not isinstance(scope, ResponseFilterScope):
        return _scope_value(doc, scope)
    key = scope.question or scope.property or ""
    values = [r["values"].get(key) if scope.question else r.get(key) for r in _user_responses(doc, scope.user)]
    numbers = [v for v in values if isinstance(v, (int, float))]
    if numbers:
        return sum(numbers) / len(numbers)  # Elasticsearch's nested sort "mode": "avg"
    return next((v for v in values if v is not None), None)


def _sorted(docs: list[Doc], sort: list[Order]) -> list[Doc]:
    # Stable sorts applied from the last key to the first; missing values go last either way, as in ES.
    for order in reversed(sort):
        present = [d for d in docs if _sort_value(d, order.scope) is not None]
        missing = [d for d in docs if _sort_value(d, order.scope) is None]
        present.sort(key=lambda d: _sort_value(d, order.scope), reverse=str(order.order) == "desc")
        docs = present + missing
    return docs


def _counts(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out


@SearchEngine.register(engine_name="memory")
class MemorySearchEngine(SearchEngine):
    """The ``memory`` search engine: a dict of documents per dataset, searched by plain Python."""

    @classmethod
    async def new_instance(cls) -> MemorySearchEngine:
        return cls()

    async def close(self) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def info(self) -> dict[str, Any]:
        return {"backend": "memory", "indexes": len(_INDEXES)}

    async def create_index(self, dataset: Dataset) -> None:
        _index(dataset.id)

    async def delete_index(self, dataset: Dataset) -> None:
        _INDEXES.pop(str(dataset.id), None)

    async def configure_metadata_property(self, dataset: Dataset, metadata_property: MetadataProperty) -> None:
        _index(dataset.id)  # documents are schemaless here: nothing to map

    async def index_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        index = _index(dataset.id)
        for record in records:
            index[str(record.id)] = _record_doc(dataset, record)

    async def partial_record_update(self, record: Record, **update: Any) -> None:
        doc = _index(record.dataset_id).get(str(record.id))
        if doc is not None:
            doc.update({k: str(v) if k == "status" else v for k, v in update.items()})

    async def delete_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        index = _index(dataset.id)
        for record in records:
            index.pop(str(record.id), None)

    async def update_record_response(self, response: Response) -> None:
        record = response.record
        doc = _index(record.dataset_id).get(str(record.id))
        if doc is not None:
            doc["responses"][str(response.id)] = _response_doc(response)

    async def delete_record_response(self, response: Response) -> None:
        record = response.record
        doc = _index(record.dataset_id).get(str(record.id))
        if doc is not None:
            doc["responses"].pop(str(response.id), None)

    async def update_record_suggestion(self, suggestion: Suggestion) -> None:
        doc = _index(suggestion.record.dataset_id).get(str(suggestion.record_id))
        if doc is not None:
            doc["suggestions"][suggestion.question.name] = _suggestion_doc(suggestion)

    async def delete_record_suggestion(self, suggestion: Suggestion) -> None:
        doc = _index(suggestion.record.dataset_id).get(str(suggestion.record_id))
        if doc is not None:
            doc["suggestions"].pop(suggestion.question.name, None)

    async def get_dataset_progress(self, dataset: Dataset) -> dict[str, int]:
        if dataset.is_draft:
            return {}
        docs = _index(dataset.id).values()
        return {"total": len(docs), **_counts(d["status"] for d in docs)}

    async def get_dataset_user_progress(self, dataset: Dataset, user: User) -> dict[str, int]:
        if dataset.is_draft:
            return {}
        statuses = [r["status"] for d in _index(dataset.id).values() for r in _user_responses(d, user)]
        return {"total": len(statuses), **_counts(statuses)}

    async def search(
        self,
        dataset: Dataset,
        query: TextQuery | str | None = None,
        filter: Filter | None = None,
        sort: list[Order] | None = None,
        offset: int = 0,
        limit: int = 100,
        user_id: Any = None,
    ) -> SearchResponses:
        docs = [d for d in _index(dataset.id).values() if _matches_text(d, query) and (filter is None or _matches(d, filter))]
        if sort:
            docs = _sorted(docs, sort)
        page = docs[offset : offset + limit]
        return SearchResponses(items=[SearchResponseItem(record_id=UUID(d["id"]), score=1.0) for d in page], total=len(docs))

    async def compute_metrics_for(self, metadata_property: MetadataProperty) -> MetadataMetrics:
        values = [d["metadata"][metadata_property.name] for d in _index(metadata_property.dataset_id).values() if metadata_property.name in d["metadata"]]
        if metadata_property.type == MetadataPropertyType.terms:
            counts = _counts(str(v) for v in values)
            return TermsMetrics(total=len(values), values=[TermsMetrics.TermCount(term=t, count=c) for t, c in counts.items()])
        metrics = IntegerMetadataMetrics if metadata_property.type == MetadataPropertyType.integer else FloatMetadataMetrics
        return metrics(min=min(values, default=None), max=max(values, default=None))

    async def similarity_search(
        self,
        dataset: Dataset,
        vector_settings: VectorSettings,
        value: list[float] | None = None,
        record: Record | None = None,
        query: TextQuery | str | None = None,
        filter: Filter | None = None,
        max_results: int = 100,
        order: Any = None,
        threshold: float | None = None,
    ) -> SearchResponses:
        raise NotImplementedError("the in-memory test search engine has no vector similarity search")
