"""The Builder contract: what one dataset family has to provide, and nothing more.

A builder is a name, a semver ``version`` (bump it when the meaning of its rows changes), a pydantic
``Config`` whose fields become its CLI options, the row model it emits, the engine roles it needs, and
one method that turns a chunk of inputs (problems by default; a builder may load its own, e.g.
step-labelled evaluation inputs, by overriding ``load_inputs``) into rows. Batching across the chunk is the builder's job
(one engine call per search step, never one prompt at a time); sharding, progress, the request cache,
resume and the manifest belong to the framework (:mod:`judgeforge.runs`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from judgeforge.engines.base import Engine
from judgeforge.schemas.base import BaseRow, RowMeta
from judgeforge.sources import SourceConfig, load_problems

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class BuildContext:
    """What the framework hands a builder: engines by role, the run seed and identity, progress hooks."""

    def __init__(
        self,
        engines: dict[str, Engine],
        seed: int,
        run_id: str,
        on_inputs_done: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.engines = engines
        self.seed = seed
        self.run_id = run_id
        self.on_inputs_done = on_inputs_done


class Builder(ABC, Generic[ConfigT]):
    """One dataset family. Subclasses set the class attributes and implement :meth:`build`."""

    name: ClassVar[str]
    version: ClassVar[str]
    summary: ClassVar[str]
    row_model: ClassVar[type[BaseRow]]
    Config: ClassVar[type[BaseModel]]
    roles: ClassVar[tuple[str, ...]] = ("policy",)

    def __init__(self, config: ConfigT, ctx: BuildContext) -> None:
        self.config = config
        self.ctx = ctx
        self.stats: Counter[str] = Counter()

    def row_meta(self) -> RowMeta:
        return RowMeta(
            builder=self.name,
            builder_version=self.version,
            run_id=self.ctx.run_id,
            model=self.ctx.engines["policy"].model_id,
        )

    @classmethod
    def load_inputs(cls, source: SourceConfig) -> list[BaseModel]:
        """What the builder consumes, each with a stable ``id``. Default: problems from the source."""
        return list(load_problems(source))

    @abstractmethod
    def build(self, items: list[Any]) -> list[BaseRow]:
        """Rows for one chunk of inputs. Must be deterministic given the run seed and engine outputs."""

    @classmethod
    def finish(cls, run: Path) -> None:
        """Called once a run is complete (its manifest written): add run-level artefacts such as plots."""

    @classmethod
    def report(cls, stats: dict[str, float]) -> list[tuple[str, str]]:
        """Lines for the end-of-run summary table, from the run's summed stats. Default: every counter."""
        return [(k.replace("_", " "), f"{v:g}") for k, v in sorted(stats.items())]
