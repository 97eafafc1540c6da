"""MinHash signatures, LSH banding and connected components, vectorised with numpy.

The reference is datatrove's MinHash deduplication: word 5-grams, 14 bands of 8 hashes, 32-bit
hashes, one document kept per connected component of the candidate graph. Each n-gram is hashed once
(:mod:`judgeforge.curation.ngrams`); the 112 permutations are ``a_k·x + b_k mod 2^32`` over that hash,
evaluated one permutation at a time over the whole batch and reduced per document with
``np.minimum.reduceat`` — no Python loop per document. Two documents are candidates when all 8 values
of some band agree (and, optionally, a caller-given exact key agrees too); candidates are joined into
clusters by a vectorised union-find (hooking plus pointer jumping), whose root is the smallest index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_U32 = np.uint64(0xFFFFFFFF)
_BAND_MULT = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class MinHasher:
    """``bands × rows`` 32-bit MinHash permutations drawn from ``seed``."""

    bands: int = 14
    rows: int = 8
    seed: int = 1

    @property
    def size(self) -> int:
        return self.bands * self.rows

    def _params(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        a = (rng.integers(1, 2**32, size=self.size, dtype=np.uint64) | np.uint64(1)).astype(np.uint32)
        b = rng.integers(0, 2**32, size=self.size, dtype=np.uint64).astype(np.uint32)
        return a, b

    def signatures(self, grams: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """``(documents, size)`` uint32 signatures; every document must have at least one n-gram."""
        if len(counts) == 0:
            return np.empty((0, self.size), dtype=np.uint32)
        if (counts <= 0).any():
            raise ValueError("every document needs at least one n-gram")
        a, b = self._params()
        x = (grams >> np.uint64(32)).astype(np.uint32)
        starts = np.cumsum(counts) - counts
        sig = np.empty((self.size, len(counts)), dtype=np.uint32)
        permuted = np.empty_like(x)
        for k in range(self.size):
            np.multiply(x, a[k], out=permuted)
            permuted += b[k]
            sig[k] = np.minimum.reduceat(permuted, starts)
        return np.ascontiguousarray(sig.T)

    def band_keys(self, signatures: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """``(documents, bands)`` uint64 bucket keys; ``extra`` (one uint64 per document) must also match."""
        sig = signatures.astype(np.uint64).reshape(len(signatures), self.bands, self.rows)
        keys = np.zeros((len(signatures), self.bands), dtype=np.uint64)
        for r in range(self.rows):
            keys = keys * _BAND_MULT + sig[:, :, r] + np.uint64(r + 1)
        keys += np.arange(self.bands, dtype=np.uint64)[None, :] * np.uint64(0xD6E8FEB86659FD93)
        if extra is not None:
            keys ^= extra[:, None] * np.uint64(0xC2B2AE3D27D4EB4F)
        return keys


def candidate_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges ``(u, v)`` joining each document to the first document of every bucket it shares.

    A star per bucket is enough for connected components and keeps the edge count linear.
    """
    us, vs = [], []
    for band in range(keys.shape[1]):
        column = keys[:, band]
        order = np.argsort(column, kind="stable")
        ordered = column[order]
        starts = np.ones(len(order), dtype=bool)
        starts[1:] = ordered[1:] != ordered[:-1]
        head = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
        member = ~starts
        us.append(order[member])
        vs.append(order[head[member]])
    if not us:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    u, v = np.concatenate(us), np.concatenate(vs)
    n = np.int64(len(keys))
    codes = np.unique(np.minimum(u, v).astype(np.int64) * n + np.maximum(u, v))
    return codes // n, codes % n


def similarity(signatures: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of each pair: the share of equal signature values."""
    out = np.empty(len(u), dtype=np.float64)
    step = 65536
    for i in range(0, len(u), step):
        out[i : i + step] = (signatures[u[i : i + step]] == signatures[v[i : i + step]]).mean(axis=1)
    return out


def components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The root of each of ``n`` nodes in the graph with edges ``(u, v)``: the smallest node of its component."""
    parent = np.arange(n, dtype=np.int64)
    while True:
        pu, pv = parent[u], parent[v]
        low, high = np.minimum(pu, pv), np.maximum(pu, pv)
        apart = low != high
        if not apart.any():
            return parent
        # Hook each root onto the smallest root it touches, then jump pointers until every node points at a root.
        np.minimum.at(parent, high[apart], low[apart])
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
