"""Curation of built runs: DuckDB filters, dedup, decontamination, the funnel report, and Argilla review.

- :mod:`.pipeline` — ``judgeforge curate``: a YAML spec of filters (each kind's default in ``specs/``)
  run out-of-core over a run's shards; writes a new run with the same schema, a manifest with the funnel
  and a log of every dropped or flagged row.
- :mod:`.filters` — the filters (exact and MinHash near-dedup, decontamination, length, repetition,
  answer checks, judge-data checks, label balance), each validating its columns before reading data.
- :mod:`.ngrams`, :mod:`.minhash` — vectorised text hashing, MinHash/LSH and connected components.
- :mod:`.inspection` — ``judgeforge inspect``: counts, column statistics, samples, ad-hoc SQL.
- :mod:`.cli` — the two commands; :mod:`.review` — Argilla review.

The run-dir readers it builds on live in :mod:`judgeforge.runs` (``open_run``) and
:mod:`judgeforge.schemas.base` (``check_kind``).
"""
