"""Human review in Argilla: push a sample of a run, pull the reviewers' answers, apply them to a new run.

A model that judges its own data needs a human check before its verdicts are trusted. What reviewers see
and answer is declared by each kind (``Kind.review`` in ``schemas/``): rendered fields, single-choice
questions whose answers keep, relabel or drop a row, the model's own answer to each (shown as a
suggestion, and measured against), filterable metadata and guidelines. The server is the user's own
Argilla deployment (``ARGILLA_API_URL`` / ``ARGILLA_API_KEY``, SDK 2.x from the ``argilla`` extra).

- :mod:`.sampling` — which rows go to review: a reproducible, optionally stratified sample.
- :mod:`.transport` — the Argilla connection, the dataset a kind is reviewed in, ``push`` and ``pull``.
- :mod:`.sidecar` — ``RUN_DIR/review.parquet``, the pulled answers (one row per reviewer and record).
- :mod:`.votes` — each reviewed row's fate by majority vote; agreement statistics per question.
- :mod:`.apply` — the reviewed run, written by curation's shard writer, and its manifest.
- :mod:`.cli` — ``judgeforge review push | pull | apply``.
"""

from judgeforge.curation.review.cli import review

__all__ = ["review"]
