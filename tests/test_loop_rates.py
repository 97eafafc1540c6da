"""What ``judgeforge loop`` records about a build: its quality signals, from a scripted self-taught build's stats.

The loop itself runs real child commands (tests/test_train.py); these tests pin the numbers it derives
from a build's counters, so a forced verdict never passes for a correct one.
"""

from __future__ import annotations

from judgeforge.builders.base import BuildContext
from judgeforge.builders.self_taught import NEW_INSTRUCTION_START, SelfTaughtBuilder, SelfTaughtConfig
from judgeforge.engines.base import Completion, Request, SamplingParams
from judgeforge.formats.judge import VERDICT_LEAD, format_judgment
from judgeforge.sources import Problem
from judgeforge.train.loop import METHODS
from tests.scripted import ScriptedEngine, forced


def half_verdictless_judge(request: Request, params: SamplingParams, k: int) -> Completion | str:
    """A response echoes its instruction. Pairs p0..p3: the judge writes the right verdict (the response about
    legs); p4..p7: it writes none, and a forced verdict is a coin flip, P(A) = 0.5."""
    text = request.messages[-1]["content"]
    if request.prefix.endswith(VERDICT_LEAD):
        return forced(0.5)
    if request.prefix.startswith(NEW_INSTRUCTION_START):
        return Completion(text="How many eyes do ants have?", finish_reason="eos")
    if text.startswith("You are an impartial judge"):
        if not any(f"legs of ant {i}?" in text for i in range(4)):
            return "Hmm."
        response_a = text.split("[Response A]\n")[1].split("\n\n[Response B]")[0]
        return format_judgment("It answers the question.", "A" if "legs" in response_a else "B")
    return f"About: {text.splitlines()[0]}"


def scripted_stats() -> dict[str, float]:
    engine = ScriptedEngine(half_verdictless_judge)
    problems = [Problem(id=f"p{i}", question=f"How many legs of ant {i}?") for i in range(8)]
    builder = SelfTaughtBuilder(SelfTaughtConfig(num_judgments=4), BuildContext({"policy": engine, "judge": engine}, seed=3, run_id="r"))
    builder.build(problems)
    return dict(builder.stats)


def test_loop_correct_verdict_rate_counts_only_parsed_verdicts() -> None:
    stats = scripted_stats()
    assert stats["judge_parsed"] == stats["judge_forced"] == 16
    # every verdict the judge wrote is right; the forced coin flips must not dilute (or inflate) that
    assert METHODS["self-taught"].quality(stats) == 1.0
    metrics = METHODS["self-taught"].build_metrics(stats)
    assert metrics["quality_name"] == "correct-verdict rate" and metrics["quality"] == 1.0
    # forced coin flips are reported apart, never as correct verdicts
    assert metrics["forced_quality_name"] == "forced verdicts agreeing"
    assert metrics["forced_quality"] == round(stats["forced_agreeing"] / 16, 4)
    assert metrics["judge_parse_failure_rate"] == 0.5


def test_loop_rates_are_none_without_verdicts_of_their_kind() -> None:
    metrics = METHODS["self-taught"].build_metrics({"judgments": 4, "judge_unparsable": 4})
    assert metrics["quality"] is None and metrics["forced_quality"] is None and metrics["judge_parse_failure_rate"] == 1.0
    assert "forced_quality" not in METHODS["self-rewarding"].build_metrics({"solutions_checked": 2, "solutions_correct": 1})
