"""The one verdict module (judgeforge.formats.verdicts) and the declared builder counters (judgeforge.builders.base).

Every format's slot reading, forcing and failure policy on the shared scripted engine: a failed completion is
dropped (None), never parsed as "" and never forced; a failed call at the slot leaves the output verdict-less;
a forced verdict is recorded as forced with the slot's probabilities.
"""

from __future__ import annotations

import math
import random

import pytest

from judgeforge.builders.base import BuildContext, BuilderStats, Counters, Stat, StatFamily
from judgeforge.builders.rprm_score import RprmScoreBuilder, RprmScoreConfig, RprmScoreStats
from judgeforge.engines.base import Completion, Request, SamplingParams, TokenLogprob
from judgeforge.formats.judge import JUDGMENT, VERDICT_LEAD, format_judgment
from judgeforge.formats.rprm import ANALYSIS
from judgeforge.formats.s2r import VERIFICATION
from judgeforge.formats.step_inputs import LabelledSolution
from judgeforge.formats.verdicts import SlotReading, aggregate, draw, read_slots, settle
from tests.scripted import ScriptedEngine, forced, yes_no

FAILED = Completion(text="", error="server error")


def slot(text: str, top: dict[str, float]) -> Completion:
    return Completion(text=text, logprobs=[TokenLogprob(token=text, logprob=max(top.values()), top=top)])


def test_each_format_reads_its_own_vocabulary_at_the_slot() -> None:
    assert JUDGMENT.vocabulary.read(forced(0.8)).probability("A") == pytest.approx(0.8)
    assert JUDGMENT.vocabulary.read(Completion(text="A]]")) == SlotReading("A", None)  # the greedy token without log-probabilities
    assert JUDGMENT.vocabulary.read(Completion(text="a")).token is None  # the judge's verdicts are case-sensitive
    assert ANALYSIS.vocabulary.read(yes_no(0.3)).verdict == "No"
    both = slot(" Yes", {" Yes": math.log(0.3), "yes": math.log(0.3), " No": math.log(0.4)})
    assert ANALYSIS.vocabulary.read(both).probability("Yes") == pytest.approx(0.6)
    assert VERIFICATION.vocabulary.read(slot(" incorrect", {" incorrect": -0.1, " correct": -3.0})).verdict == "incorrect"
    none = VERIFICATION.vocabulary.read(slot(" The", {" The": -0.1}))
    assert none == SlotReading(None, None) and none.verdict is None and none.weight("correct") is None
    assert SlotReading("B", None).weight("A") == 0.0 and SlotReading(None, {"A": 0.5, "B": 0.5}).verdict == "A"  # an exact coin: the first


def test_settle_drops_failed_outputs_and_forces_only_forceable_ones() -> None:
    """A failed completion comes back None (never parsed as "" nor forced); a contradictory judgment is never
    forced; a verdict-less one is continued at ``Verdict: [[`` in one batched call and recorded as forced."""

    def respond(request: Request, params: SamplingParams, k: int) -> Completion | str:
        assert request.prefix.endswith(VERDICT_LEAD) and params.max_tokens == 1 and params.logprobs
        return forced(0.7)

    engine = ScriptedEngine(respond)
    outputs = [
        (Request.chat("q", seed=1), Completion(text=format_judgment("fine", "B"))),
        (Request.chat("q", seed=2), FAILED),
        (Request.chat("q", seed=3), Completion(text="Both [[A]] and [[B]].")),
        (Request.chat("q", seed=4), Completion(text=" No verdict here. ")),
    ]
    parsed, failed, contradictory, missing = settle(engine, JUDGMENT, outputs, seed=0, force=True)
    assert failed is None
    assert parsed is not None and (parsed.verdict, parsed.how, parsed.weight("A")) == ("B", "parsed", 0.0)
    assert contradictory is not None and (contradictory.verdict, contradictory.status, contradictory.how) == (None, "contradictory", "unparsable")
    assert missing is not None and (missing.verdict, missing.how, missing.text) == ("A", "forced", format_judgment("No verdict here.", "A"))
    assert missing.weight("A") == pytest.approx(0.7)
    assert [len(batch) for batch in engine.calls] == [1] and engine.calls[0][0].seed == 4


def test_a_failed_call_at_the_slot_leaves_the_output_verdict_less() -> None:
    engine = ScriptedEngine(lambda request, params, k: FAILED)
    [verification] = settle(engine, VERIFICATION, [(Request.chat("q", seed=1), Completion(text="It fits."))], seed=0, force=True)
    assert verification is not None and verification.verdict is None and verification.slot_failed and verification.forced is None
    assert read_slots(engine, VERIFICATION.vocabulary, [Request.chat("q", prefix="x Verdict:", seed=1)], seed=0) == [None]


def test_draw_and_aggregate() -> None:
    reading = SlotReading(None, {"Yes": 0.8, "No": 0.2})
    assert draw(reading, 0.0, random.Random(0)) == "Yes"
    assert 0.77 < sum(draw(reading, 1.0, random.Random(s)) == "Yes" for s in range(2000)) / 2000 < 0.83
    assert aggregate([0.2, None, 0.6], ["No", None, "Yes"], "Yes") == (pytest.approx(0.4), "p_yes")
    assert aggregate([None, None], ["Yes", "No"], "Yes") == (0.5, "vote") and aggregate([], [], "Yes") == (None, "none")


def test_rprm_score_drops_a_failed_slot_read_instead_of_recording_an_empty_evaluation() -> None:
    """A failed call at the verdict slot used to be stored as an evaluation with no verdict and no P(Yes)."""

    def respond(request: Request, params: SamplingParams, k: int) -> Completion | str:
        if not params.logprobs:
            return f" analysis {k}."
        return FAILED if request.seed % 2 else yes_no(0.9)

    solution = LabelledSolution(id="s", question="What is 1 + 1?", steps=["Step 1: 1 + 1 = 2."], labels=[True], layout="step-labels")
    builder = RprmScoreBuilder(RprmScoreConfig(k=4), BuildContext({"policy": ScriptedEngine(respond)}, seed=0, run_id="r"))
    [row] = builder.build([solution])
    kept = builder.stats[RprmScoreStats.EVALUATIONS]
    assert 0 < kept < 4 and builder.stats[RprmScoreStats.EVALUATIONS_FAILED] == 4 - kept
    assert len(row.p_yes) == len(row.votes) == len(row.analyses) == kept and None not in row.p_yes
    assert row.reward == pytest.approx(0.9) and row.method == "p_yes"


class Declared(BuilderStats):
    ROWS = Stat("rows")
    LEVEL = StatFamily("level")
    STATUS = StatFamily("status", ("done", "failed"))


class Extended(Declared):
    ROWS = Stat("rows_out")  # a redeclared name replaces the one it extends


def test_only_declared_counters_can_be_counted() -> None:
    counters = Counters(Declared)
    counters.add(Declared.ROWS, 2)
    counters.add(Declared.LEVEL[3])
    counters.add(Declared.STATUS["done"], False)  # counting 0 still records the counter
    assert dict(counters) == {"rows": 2, "level_3": 1, "status_done": 0}
    assert counters["status_failed"] == 0 and "status_failed" not in counters
    with pytest.raises(KeyError, match="'pairs' is not a counter Declared declares"):
        counters.add(Stat("pairs"))
    with pytest.raises(KeyError, match="not a declared value"):
        Declared.STATUS["lost"]
    with pytest.raises(KeyError):
        counters["pairs"]
    assert Extended.declares("rows_out") and not Extended.declares("rows") and Extended.declares("level_7")
    assert Declared.ROWS.read({"rows": 5}) == 5 and Declared.ROWS.read({}) == 0 and Declared.STATUS.read({"status_done": 1, "rows": 2}) == {"done": 1}


def test_every_builder_counts_only_what_it_declares() -> None:
    from judgeforge.builders import builder_names, load_builder

    for name in builder_names():
        builder = load_builder(name)
        assert builder.Stats is not BuilderStats, f"{name} declares no counters"
