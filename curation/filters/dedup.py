"""Duplicate filters: exact (normalised text hash of the defining columns) and near (MinHash + LSH).

Both keep the first row (lowest ``_rid``) of each group of duplicates and name it in the reason, so the
curation log says which row each dropped one repeats.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import Field

from judgeforge.curation.filters.base import Column, ColumnType, Filter, FilterParams, Stage, ident, joined_text, no_rows, text_key
from judgeforge.curation.minhash import MinHasher, candidate_pairs, components, similarity
from judgeforge.curation.ngrams import MAX_NGRAM, text_ngrams


class ExactDedupParams(FilterParams):
    columns: list[str] = Field(min_length=1, description="columns that together define a row of this kind")
    normalize: bool = Field(True, description="compare texts case-insensitively with runs of whitespace collapsed")


class ExactDedup(Filter):
    """Rows whose defining columns are equal (after normalisation) are one row: keep the first."""

    type_name = "exact_dedup"
    summary = "drop rows whose defining columns repeat an earlier row (normalised text hash)"
    Params = ExactDedupParams
    params: ExactDedupParams

    def columns(self) -> list[Column]:
        return [Column("columns", c, ColumnType.ANY) for c in self.params.columns]

    def select(self, stage: Stage) -> str:
        from judgeforge.curation.ngrams import text_hashes

        parts = ", ".join(f"coalesce({text_key(c, stage.dtype(c))}, chr(2))" for c in self.params.columns)
        keys = []
        for batch in stage.batches(f"concat_ws(chr(31), {parts}) AS key"):
            h1, h2 = text_hashes(batch.column("key"), self.params.normalize)
            keys.append(pa.table({"_rid": batch.column("_rid"), "h1": h1, "h2": h2}))
        if not keys:
            return no_rows()
        name = stage.register(pa.concat_tables(keys))
        return f"""
            WITH k AS (SELECT h1, h2, min(_rid) AS keep FROM {name} GROUP BY h1, h2 HAVING count(*) > 1)
            SELECT t._rid, 'exact duplicate of ' || c.id AS reason FROM {name} t JOIN k USING (h1, h2) JOIN {stage.rows} c ON c._rid = k.keep
            WHERE t._rid <> k.keep
        """


class NearDedupParams(FilterParams):
    columns: list[str] = Field(min_length=1, description="text (or list-of-text) columns joined into the document")
    same: list[str] = Field([], description="columns two rows must share exactly to be compared at all")
    ngram: int = Field(5, ge=1, le=MAX_NGRAM, description="word n-gram size (datatrove: 5)")
    bands: int = Field(14, ge=1, description="LSH bands (datatrove: 14)")
    rows_per_band: int = Field(8, ge=1, description="MinHash values per band (datatrove: 8)")
    min_similarity: float | None = Field(
        None, ge=0.0, le=1.0, description="also require this estimated Jaccard over the full signature (none: pure LSH, as datatrove)"
    )
    seed: int = Field(1, description="seed of the MinHash permutations")


class NearDedup(Filter):
    """MinHash + LSH over word n-grams; keep the first row of each connected component of candidates."""

    type_name = "near_dedup"
    summary = "MinHash + LSH near-duplicates (word 5-grams, 14x8), one row kept per cluster"
    Params = NearDedupParams
    params: NearDedupParams

    def columns(self) -> list[Column]:
        return [Column("columns", c, ColumnType.TEXT_OR_TEXTS) for c in self.params.columns] + [Column("same", c, ColumnType.ANY) for c in self.params.same]

    def select(self, stage: Stage) -> str:
        p = self.params
        hasher = MinHasher(p.bands, p.rows_per_band, p.seed)
        text = "concat_ws(chr(10), " + ", ".join(joined_text(c, stage.dtype(c)) for c in p.columns) + ")"
        same = f"hash({', '.join(ident(c) for c in p.same)})" if p.same else "0::UBIGINT"
        rids, keys, sigs = [], [], []
        for batch in stage.batches(f"{text} AS text, {same} AS same"):
            grams, counts = text_ngrams(batch.column("text"), p.ngram, short_texts=True)
            has = counts > 0
            self.stats["documents"] += batch.num_rows
            self.stats["empty_documents"] += int((~has).sum())
            self.stats["ngrams"] += len(grams)
            sig = hasher.signatures(grams, counts[has])
            rids.append(batch.column("_rid").to_numpy()[has])
            keys.append(hasher.band_keys(sig, batch.column("same").to_numpy().astype(np.uint64)[has]))
            if p.min_similarity is not None:
                sigs.append(sig)
        if not rids:
            return no_rows()
        rid = np.concatenate(rids)
        order = np.argsort(rid)  # node i = i-th smallest _rid, so a component's root is its first row
        rid = rid[order]
        u, v = candidate_pairs(np.concatenate(keys)[order])
        self.stats["candidate_pairs"] += len(u)
        if p.min_similarity is not None and len(u):
            sim = similarity(np.concatenate(sigs)[order], u, v)
            u, v = u[sim >= p.min_similarity], v[sim >= p.min_similarity]
            self.stats["verified_pairs"] += len(u)
        root = components(len(rid), u, v)
        dup = root != np.arange(len(rid))
        self.stats["clusters"] += len(np.unique(root[dup]))
        drops = pa.table({"_rid": rid[dup], "keep": rid[root[dup]]})
        name = stage.register(drops)
        return f"SELECT d._rid, 'near duplicate of ' || k.id AS reason FROM {name} d JOIN {stage.rows} k ON k._rid = d.keep"
