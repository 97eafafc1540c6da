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

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

from judgeforge.formats.steps import format_step, solution_text
from judgeforge.schemas.base import BaseRow

Method = Literal["sft", "dpo", "rl"]
METHODS: tuple[Method, ...] = ("sft", "dpo", "rl")
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


PROCESS_SELF_REWARDING = Paper(
    "Process-based Self-Rewarding Language Models", "Zhang, Shimao and others", "ACL Findings 2025", "2503.03746", "zhang2025process"
)
R_PRM = Paper("R-PRM: Reasoning-Driven Process Reward Modeling", "She, Shuaijie and others", "EMNLP 2025", "2503.21295", "she2025rprm")
SELF_TAUGHT_EVALUATORS = Paper("Self-Taught Evaluators", "Wang, Tianlu and others", "arXiv 2024", "2408.02666", "wang2024selftaught")
S2R = Paper("S$^2$R: Teaching LLMs to Self-verify and Self-correct via Reinforcement Learning", "Ma, Ruotian and others", "ACL 2025", "2502.12853", "ma2025s2r")


@dataclass(frozen=True)
class TrainDefaults:
    """Hyper-parameters a paper reports for training on one kind, and where they come from.

    ``trl`` holds the paper's values of fields of the trainer's own TRL config (e.g. S2R's KL
    coefficient ``beta``); like the other three they apply only where the user set nothing.
    """

    learning_rate: float
    epochs: float
    batch_size: int
    cite: str
    trl: Mapping[str, Any] = field(default_factory=dict)


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
TRL_RLOO = ("trl", "RLOOTrainer", "RLOOConfig")
# TRL's DPOTrainer would append EOS to every completion; step-wise DPO ends only a final step with it.
STEPWISE_DPO = ("judgeforge.train.stepwise_dpo", "StepwiseDPOTrainer", "DPOConfig")


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


ModelAnswer = Callable[[Row], tuple[str, float | None] | None]


@dataclass(frozen=True)
class ReviewQuestion:
    """A single-choice question; ``outcomes`` says what each answer does to the row.

    ``model_answer`` is what the data itself says (the answer the dataset implies, and a confidence when
    there is one; None when the row claims nothing the question asks); it is shown as a suggestion and
    agreement is measured against it.
    """

    name: str
    title: str
    labels: dict[str, str]
    outcomes: dict[str, Outcome]
    description: str = ""
    model_answer: ModelAnswer | None = None


@dataclass(frozen=True)
class ReviewMeta:
    """A metadata property reviewers can filter on in the Argilla UI (a None value is left out)."""

    name: str
    kind: Literal["terms", "integer", "float"]
    value: Callable[[Row], Any]


NOTE_QUESTION = "note"  # every review's own free-text question
SOURCE_META = "source_id"  # every record's metadata naming the row's source problem
REVIEW_RESERVED = (NOTE_QUESTION, SOURCE_META)


@dataclass(frozen=True)
class ReviewSpec:
    """How one kind is reviewed: fields, questions, filterable metadata, guidelines, how to relabel.

    ``relabel`` rewrites a row whose majority answer's outcome is ``relabel`` (only kinds where a "no"
    has one well-defined correction have it, e.g. swapping a preference pair).
    """

    fields: tuple[ReviewField, ...]
    questions: tuple[ReviewQuestion, ...]
    guidelines: str
    metadata: tuple[ReviewMeta, ...] = ()
    relabel: Callable[[Row], Row] | None = None

    def __post_init__(self) -> None:
        for q in self.questions:
            if set(q.outcomes) != set(q.labels):
                raise ValueError(f"review question '{q.name}': outcomes for {sorted(q.outcomes)}, labels {sorted(q.labels)}")
            if "relabel" in q.outcomes.values() and self.relabel is None:
                raise ValueError(f"review question '{q.name}': an answer relabels the row, but the spec has no relabel")
        names = [f.name for f in self.fields] + [q.name for q in self.questions] + [m.name for m in self.metadata] + list(REVIEW_RESERVED)
        if len(set(names)) != len(names):
            raise ValueError(f"review fields, questions and metadata need distinct names (Argilla's rule), not {names}")

    def question(self, name: str) -> ReviewQuestion:
        return next(q for q in self.questions if q.name == name)


def or_placeholder(text: str, placeholder: str) -> str:
    """``text``, or ``placeholder`` when it is blank (an empty field is invisible in Argilla)."""
    return text if text.strip() else placeholder


def problem_field(column: str = "question", answer: str | None = "gold_answer", title: str = "Problem") -> ReviewField:
    """The problem, followed by its reference answer when the row has one (``answer``: that column)."""

    def render(row: Row) -> str:
        reference = row.get(answer) if answer else None
        return or_placeholder(row[column], "*(empty)*") + (f"\n\n**Reference answer:** {reference}" if reference else "")

    return ReviewField(column, title, render)


def previous_steps_field(column: str = "previous_steps") -> ReviewField:
    """The solution's steps before the one under review, or a note that there are none."""
    return ReviewField(column, "Previous steps", lambda r: or_placeholder(solution_text(r[column]), "*(none: this is the first step)*"))


def step_field(column: str, title: str) -> ReviewField:
    """One candidate step (a step body in ``column``), laid out as ``Step n:`` at the row's ``step_index``."""
    return ReviewField(column, title, lambda r: format_step(r["step_index"], or_placeholder(r[column], " *(empty)*")))


def kept_judgment_field(candidate: str) -> ReviewField:
    """A judge row's kept judgment, headed by its verdict (the row's ``label``: which ``candidate`` is better)."""

    def render(row: Row) -> str:
        return f"**Kept verdict: {candidate} {row['label']} is better**\n\n" + or_placeholder(row["judgment"], "*(empty)*")

    return ReviewField("judgment", "Judgment (kept for training)", render)


def yes_no(name: str, title: str, description: str, model_answer: ModelAnswer, no: Outcome = "drop", no_label: str = "no") -> ReviewQuestion:
    """A yes / no question: "yes" keeps the row, "no" does ``no`` to it (drop unless a relabelling exists)."""
    return ReviewQuestion(name, title, {"yes": "yes", "no": no_label}, {"yes": "keep", "no": no}, description, model_answer)


DISCARD_NOTE = "Discard a record that cannot be judged (it is dropped). Use the note for anything worth telling the dataset's maintainers."


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


# --- verdicts -------------------------------------------------------------------------------------

Judged = tuple[Hashable, Hashable, Hashable, str | None, bool]
"""One verdict as :func:`tally` reads it: (what was judged — a pair's group, e.g. its row —, the side shown
first, the side shown second, the verdict ``A``/``B``/None, whether it was forced); for verdicts on one
thing (Yes/No, correct/incorrect) the sides are None and the verdict any label."""


@dataclass(frozen=True)
class Verdicts:
    """How the verdicts a set of rows carries came about, and, for pairwise judges, their position bias.

    ``parsed``: written by the model itself; ``forced``: read off its next-token probabilities at the
    verdict slot (:mod:`judgeforge.formats.verdicts`); ``missing``: none. For pairwise kinds ``first``
    counts verdicts naming the side shown first (A), ``both_orders`` the pairs judged in both orders with
    a verdict each, and ``consistent`` those of them whose verdicts all name the same winner.
    """

    parsed: int = 0
    forced: int = 0
    missing: int = 0
    first: int | None = None
    both_orders: int | None = None
    consistent: int | None = None
    writer: str = "the judge"
    written: str = ""
    """How parsed verdicts were written, when not by ``writer`` itself (EFT's rollout-evidence judgments)."""

    @property
    def total(self) -> int:
        return self.parsed + self.forced + self.missing

    def sentence(self) -> str:
        """The verdicts in plain words, e.g. "All 54 verdicts were forced (the judge wrote none itself); no pair
        was judged the same in both orders." Empty when there is none."""
        n = self.total
        if not n:
            return ""
        if self.written and self.parsed == n:
            head = f"All {n:,} verdicts were {self.written}"
        elif self.forced == n:
            head = f"All {n:,} verdicts were forced ({self.writer} wrote none itself)"
        elif self.parsed == n:
            head = f"All {n:,} verdicts were written by {self.writer} itself (none forced)"
        else:
            head = f"{self.parsed:,} of {n:,} verdicts ({self.parsed / n:.0%}) were written by {self.writer} itself, {self.forced:,} forced"
            head += f", {self.missing:,} missing" if self.missing else ""
        text = head + self._agreement() + "."
        decided = self.parsed + self.forced
        if self.first is not None and decided and not self.written:
            text += f" {self.writer[0].upper()}{self.writer[1:]} named the side shown first in {self.first:,} of {decided:,} verdicts."
        return text

    def _agreement(self) -> str:
        if self.both_orders is None or self.consistent is None:
            return ""
        if not self.both_orders:
            return "; no pair was judged in both orders with a verdict each"
        if not self.consistent:
            return f"; no pair was judged the same in both orders (0 of {self.both_orders:,})"
        if self.consistent == self.both_orders:
            return f"; every pair judged in both orders got the same winner both times ({self.both_orders:,} of {self.both_orders:,})"
        share = self.consistent / self.both_orders
        return f"; {self.consistent:,} of {self.both_orders:,} pairs judged in both orders ({share:.0%}) got the same winner both times"

    def weakness(self) -> str:
        """What makes these verdicts a weak signal, in a few words ("every verdict was forced"), or "" when nothing does."""
        decided = self.parsed + self.forced
        found = []
        if self.forced and self.forced >= self.parsed:
            found.append("every verdict was forced" if self.forced == self.total else f"{self.forced} of {self.total} verdicts were forced")
        if self.both_orders and self.consistent is not None and self.consistent < self.both_orders / 2:
            found.append(f"{self.consistent} of {self.both_orders} pairs got the same winner in both orders")
        if self.first is not None and decided and self.first / decided >= 0.9:
            found.append(f"{self.writer} named the side shown first {self.first} of {decided} times")
        return ", ".join(found)


def tally(verdicts: Iterable[Judged], writer: str = "the judge") -> Verdicts:
    """Count verdicts by how they came, and, where sides are given, by the position they name and their
    agreement across the two presentation orders (a pair is consistent when all its verdicts name one winner)."""
    parsed = forced = missing = first = 0
    pairwise = False
    winners: dict[tuple[Hashable, frozenset[Hashable]], dict[bool, set[Hashable]]] = {}
    for group, shown_first, shown_second, verdict, was_forced in verdicts:
        if verdict is None:
            missing += 1
            continue
        forced += was_forced
        parsed += not was_forced
        if shown_first is None:
            continue
        pairwise = True
        first += verdict == "A"
        key = (group, frozenset((shown_first, shown_second)))
        order = shown_first == min((shown_first, shown_second), key=repr)
        winners.setdefault(key, {}).setdefault(order, set()).add(shown_first if verdict == "A" else shown_second)
    if not pairwise:
        return Verdicts(parsed, forced, missing, writer=writer)
    both = [orders for orders in winners.values() if len(orders) == 2]
    consistent = sum(len(orders[True] | orders[False]) == 1 for orders in both)
    return Verdicts(parsed, forced, missing, first=first, both_orders=len(both), consistent=consistent, writer=writer)


@dataclass(frozen=True)
class VerdictCount:
    """How to count a kind's verdicts (:class:`Verdicts`): the columns it reads, and a function of an Arrow table
    of them and the run's builder config (a config can say who wrote the verdicts)."""

    columns: tuple[str, ...]
    count: Callable[[pa.Table, Mapping[str, Any]], Verdicts]


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
    verdicts: VerdictCount | None = None
    """For kinds whose rows carry verdicts: how to count them (the card's opening summary, curation's diagnosis)."""

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
