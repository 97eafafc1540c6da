"""Verdicts: read from an output, forced at its verdict slot, drawn and aggregated — one module, one policy.

Three formats end a model's output in a verdict: the pairwise judgment (``A``/``B``, :mod:`.judge`), the
S2R verification (``correct``/``incorrect``, :mod:`.s2r`) and the R-PRM analysis (``Yes``/``No``,
:mod:`.rprm`). Each declares one :class:`VerdictFormat`: its :class:`Vocabulary`, its own parser of a
whole output, where its verdict slot is (the output continued with the format's verdict lead) and how a
verdict stands there. What they share is here, so the four builders that force verdicts cannot drift
apart again.

Failures. A failed completion (``Completion.ok`` false: the engine set ``error``) is no output. It is
dropped and the caller counts it; it is never read as an empty text and never handed a forced verdict:
:func:`settle` answers None for it and :func:`read_slots` None for a failed call at a verdict slot,
which leaves that output verdict-less (:attr:`Settled.slot_failed`).

Forcing. An output whose parser finds no verdict, and that its format lets be forced (one naming
several verdicts contradicts itself and never is), is continued at its verdict slot for one greedy
token with its top log-probabilities, all such outputs in one batched call. The :class:`SlotReading`
holds the verdict that token names and, when log-probabilities came back, each verdict's probability
there — every top token naming it, summed, renormalised over the vocabulary: a soft weight. Without
log-probabilities only the greedy token counts. A forced verdict is a measurement: :class:`Settled`
records it as forced, and it becomes a training target only where the user asks for it
(``--allow-forced-verdicts``). Ties between candidates are the judge's business: decided on hard
verdicts (:class:`judgeforge.builders.judging.Ranking`).

Drawing and aggregating. Where a format samples its verdicts, a forced one is drawn from the slot's
probabilities at the sampling temperature, as if the model had sampled that token (:func:`draw`); K
verdicts of one input aggregate into a score — the mean probability of one verdict where
log-probabilities came back, else the share of votes for it (:func:`aggregate`, R-PRM's P(Yes) reward).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Generic, Literal, NamedTuple, TypeVar

from judgeforge.engines.base import Completion, Engine, Request, SamplingParams

V = TypeVar("V", bound=str)
How = Literal["parsed", "forced", "unparsable"]
TOP_LOGPROBS = 20
_FIRST_WORD = re.compile(r"\s*(\w+)")


@dataclass(frozen=True)
class SlotReading(Generic[V]):
    """One token read at a verdict slot: the verdict it names (None: another token) and every verdict's
    probability there (None without log-probabilities, or when no top token names a verdict)."""

    token: V | None
    probabilities: Mapping[V, float] | None

    @property
    def verdict(self) -> V | None:
        """The likelier verdict (ties: the vocabulary's first); the greedy token's without probabilities."""
        p = self.probabilities
        return self.token if p is None else max(p, key=lambda v: p[v])

    def probability(self, verdict: V) -> float | None:
        return None if self.probabilities is None else self.probabilities[verdict]

    def weight(self, verdict: V) -> float | None:
        """The soft weight of ``verdict``: its probability; without probabilities 1 or 0 by the greedy
        token; None when the slot named nothing."""
        p = self.probability(verdict)
        if p is not None:
            return p
        return None if self.token is None else float(self.token == verdict)


@dataclass(frozen=True)
class Vocabulary(Generic[V]):
    """A format's verdicts, in order (the first wins an exact tie), and whether their case matters."""

    verdicts: tuple[V, ...]
    case_sensitive: bool

    def named_by(self, text: str) -> V | None:
        """The verdict the first word of ``text`` names (a slot token such as ``A``, `` Yes`` or ``A]]``), or None."""
        word = _FIRST_WORD.match(text)
        if word is None:
            return None
        key = word.group(1) if self.case_sensitive else word.group(1).casefold()
        return next((v for v in self.verdicts if key == (v if self.case_sensitive else v.casefold())), None)

    def read(self, completion: Completion) -> SlotReading[V]:
        """What the one token of a completed slot call says (see :class:`SlotReading`)."""
        token = self.named_by(completion.text)
        if not completion.logprobs:
            return SlotReading(token, None)
        mass = dict.fromkeys(self.verdicts, 0.0)
        for text, logprob in completion.logprobs[0].top.items():
            verdict = self.named_by(text)
            if verdict is not None:
                mass[verdict] += math.exp(logprob)
        total = sum(mass.values())
        return SlotReading(token, {v: m / total for v, m in mass.items()} if total > 0 else None)


class Parsed(NamedTuple, Generic[V]):
    """What a format's parser finds in one output: the verdict (None: none), the parser's own word for
    what it found (``ok`` with a verdict), the text kept (up to the verdict where the format cuts), and
    whether a forced verdict may be written into it."""

    verdict: V | None
    status: str
    text: str
    forceable: bool


@dataclass(frozen=True)
class VerdictFormat(Generic[V]):
    """One format's verdicts: its vocabulary, its parser ``parse(text, finish_reason)``, its verdict slot
    ``slot(text, finish_reason)`` (a verdict-less output continued up to the verdict) and ``spell(verdict)``,
    what follows the slot once the verdict stands there."""

    vocabulary: Vocabulary[V]
    parse: Callable[[str, str], Parsed[V]]
    slot: Callable[[str, str], str]
    spell: Callable[[V], str]

    def written(self, slot: str, verdict: V) -> str:
        """The output continued at ``slot`` with ``verdict`` written in."""
        return slot + self.spell(verdict)


@dataclass(frozen=True)
class Settled(Generic[V]):
    """One completed output's verdict: the text kept, the verdict (None: none), the parser's status of
    the output as written, the slot reading a forced verdict came from, and whether the slot call failed."""

    text: str
    verdict: V | None
    status: str
    forced: SlotReading[V] | None = None
    slot_failed: bool = False

    @property
    def how(self) -> How:
        return "unparsable" if self.verdict is None else "forced" if self.forced is not None else "parsed"

    def weight(self, verdict: V) -> float | None:
        """How much this output says ``verdict``: the slot's soft weight when forced, else 1 or 0 (None: no verdict)."""
        if self.forced is not None:
            return self.forced.weight(verdict)
        return None if self.verdict is None else float(self.verdict == verdict)


def slot_params(seed: int) -> SamplingParams:
    """One greedy token with its top log-probabilities: the call at every verdict slot."""
    return SamplingParams(n=1, temperature=0.0, max_tokens=1, seed=seed, logprobs=True, top_logprobs=TOP_LOGPROBS)


def read_slots(engine: Engine, vocabulary: Vocabulary[V], requests: Sequence[Request], seed: int) -> list[SlotReading[V] | None]:
    """Read the verdict slot each request's prefix ends at (one batched call); None where the call failed."""
    return [vocabulary.read(c[0]) if c[0].ok else None for c in engine.generate(list(requests), slot_params(seed))]


def _likelier(index: int, reading: SlotReading[V]) -> V | None:
    return reading.verdict


def settle(
    engine: Engine,
    fmt: VerdictFormat[V],
    outputs: Sequence[tuple[Request, Completion]],
    seed: int,
    force: bool,
    choose: Callable[[int, SlotReading[V]], V | None] = _likelier,
    contexts: Sequence[str] | None = None,
) -> list[Settled[V] | None]:
    """Parse each (request, completion) output; with ``force``, force the verdict of every forceable
    verdict-less one (one batched call). ``choose(i, reading)`` picks output i's forced verdict from its
    slot reading (default: the likelier verdict; :func:`draw` for a format that samples). None for a
    failed completion: the caller drops and counts it.

    An output is its request's prefix plus its completion, unless ``contexts[i]`` says which start of
    the prefix is context and not output i's own text (a verification continuing a trajectory whose
    earlier verifications carry verdicts of their own): only the rest is parsed and kept, while a forced
    verdict is still read with the whole prefix before its slot."""
    settled: list[Settled[V] | None] = []
    pending: list[tuple[int, Request]] = []
    for i, (request, completion) in enumerate(outputs):
        if not completion.ok:
            settled.append(None)
            continue
        context = contexts[i] if contexts is not None else ""
        if not request.prefix.startswith(context):
            raise ValueError(f"output {i}: its context is not the start of its request's prefix")
        text = request.prefix[len(context) :] + completion.text
        parsed = fmt.parse(text, completion.finish_reason)
        settled.append(Settled(parsed.text, parsed.verdict, parsed.status))
        if force and parsed.verdict is None and parsed.forceable:
            pending.append((i, Request(messages=request.messages, prefix=context + fmt.slot(text, completion.finish_reason), seed=request.seed)))
    for (i, request), reading in zip(pending, read_slots(engine, fmt.vocabulary, [r for _, r in pending], seed), strict=True):
        current = settled[i]
        assert current is not None  # only completed outputs are pending
        verdict = None if reading is None else choose(i, reading)
        if reading is None:
            settled[i] = replace(current, slot_failed=True)
        elif verdict is not None:
            context = contexts[i] if contexts is not None else ""
            settled[i] = Settled(fmt.written(request.prefix[len(context) :], verdict), verdict, current.status, forced=reading)
    return settled


def draw(reading: SlotReading[V], temperature: float, rng: random.Random) -> V | None:
    """A forced verdict as sampling the slot token at ``temperature`` would give it: each verdict's
    probability to the power 1/T, renormalised, one draw from ``rng``. At temperature 0, or without
    probabilities, the reading's own verdict."""
    if reading.probabilities is None or temperature == 0:
        return reading.verdict
    weights = {v: p ** (1 / temperature) for v, p in reading.probabilities.items()}
    total = sum(weights.values())
    if total == 0:
        return reading.verdict
    u = rng.random() * total
    for verdict, w in weights.items():
        if u < w:
            return verdict
        u -= w
    return verdict


def aggregate(probabilities: Sequence[float | None], votes: Sequence[str | None], verdict: str) -> tuple[float | None, str]:
    """K verdicts of one input as one score for ``verdict``, and how it was made: the mean of its
    probabilities where log-probabilities came back (``p_<verdict>``, lower case), else the share of
    the votes naming it (``vote``), else none (``none``)."""
    given = [p for p in probabilities if p is not None]
    if given:
        return sum(given) / len(given), f"p_{verdict.lower()}"
    cast = [v for v in votes if v is not None]
    if cast:
        return sum(v == verdict for v in cast) / len(cast), "vote"
    return None, "none"
