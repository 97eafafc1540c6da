"""Dataset builders, one module per family.

There is no second registry here: every kind in :mod:`judgeforge.schemas.registry` names the builder
that emits it (``build`` subcommand, ``module:Class``), and builders are imported lazily from there, so
importing one builder never drags in all the others. Adding a builder is one file; its kind's
declaration names it.
"""

from __future__ import annotations

import importlib
from typing import Any

from judgeforge.builders.base import Builder
from judgeforge.errors import UserError
from judgeforge.runs import Manifest
from judgeforge.schemas.registry import all_kinds


def builder_names() -> list[str]:
    """Every ``judgeforge build`` subcommand, in kind registry order."""
    return [kind.builder[0] for kind in all_kinds()]


def load_builder(name: str) -> type[Builder[Any]]:
    """The builder class behind ``judgeforge build NAME``."""
    targets = {kind.builder[0]: kind.builder[1] for kind in all_kinds()}
    if name not in targets:
        raise UserError(f"unknown builder '{name}' (known: {', '.join(targets)})")
    module, _, attr = targets[name].partition(":")
    builder: type[Builder[Any]] = getattr(importlib.import_module(module), attr)
    return builder


def diagnose_build(manifest: Manifest) -> list[str]:
    """Why a built run kept no rows, or fewer than a tenth of its inputs, one line per counter that took
    them with the option that changes it (:meth:`Builder.diagnose`); nothing when it kept enough or its
    builder is no longer registered."""
    name = manifest.builder.name if manifest.builder else None
    if name is None or name not in builder_names():
        return []
    return load_builder(name).diagnose(manifest.builder_stats, manifest.config, manifest.rows_in or 0, manifest.rows_out or 0)


def diagnose_run(manifest: Manifest) -> list[str]:
    """Why a built or curated run kept no rows or fewer than a tenth of its inputs: its curation's recorded
    diagnosis, or its build's (:func:`diagnose_build`); nothing when it kept enough."""
    if manifest.curation is not None:
        return list(manifest.curation.diagnosis)
    return diagnose_build(manifest)
