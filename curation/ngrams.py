"""Text normalisation and hashing for a whole batch of texts at once: the text front end of the
dedup, decontamination, repetition and chosen≠rejected filters.

Per-row Python loops cannot reach the curation throughput target, so a batch of texts goes through
polars (lower-case, runs of non-word characters to one space, split, hash every word once) and numpy
(n-gram hashes as a polynomial over the word hashes of each window, windows that cross a text
boundary masked out). The result is one flat ``uint64`` array of n-gram hashes plus the number of
n-grams of each text, so callers reduce per text with ``np.*.reduceat`` or ``np.bincount``.

Hashes are stable within one process, not across polars versions: they are never stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import polars as pl

# Odd 64-bit multipliers, one per position in an n-gram (a polynomial hash over word hashes).
_POSITION = np.array(
    [
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0x27D4EB2F165667C5,
        0xFF51AFD7ED558CCD,
        0xC4CEB9FE1A85EC53,
        0x94D049BB133111EB,
        0xBF58476D1CE4E5B9,
        0xD6E8FEB86659FD93,
        0xA0761D6478BD642F,
        0xE7037ED1A0B428DB,
        0x8EBC6AF09C88C6E3,
    ],
    dtype=np.uint64,
)
MAX_NGRAM = len(_POSITION)
_WORD_SEED = 0x5EED
# The same replacements as r"\s+" -> " " and r"\W+" -> " ", written so that a single space between two
# words is not a match: most texts then need no replacing at all, which makes them ~5x faster.
_SPACE_RUNS = r"\s{2,}|[^\S ]"
_NON_WORD_RUNS = r"\W*[^\w ]\W*| {2,}"


def _mix(x: np.ndarray) -> np.ndarray:
    """A 64-bit finaliser (splitmix64) so that every bit of an n-gram hash depends on every word."""
    x = x ^ (x >> np.uint64(30))
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def normalise(texts: pa.Array | pa.ChunkedArray) -> pl.Series:
    """Lower-cased, every run of whitespace one space, stripped: the text equality of exact dedup and
    chosen≠rejected (DuckDB's regex replace is several times slower than polars' here)."""
    import polars as pl

    return pl.Series(texts, dtype=pl.String).str.to_lowercase().str.replace_all(_SPACE_RUNS, " ").str.strip_chars(" ")


def text_hashes(texts: pa.Array | pa.ChunkedArray, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of each (optionally normalised) text: a 128-bit key, so distinct
    texts of a million-row run do not collide."""
    import polars as pl

    series = normalise(texts) if normalize else pl.Series(texts, dtype=pl.String)
    return series.hash(seed=1).to_numpy(), series.hash(seed=2).to_numpy()


def word_hashes(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Every word of every text, hashed: ``(hashes uint64 flat, words per text int64)``.

    A word is a run of Unicode word characters after lower-casing, so case, punctuation and spacing
    do not make two texts differ. A null text has no words.
    """
    import polars as pl  # imported here: the CLI lists the filters without paying for polars

    series = pl.Series(texts, dtype=pl.String)
    clean = series.fill_null("").str.to_lowercase().str.replace_all(_NON_WORD_RUNS, " ").str.strip_chars(" ")
    words = clean.str.split(" ")
    counts = words.list.len().to_numpy().astype(np.int64)
    flat = words.explode()
    hashes = flat.hash(seed=_WORD_SEED).to_numpy()
    empty = (clean.str.len_bytes() == 0).to_numpy()
    if empty.any():  # split("") yields one empty word: drop it
        keep = np.repeat(~empty, counts)
        hashes = hashes[keep]
        counts = np.where(empty, 0, counts)
    return hashes, counts


def ngram_hashes(words: np.ndarray, counts: np.ndarray, n: int, short_texts: bool) -> tuple[np.ndarray, np.ndarray]:
    """The word ``n``-grams of each text, hashed: ``(hashes uint64 flat, n-grams per text int64)``.

    ``words``/``counts`` come from :func:`word_hashes`. A text with fewer than ``n`` words (but at
    least one) has no n-gram; with ``short_texts`` it gets one instead, hashed over all its words, so
    two identical short texts still match.
    """
    if not 1 <= n <= MAX_NGRAM:
        raise ValueError(f"n-gram size must be 1..{MAX_NGRAM}, got {n}")
    total = len(words)
    ends = np.cumsum(counts)
    starts = ends - counts
    if total >= n:
        windows = total - n + 1
        grams = words[:windows] * _POSITION[0]
        for k in range(1, n):
            grams += words[k : windows + k] * _POSITION[k]
        text_of = np.repeat(np.arange(len(counts)), counts)[:windows]
        valid = np.arange(windows) + n <= ends[text_of]
        grams = grams[valid]
    else:
        grams = np.empty(0, dtype=np.uint64)
    per_text = np.maximum(counts - n + 1, 0)
    if short_texts:
        short = np.flatnonzero((counts > 0) & (counts < n))
        if len(short):
            extra = np.zeros(len(short), dtype=np.uint64)
            for k in range(n - 1):
                has = counts[short] > k
                extra[has] += words[starts[short[has]] + k] * _POSITION[k]
            # Splice each short text's single n-gram in at its place in text order.
            per_text = per_text.copy()
            per_text[short] = 1
            offsets = np.cumsum(per_text) - per_text
            merged = np.empty(int(per_text.sum()), dtype=np.uint64)
            is_short = np.zeros(len(merged), dtype=bool)
            is_short[offsets[short]] = True
            merged[is_short] = extra
            merged[~is_short] = grams
            grams = merged
    return _mix(grams), per_text.astype(np.int64)


def text_ngrams(texts: pa.Array | pa.ChunkedArray, n: int, short_texts: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`word_hashes` then :func:`ngram_hashes`."""
    words, counts = word_hashes(texts)
    return ngram_hashes(words, counts, n, short_texts)
