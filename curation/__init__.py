"""Curation of built runs: DuckDB filters, dedup, decontamination, the funnel report, and Argilla review.

- :mod:`.pipeline` — ``judgeforge curate``: a YAML spec of filters (each kind's default in ``specs/``)
  run out-of-core over a run's shards; writes a new run with the same schema, a manifest with the funnel
  and a log of every dropped or flagged row.
- :mod:`.filters` — the filters (exact and MinHash near-dedup, decontamination, length, repetition,
  answer checks, judge-data checks, label balance), each validating its columns before reading data.
- :mod:`.ngrams`, :mod:`.minhash` — vectorised text hashing, MinHash/LSH and connected components.
- :mod:`.inspection` — ``judgeforge inspect``: counts, column statistics, samples, ad-hoc SQL.
- :mod:`.cli` — curate, inspect and audit; :mod:`.review` — Argilla review; :mod:`.audit` — re-checking labels.

Runs are opened with :func:`judgeforge.runs.open_run`; per-kind facts (default spec, review questions)
come from the kind's declaration (:mod:`judgeforge.schemas.registry`).
"""
