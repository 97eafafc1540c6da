"""Curation of built runs: DuckDB filters, dedup, decontamination, the funnel report, and Argilla review.

The run-dir readers it builds on live in :mod:`judgeforge.runs` (``open_run``) and
:mod:`judgeforge.schemas.base` (``check_kind``).
"""
