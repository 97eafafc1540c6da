"""S2R logic without the model: difficulty table, verdicts, the trajectory layout, rewards, the SFT view's labels."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from judgeforge.builders.s2r import _forced_verdict, difficulty_level, parse_difficulty_table
from judgeforge.builders.s2r_format import (
    RETRY_LEAD,
    VERIFY_LEAD,
    attempt_segment,
    parse_trajectory,
    parse_verdict,
    policy_user_message,
    verification_segment,
    verify_user_message,
)
from judgeforge.cli import main
from judgeforge.engines.base import Completion, TokenLogprob
from judgeforge.errors import UserError
from judgeforge.sources import Problem
from judgeforge.train.rewards import outcome_reward, process_reward, reward_setup


def trajectory(*parts: tuple[str, str, str]) -> str:
    """(attempt, verification body, verdict) triples laid out as the builder lays them out."""
    text = ""
    for i, (attempt, body, verdict) in enumerate(parts):
        text += attempt_segment(attempt, first=i == 0) + verification_segment(f"{body}\nVerdict: {verdict}", verdict)  # type: ignore[arg-type]
    return text


def test_default_table_follows_the_papers_attempt_counts_for_five_samples() -> None:
    levels = parse_difficulty_table("0.9:1,0.7:2,0.5:3,0.3:3,0:4")
    by_wrong = {wrong: levels[difficulty_level(levels, (5 - wrong) / 5) - 1].attempts for wrong in range(5)}
    assert by_wrong == {0: 1, 1: 2, 2: 3, 3: 3, 4: 4}
    assert [difficulty_level(levels, a) for a in (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)] == [1, 2, 3, 4, 5, 5]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("0.5:1,0:x", "expected MIN_ACCURACY:ATTEMPTS"),
        ("0.5", "expected MIN_ACCURACY:ATTEMPTS"),
        ("0.5:1,0.2:2", "must start at accuracy 0"),
        ("0.2:1,0.5:2,0:3", "must decrease"),
        ("1.5:1,0:2", r"in \[0, 1\]"),
        ("0.5:0,0:2", "at least 1 attempt"),
    ],
)
def test_bad_difficulty_tables_are_one_line_errors(table: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_difficulty_table(table)


def test_bad_table_on_the_command_line_exits_2_before_loading_anything(tmp_path: Any) -> None:
    result = CliRunner().invoke(main, ["build", "s2r-trajectories", "--difficulty-table", "0.5:1", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("Error: --difficulty-table '0.5:1'")
    assert not (tmp_path / "s2r_trajectories").exists()


def test_verdicts_are_read_from_the_verdict_line_and_contradictions_have_none() -> None:
    assert parse_verdict("5 + 5 = 10, which matches.\nVerdict: correct").verdict == "correct"
    assert parse_verdict("It does not fit.\nverdict: **Incorrect**").verdict == "incorrect"
    parsed = parse_verdict("It fits.\nVerdict: correct\nmore text")
    assert parsed.start == len("It fits.\n") and parsed.lines == 1
    both = parse_verdict("Verdict: correct. Verdict: incorrect")
    assert both.verdict is None and both.contradictory
    none = parse_verdict("The answer is correct.")
    assert none.verdict is None and not none.contradictory


def test_style_prompts_differ_and_ask_for_the_verdict_line() -> None:
    solving, confirming = (verify_user_message(s, "What is 2 + 3?", "5") for s in ("problem-solving", "confirmative"))  # type: ignore[arg-type]
    assert solving != confirming
    for prompt in (solving, confirming):
        assert "Verdict: correct" in prompt and "Verdict: incorrect" in prompt and prompt.endswith("Proposed answer: 5")
    assert "\\boxed{}" in policy_user_message("What is 2 + 3?")


def test_trajectory_layout_parses_back_into_attempts_and_verifications() -> None:
    text = trajectory(("The answer is \\boxed{6}.", "6 is too big.", "incorrect"), ("The answer is \\boxed{5}.", "2 + 3 = 5.", "correct"))
    assert text.count(VERIFY_LEAD) == 2 and text.count(RETRY_LEAD) == 1
    attempts = parse_trajectory(text)
    assert [a.text for a in attempts] == ["The answer is \\boxed{6}.", "The answer is \\boxed{5}."]
    assert attempts[0].verification == "6 is too big.\nVerdict: incorrect"
    assert parse_verdict(attempts[1].verification or "").verdict == "correct"
    assert parse_trajectory("Just \\boxed{5}") == [type(attempts[0])("Just \\boxed{5}", None)]


GOLD = {"answer": ["5"], "problem": [Problem(id="p", question="What is 2 + 3?", answer="5").model_dump_json()]}


@pytest.mark.parametrize(
    ("completion", "outcome", "process"),
    [
        (trajectory(("\\boxed{6}", "no", "incorrect"), ("\\boxed{5}", "yes", "correct")), 1.0, 1.0),
        (trajectory(("\\boxed{6}", "no", "correct")), 0.0, 0.0),
        (trajectory(("\\boxed{5}", "no", "incorrect"), ("\\boxed{5}", "yes", "correct")), 1.0, 0.5),
        (trajectory(("\\boxed{6}", "no", "incorrect"), ("\\boxed{7}", "no", "incorrect")), 0.0, 1.0),
        ("The answer is 5.", 1.0, 0.0),
        ("", 0.0, 0.0),
        (f"\\boxed{{5}}\n\n{VERIFY_LEAD}\nI am not sure.", 1.0, 0.0),
    ],
)
def test_outcome_and_process_rewards(completion: str, outcome: float, process: float) -> None:
    for columns in (GOLD, {"answer": GOLD["answer"]}):
        assert outcome_reward(["p"], [completion], None, **columns, trainer_state=None) == [outcome]
        assert process_reward(["p"], [completion], None, **columns, trainer_state=None) == [process]
    conversational = [[{"role": "assistant", "content": completion}]]
    assert outcome_reward([[{"role": "user", "content": "q"}]], conversational, None, **GOLD) == [outcome]


def test_rewards_need_a_gold_column_and_setup_drops_zero_weights() -> None:
    with pytest.raises(ValueError, match="'answer'"):
        outcome_reward(["p"], ["\\boxed{5}"], None, trainer_state=None)
    assert reward_setup() == ([outcome_reward, process_reward], [1.0, 1.0])
    assert reward_setup(process_weight=0.0) == ([outcome_reward], [1.0])
    with pytest.raises(ValueError):
        reward_setup(0.0, 0.0)


def test_forced_verdict_takes_the_likelier_word() -> None:
    def completion(top: dict[str, float]) -> Completion:
        return Completion(text=" x", logprobs=[TokenLogprob(token=" x", logprob=-1.0, top=top)])

    assert _forced_verdict(completion({" correct": -2.0, " incorrect": -0.5})) == "incorrect"
    assert _forced_verdict(completion({" correct": -0.2})) == "correct"
    assert _forced_verdict(completion({" The": -0.1})) is None
    assert _forced_verdict(Completion(text=" incorrect")) == "incorrect"
    assert _forced_verdict(Completion(text="", error="boom")) is None
