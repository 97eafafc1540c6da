"""The Builder contract: what one dataset family has to provide, and nothing more.

A builder is a name, a semver ``version`` (bump it when the meaning of its rows changes), a pydantic
``Config`` whose fields become its CLI options, the row model it emits, the engine roles it needs, and
one method that turns a chunk of inputs (problems by default; a builder may load its own, e.g.
step-labelled evaluation inputs, by overriding ``load_inputs``) into rows. Batching across the chunk is the builder's job
(one engine call per search step, never one prompt at a time); sharding, progress, the request cache,
resume and the manifest belong to the framework (:mod:`judgeforge.executors`). Beside ``build`` each
builder declares ``estimate``: the engine calls it makes per stage (:class:`Calls`), from its config and the
real prompts of the first inputs, which ``--dry-run`` turns into requests and tokens per role.

Counters are declared, typed names. Each builder declares ``Stats``, a :class:`BuilderStats` subclass whose
attributes are :class:`Stat` (one counter) or :class:`StatFamily` (one counter per value of something,
``prefix_value``); it counts with ``self.stats.add(Stats.NAME)`` or ``self.stats.add(Stats.FAMILY[value])``,
and counting a name it did not declare raises. A :class:`Stat` is the string the manifest keys the
counter by, so the loop, the card and the summary read ``builder_stats[Stats.NAME]`` by symbol while
old manifests keep reading as they did.

Next to its counters a builder declares which of them count losses (``Stats.LOSSES``: :class:`Loss`,
what was lost at a stage, of what, why, and the option that changes it), so a run that keeps no rows,
or fewer than a tenth of its inputs, says which counter took them and what to change
(:meth:`Builder.diagnose`): the build summary, ``train``'s refusals and ``loop`` read this one
declaration. What a builder needs from every problem — a gold answer, a gold solution, per option value
— it declares in :meth:`Builder.needs`, and :func:`check_needs` refuses a source that gives none of it
before any model is loaded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from judgeforge.engines.base import Engine, Request
from judgeforge.errors import UserError
from judgeforge.schemas.base import BaseRow, RowMeta
from judgeforge.sources import Gold, Problem, SourceConfig, load_problems, missing_gold

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class Stat(str):
    """One declared builder counter; the string is its key in the chunk stats and the manifest."""

    __slots__ = ()

    def read(self, stats: Mapping[str, float]) -> float:
        """This counter's value in a manifest's (or a chunk's) stats: 0 where it was never counted."""
        return stats.get(self, 0)


class StatFamily:
    """Declared counters ``prefix_value``, one per value: of ``values`` when given, of any value otherwise."""

    def __init__(self, prefix: str, values: Iterable[object] | None = None) -> None:
        self.prefix = prefix
        self.values = None if values is None else tuple(str(v) for v in values)

    def __getitem__(self, value: object) -> Stat:
        if self.values is not None and str(value) not in self.values:
            raise KeyError(f"'{value}' is not a declared value of the counters {self.prefix}_* (declared: {', '.join(self.values)})")
        return Stat(f"{self.prefix}_{value}")

    def owns(self, key: str) -> bool:
        """Whether ``key`` is one of this family's counters."""
        value = key.removeprefix(f"{self.prefix}_")
        return value != key and (self.values is None or value in self.values)

    def read(self, stats: Mapping[str, float]) -> dict[str, float]:
        """This family's counters in ``stats``, by value."""
        return {k.removeprefix(f"{self.prefix}_"): v for k, v in stats.items() if self.owns(k)}


@dataclass(frozen=True)
class Facts:
    """What a loss's text reads: a run's summed counters (``n(Stats.X)``; 0 where never counted) and its builder config."""

    stats: Mapping[str, float]
    c: Mapping[str, Any]

    def n(self, stat: Stat) -> float:
        return stat.read(self.stats)


Text = str | Callable[[Facts], str]
"""A loss's text: a template over the counters and the config (``{s[judge_forced]:g}``, ``{c[min_gap]:g}``), or a function of the facts."""


class _Counts(dict[str, float]):
    """Counters for a template: one never counted reads 0."""

    def __missing__(self, key: str) -> float:
        return 0


@dataclass(frozen=True)
class Loss:
    """A declared counter of things a builder lost at one stage: of what, why, and the option that changes it.

    ``of`` counts what reached the stage (``"inputs"``: the run's inputs; None: nothing counts it), and
    ``unit`` names it in the plural ("problems", "pairs considered"); ``why`` says what happened to the lost
    ones and ``fix`` which option (with its value in this run) changes it.
    """

    lost: Stat
    of: Stat | Literal["inputs"] | None
    unit: str
    why: Text
    fix: Text

    def line(self, facts: Facts, inputs: int) -> str:
        """``counter: N of M unit why — fix``, read off one run."""
        lost, whole = facts.n(self.lost), self._reached(facts, inputs)
        if whole is None:
            count = f"{lost:g}"
        elif lost >= whole > 1:
            count = f"all {whole:g}"
        else:
            count = f"{lost:g} of {whole:g}"
        return f"{self.lost}: {count} {self.unit} {_text(self.why, facts)} — {_text(self.fix, facts)}"

    def share(self, facts: Facts, inputs: int) -> float:
        """The share of what reached the stage that it lost (1 where nothing counts what reached it)."""
        whole = self._reached(facts, inputs)
        return facts.n(self.lost) / whole if whole else 1.0

    def _reached(self, facts: Facts, inputs: int) -> float | None:
        return float(inputs) if self.of == "inputs" else None if self.of is None else facts.n(self.of)


RETRY = "see the engine's errors; re-run the command to retry them"
"""The advice for a loss to failed engine calls: a re-run answers the rest from the cache and retries only these."""
MAP_ANSWERS = "name the answer column with --answer-col"
"""The advice for a loss to problems without a gold answer."""


def _text(text: Text, facts: Facts) -> str:
    return text(facts) if callable(text) else text.format(s=_Counts(facts.stats), c=facts.c)


FEW_ROWS = 0.1
"""A run that keeps fewer rows than this share of its inputs (or none) is diagnosed: its losses are named."""


def too_few(rows: int, inputs: int) -> bool:
    """Whether a run (a build, a curation) keeping ``rows`` of ``inputs`` kept none or fewer than :data:`FEW_ROWS` of them."""
    return rows == 0 or rows < FEW_ROWS * inputs


class BuilderStats:
    """A builder's counter declaration: subclass it and assign :class:`Stat` and :class:`StatFamily` attributes.

    A subclass of a declaration adds to it (shared counters, such as a judge's, are declared once) and
    may redeclare one of its names. ``LOSSES`` lists, in the order the builder's stages run, the counters
    that count losses (:class:`Loss`); a subclass lists its parent's too (``(*Parent.LOSSES, ...)``).
    """

    LOSSES: ClassVar[tuple[Loss, ...]] = ()
    _keys: ClassVar[frozenset[str]] = frozenset()
    _families: ClassVar[tuple[StatFamily, ...]] = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        names: dict[str, object] = {}
        for klass in reversed(cls.__mro__):
            names.update(vars(klass))
        declared = list(names.values())
        cls._keys = frozenset(str(v) for v in declared if isinstance(v, Stat))
        cls._families = tuple(v for v in declared if isinstance(v, StatFamily))
        for loss in cls.LOSSES:
            for stat in (loss.lost, loss.of):
                if isinstance(stat, Stat) and not cls.declares(stat):
                    raise TypeError(f"{cls.__qualname__}.LOSSES names '{stat}', a counter it does not declare")

    @classmethod
    def diagnose(cls, stats: Mapping[str, float], config: Mapping[str, Any], inputs: int, rows: int, most: int = 2) -> list[str]:
        """Why a run kept ``rows`` of ``inputs``: the (at most ``most``) declared losses that took the largest
        share of what reached them, one line each in stage order; nothing when it kept enough (:func:`too_few`)."""
        if not too_few(rows, inputs):
            return []
        facts = Facts(stats, config)
        found = [(loss.share(facts, inputs), order, loss) for order, loss in enumerate(cls.LOSSES) if facts.n(loss.lost)]
        top = sorted(sorted(found, key=lambda f: (-f[0], f[1]))[:most], key=lambda f: f[1])
        return [loss.line(facts, inputs) for _, _, loss in top] or ["no counter this builder declares as a loss was counted: see the counters above"]

    @classmethod
    def plain(cls) -> tuple[Stat, ...]:
        """Every single (non-family) counter declared, in name order."""
        return tuple(Stat(k) for k in sorted(cls._keys))

    @classmethod
    def declares(cls, key: str) -> bool:
        """Whether ``key`` is a counter this declaration (or one it extends) names."""
        return key in cls._keys or any(f.owns(key) for f in cls._families)


class Counters(Mapping[str, int]):
    """A builder's counts of one chunk: only declared counters can be counted; reading one never counted gives 0.

    Counting 0 still records the counter (as ``Counter`` did), so the manifest shows it was measured.
    """

    def __init__(self, declared: type[BuilderStats]) -> None:
        self.declared = declared
        self._counts: Counter[str] = Counter()

    def add(self, stat: Stat, n: int | bool = 1) -> None:
        if not self.declared.declares(stat):
            raise KeyError(f"'{stat}' is not a counter {self.declared.__qualname__} declares")
        self._counts[str(stat)] += int(n)

    def merge(self, other: Counters) -> None:
        """Add every count of ``other`` (a helper's counters, e.g. a judge's) to these."""
        for key, n in other.items():
            self.add(Stat(key), n)

    def __getitem__(self, key: str) -> int:
        if not self.declared.declares(key):
            raise KeyError(f"'{key}' is not a counter {self.declared.__qualname__} declares")
        return self._counts[key]

    def __contains__(self, key: object) -> bool:
        return key in self._counts

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)


ESTIMATE_SAMPLE = 8
"""How many of the first inputs a builder writes real prompts for, in :meth:`Builder.estimate`."""


class Calls(BaseModel):
    """One stage of a build's engine calls, as the builder declares it for ``--dry-run`` (one line of its estimate).

    ``requests`` prompts (at most, where a search may stop early), each sampled ``samples`` times, each
    completion at most ``max_tokens`` long. ``prompts`` are the stage's real prompts for the first
    inputs (:data:`ESTIMATE_SAMPLE` at most), with the text an earlier stage would generate left empty;
    ``added_tokens`` is how many tokens of such generated text each prompt holds on average, at most
    (a judge's two candidate steps, the steps before them). The executor tokenizes ``prompts`` with the
    role's tokenizer (:func:`judgeforge.executors.dry_run.stage_cost`), so prompt tokens are counted as
    engines count them: a prompt once per completion.
    """

    model_config = ConfigDict(frozen=True)

    role: str
    stage: str
    requests: int
    samples: int = 1
    max_tokens: int
    prompts: tuple[Request, ...] = ()
    added_tokens: int = 0

    def forced(self) -> Calls:
        """The verdict-forcing calls this judging stage may add: one per completion without a verdict, each the
        judgment so far plus the verdict lead, reading one token (:mod:`judgeforge.formats.verdicts`)."""
        return Calls(
            role=self.role,
            stage=f"{self.stage}: forcing verdicts",
            requests=self.requests * self.samples,
            max_tokens=1,
            prompts=self.prompts,
            added_tokens=self.added_tokens + self.max_tokens,
        )


def first_inputs(inputs: Sequence[Any]) -> Sequence[Any]:
    """The inputs a builder writes sample prompts for in its estimate."""
    return inputs[:ESTIMATE_SAMPLE]


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


@dataclass(frozen=True)
class Need:
    """What every problem must carry for a builder, run with ``option``, to make any row: a gold answer or solution.

    ``why`` says what the builder does with it; ``instead`` names a way that needs it not (``--from samples``).
    """

    what: Gold
    option: str
    why: str
    instead: str = ""


def check_needs(builder_cls: type[Builder[Any]], config: BaseModel, source: SourceConfig, items: Sequence[BaseModel]) -> None:
    """Refuse, in one line naming the missing column and the option that maps it, a source none of whose problems
    carries what the builder needs with this config (:meth:`Builder.needs`); run before any model is loaded."""
    problems = [item for item in items if isinstance(item, Problem)]
    for need in builder_cls.needs(config) if problems else ():
        if not any(p.has_gold(need.what) for p in problems):
            reason, remedy = missing_gold(source, need.what)
            instead = f", or {need.instead}" if need.instead else ""
            raise UserError(
                f"{' '.join(filter(None, (builder_cls.name, need.option)))} needs gold {need.what}s ({need.why}), and none of the {len(problems)} problems "
                f"of '{source.source}' has one ({reason}): {remedy}{instead}"
            )


class Builder(ABC, Generic[ConfigT]):
    """One dataset family. Subclasses set the class attributes and implement :meth:`build`."""

    name: ClassVar[str]
    version: ClassVar[str]
    summary: ClassVar[str]
    row_model: ClassVar[type[BaseRow]]
    Config: ClassVar[type[BaseModel]]
    roles: ClassVar[tuple[str, ...]] = ("policy",)
    Stats: ClassVar[type[BuilderStats]] = BuilderStats
    held_out_split: ClassVar[bool] = False
    """Whether ``--test-fraction`` may hold some inputs out as a test split (judge data: the pairs ``eval judge`` measures)."""

    chunk_scoped: ClassVar[str] = ""
    """Why a row depends on the other inputs of its chunk (e.g. per-chunk balancing), if it does; empty when each
    input's rows depend on that input alone. A run of such a builder grows only from a full last chunk."""

    def __init__(self, config: ConfigT, ctx: BuildContext) -> None:
        self.config = config
        self.ctx = ctx
        self.stats = Counters(self.Stats)

    def row_meta(self) -> RowMeta:
        return RowMeta(
            builder=self.name,
            builder_version=self.version,
            run_id=self.ctx.run_id,
            model=self.ctx.engines["policy"].model_id,
        )

    @classmethod
    def needs(cls, config: ConfigT) -> tuple[Need, ...]:
        """What every problem must carry for this config to make any row (checked by :func:`check_needs`). Default: nothing."""
        return ()

    @classmethod
    def diagnose(cls, stats: Mapping[str, float], config: Mapping[str, Any], inputs: int, rows: int) -> list[str]:
        """Why a run of this builder kept ``rows`` of ``inputs``, from its summed counters and config (:meth:`BuilderStats.diagnose`)."""
        return cls.Stats.diagnose(stats, config, inputs, rows)

    @classmethod
    def load_inputs(cls, source: SourceConfig) -> list[BaseModel]:
        """What the builder consumes, each with a stable ``id``. Default: problems from the source."""
        return list(load_problems(source))

    @classmethod
    @abstractmethod
    def estimate(cls, config: ConfigT, inputs: Sequence[Any]) -> list[Calls]:
        """The engine calls a build over ``inputs`` makes, stage by stage (``--dry-run``): see :class:`Calls`."""

    @abstractmethod
    def build(self, items: list[Any]) -> list[BaseRow]:
        """Rows for one chunk of inputs. Must be deterministic given the run seed and engine outputs."""

    @classmethod
    def finish(cls, run: Path) -> None:
        """Called once a run is complete (its manifest written): add run-level artefacts such as plots."""

    @classmethod
    def report(cls, stats: Mapping[str, float]) -> list[tuple[str, str]]:
        """Lines for the end-of-run summary table, from the run's summed stats. Default: every counter."""
        return [(k.replace("_", " "), f"{v:g}") for k, v in sorted(stats.items())]
