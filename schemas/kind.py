"""The dataset kind, declared once: everything the pipeline needs to know about one kind of row.

A :class:`Kind` is the unit of extension. Each ``schemas/<kind>.py`` module declares its row model and
one ``KIND = Kind(...)`` that names, in one place: the builder that emits the rows, the paper the rows
follow, the TRL view per training method (or why a method does not apply), the paper's training
defaults (cited), the shipped curation spec, what reviewers see and answer in Argilla, and what the
dataset card adds (Hub categories, tags, plots). Curation, review, cards and the recipes read these
declarations through :mod:`judgeforge.schemas.registry`; none of them keeps its own per-kind table.

Everything here is plain data and pure functions over rows (``dict`` records as Parquet gives them back),
so a kind is declared without importing anything above the schemas layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from judgeforge.schemas.base import BaseRow, arrow_schema

Method = Literal["sft", "dpo", "grpo"]
METHODS: tuple[Method, ...] = ("sft", "dpo", "grpo")
Row = dict[str, Any]
Outcome = Literal["keep", "relabel", "drop"]


@dataclass(frozen=True)
class Paper:
    """The paper a kind's rows follow, as the card cites it."""

    title: str
    authors: str
    venue: str
    arxiv: str
    key: str

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"

    def bibtex(self) -> str:
        year = "20" + self.arxiv[:2]
        return (
            f"@article{{{self.key},\n  title = {{{self.title}}},\n  author = {{{self.authors}}},\n"
            f"  journal = {{arXiv preprint arXiv:{self.arxiv}}},\n  year = {{{year}}},\n  note = {{{self.venue}}}\n}}"
        )


PROCESS_SELF_REWARDING = Paper("Process-based Self-Rewarding Language Models", "Zhang, Shimao and others", "ACL Findings 2025", "2503.03746", "zhang2025process")
R_PRM = Paper("R-PRM: Reasoning-Driven Process Reward Modeling", "She, Shuaijie and others", "EMNLP 2025", "2503.21295", "she2025rprm")
SELF_TAUGHT_EVALUATORS = Paper("Self-Taught Evaluators", "Wang, Tianlu and others", "arXiv 2024", "2408.02666", "wang2024selftaught")
S2R = Paper("S$^2$R: Teaching LLMs to Self-verify and Self-correct via Reinforcement Learning", "Ma, Ruotian and others", "ACL 2025", "2502.12853", "ma2025s2r")


@dataclass(frozen=True)
class TrainDefaults:
    """Hyper-parameters a paper reports for training on one kind, and where they come from."""

    learning_rate: float
    epochs: float
    batch_size: int
    cite: str


ViewFn = Callable[[list[Row], Any], list[Row]]


@dataclass(frozen=True)
class View:
    """How one kind trains under one method: its TRL records, the record format, the trainer it feeds.

    ``build(rows, tokenizer)`` turns rows into TRL records; ``name`` is the public function a card's
    snippet imports (``module:function``; the snippet passes the tokenizer when ``needs_tokenizer``).
    """

    build: ViewFn
    format: str
    name: str
    needs_tokenizer: bool
    trainer: tuple[str, str, str]  # (module, trainer class, config class)


TRL_SFT = ("trl", "SFTTrainer", "SFTConfig")
TRL_DPO = ("trl", "DPOTrainer", "DPOConfig")
TRL_GRPO = ("trl", "GRPOTrainer", "GRPOConfig")


def view(fn: Callable[..., list[Row]], format: str, trainer: tuple[str, str, str], *, needs_tokenizer: bool = False) -> View:  # noqa: A002
    """A :class:`View` of a view function taking ``rows`` (and ``tokenizer`` when ``needs_tokenizer``)."""
    build: ViewFn = fn if needs_tokenizer else (lambda rows, tokenizer: fn(rows))
    return View(build, format, f"{fn.__module__}:{fn.__name__}", needs_tokenizer, trainer)


@dataclass(frozen=True)
class NotTrained:
    """A training method that does not apply to a kind, and why (shown to a user who tries it)."""

    reason: str


# --- review: what reviewers see and answer in Argilla -------------------------------------------


@dataclass(frozen=True)
class ReviewField:
    """A text field shown to the reviewer, rendered (markdown) from a row."""

    name: str
    title: str
    render: Callable[[Row], str]


@dataclass(frozen=True)
class ReviewQuestion:
    """A single-choice question; ``outcomes`` says what each answer does to the row.

    ``model_answer`` is what the data itself says (the answer the dataset implies, and a confidence when
    there is one); it is shown as a suggestion and agreement is measured against it.
    """

    name: str
    title: str
    labels: dict[str, str]
    outcomes: dict[str, Outcome]
    description: str = ""
    model_answer: Callable[[Row], tuple[str, float | None]] | None = None


@dataclass(frozen=True)
class ReviewMeta:
    """A metadata property reviewers can filter on in the Argilla UI."""

    name: str
    kind: Literal["terms", "integer", "float"]
    value: Callable[[Row], Any]


@dataclass(frozen=True)
class ReviewSpec:
    """How one kind is reviewed: fields, questions, filterable metadata, guidelines, how to relabel."""

    fields: tuple[ReviewField, ...]
    questions: tuple[ReviewQuestion, ...]
    guidelines: str
    metadata: tuple[ReviewMeta, ...] = ()
    relabel: Callable[[Row], Row] | None = None

    def question(self, name: str) -> ReviewQuestion:
        return next(q for q in self.questions if q.name == name)


def or_placeholder(text: str, placeholder: str) -> str:
    """``text``, or ``placeholder`` when it is blank (an empty field is invisible in Argilla)."""
    return text if text.strip() else placeholder


_KEEP = ReviewQuestion("keep", "Should this row stay in the dataset?", {"yes": "yes", "no": "no"}, {"yes": "keep", "no": "drop"})


def _text_value(value: Any) -> str:
    if isinstance(value, list):
        return "\n\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def generic_review(row: type[BaseRow]) -> ReviewSpec:
    """Every text column (or list of texts) of ``row`` as a field, and one keep/drop question."""
    text_columns = [f.name for f in arrow_schema(row) if f.type in (pa.string(), pa.list_(pa.string())) and f.name not in ("id", "source_id")]
    fields = tuple(ReviewField(n.lower(), n.replace("_", " "), lambda r, n=n: or_placeholder(_text_value(r[n]), "*(empty)*")) for n in text_columns)
    return ReviewSpec(fields, (_KEEP,), "Read the row and answer whether it belongs in the dataset. Discarded records are dropped.")


# --- the dataset card -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plot:
    """One figure of a kind's card, drawn from the named columns of the whole dataset.

    ``data`` gets an Arrow table of ``columns`` and returns the values to draw: a list of numbers for a
    ``histogram``, ``(labels, counts)`` for ``bars``.
    """

    name: str
    draw: Literal["histogram", "bars"]
    title: str
    caption: str
    columns: tuple[str, ...]
    data: Callable[[pa.Table], Any]
    xlabel: str = ""


@dataclass(frozen=True)
class CardExtras:
    """What a card says about one kind beyond what the builder and schema already document."""

    pretty: str
    task_categories: tuple[str, ...] = ("text-generation",)
    tags: tuple[str, ...] = ()
    plots: tuple[Plot, ...] = ()
    trainer: tuple[str, str] | None = None  # (module, class) replacing the view's TRL trainer in the snippet


# --- the kind -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One dataset kind, declared once (see the module docstring).

    ``builder`` is ``(command, "module:Class")``: the ``judgeforge build`` subcommand and the builder class
    that emits the rows, named as a string so a schema never imports a builder. ``views`` has an entry
    for every training method: a :class:`View`, or :class:`NotTrained` with the reason.
    """

    name: str
    row: type[BaseRow]
    builder: tuple[str, str]
    paper: Paper | None
    views: Mapping[Method, View | NotTrained]
    train_defaults: Mapping[Method, TrainDefaults]
    default_spec: str
    review: ReviewSpec
    card: CardExtras

    def __post_init__(self) -> None:
        if self.row.kind != self.name:
            raise ValueError(f"kind '{self.name}': its row model {self.row.__name__} says kind '{self.row.kind}'")
        missing = [m for m in METHODS if m not in self.views]
        if missing:
            raise ValueError(f"kind '{self.name}': no view (or NotTrained) for {', '.join(missing)}")
        untrained = [m for m, v in self.views.items() if isinstance(v, View) and m not in self.train_defaults]
        if untrained:
            raise ValueError(f"kind '{self.name}': no training defaults for {', '.join(untrained)}")

    def trained_by(self) -> list[Method]:
        """The methods with a view, in :data:`METHODS` order."""
        return [m for m in METHODS if isinstance(self.views[m], View)]

    def view(self, method: Method) -> View | NotTrained:
        return self.views[method]
