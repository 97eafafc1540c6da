"""S2R logic without the model: difficulty table, verdicts, the trajectory layout, rewards, the SFT view's labels,
and the builder on the shared scripted engine (forced verdicts, segmentation the rewards read back)."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from judgeforge.builders.base import BuildContext
from judgeforge.builders.s2r import S2RStats, S2RTrajectoriesBuilder, S2RTrajectoriesConfig, difficulty_level, parse_difficulty_table
from judgeforge.chat import render_prompt
from judgeforge.cli import main
from judgeforge.engines.base import Completion, Request, SamplingParams, TokenLogprob
from judgeforge.errors import UserError
from judgeforge.formats.s2r import (
    POLICY_INSTRUCTIONS,
    RETRY_LEAD,
    VERDICT_LEAD,
    VERIFICATION,
    VERIFY_LEAD,
    attempt_segment,
    parse_trajectory,
    parse_verdict,
    policy_messages,
    policy_user_message,
    verification_segment,
    verify_user_message,
)
from judgeforge.schemas.s2r import IGNORE_INDEX, S2RTrajectoryRow, sft_view
from judgeforge.sources import Problem
from judgeforge.train.rewards import outcome_reward, process_reward
from tests.scripted import ScriptedEngine


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
    both = parse_verdict("Verdict: correct\nVerdict: incorrect")
    assert both.verdict is None and both.contradictory
    none = parse_verdict("The answer is correct.")
    assert none.verdict is None and not none.contradictory


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Verdict: incorrect", "incorrect"),
        ("VERDICT: INCORRECT", "incorrect"),
        ("**Verdict:** Correct.", "correct"),
        ("  Verdict: _incorrect_!  ", "incorrect"),
        ("It looks correct at first.\nVerdict: incorrect", "incorrect"),
        ("It is not incorrect.\nVerdict: correct", "correct"),
        ("Verdict: correct\nI checked again.\nVerdict: correct", "correct"),
        ("The verdict: correct", None),
        ("My verdict: incorrect", None),
        ("XVerdict: correct", None),
        ("Verdict: not correct", None),
        ("Verdict: correct or incorrect", None),
        ("Verdict: correctly solved", None),
        ("Verdict: incorrectness", None),
        ("Verdict: correct, since 2 + 3 = 5", None),
        ("So 5 is right. Verdict: correct", None),
        ("Verdict: correct\nVerdict: incorrect", None),
        ("correct", None),
    ],
)
def test_s2r_verdict_parser_reads_only_the_explicit_verdict_line(text: str, verdict: str | None) -> None:
    """Only a line that is exactly "Verdict: correct|incorrect" (any case, markdown, one final "." or "!")
    counts; "incorrect" is never read as "correct", "not correct" is no verdict, contradictions give none."""
    assert parse_verdict(text).verdict == verdict


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
        ("The answer is 5.", 0.0, 0.0),  # never verified: no answer stands
        ("", 0.0, 0.0),
        (f"\\boxed{{5}}\n\n{VERIFY_LEAD}\nI am not sure.", 0.0, 0.0),  # no verdict: neither accepted nor rejected
    ],
)
def test_outcome_and_process_rewards(completion: str, outcome: float, process: float) -> None:
    for columns in (GOLD, {"answer": GOLD["answer"]}):
        assert outcome_reward(["p"], [completion], None, **columns, trainer_state=None) == [outcome]
        assert process_reward(["p"], [completion], None, **columns, trainer_state=None) == [process]
    conversational = [[{"role": "assistant", "content": completion}]]
    assert outcome_reward([[{"role": "user", "content": "q"}]], conversational, None, **GOLD) == [outcome]


def test_rewards_need_a_gold_column() -> None:
    with pytest.raises(ValueError, match="'answer'"):
        outcome_reward(["p"], ["\\boxed{5}"], None, trainer_state=None)


def test_forced_verdict_takes_the_likelier_word() -> None:
    def completion(top: dict[str, float]) -> Completion:
        return Completion(text=" x", logprobs=[TokenLogprob(token=" x", logprob=-1.0, top=top)])

    def forced(c: Completion) -> str | None:
        return VERIFICATION.vocabulary.read(c).verdict

    assert forced(completion({" correct": -2.0, " incorrect": -0.5})) == "incorrect"
    assert forced(completion({" correct": -0.2})) == "correct"
    assert forced(completion({" The": -0.1})) is None
    assert forced(Completion(text=" incorrect")) == "incorrect"
    assert forced(completion({" Correct": -1.0, "correct": -1.0, " incorrect": -0.8})) == "correct"  # case and space variants add up


def test_failed_verifications_and_verdict_slots_are_dropped_and_counted() -> None:
    """A failed verification is no verification; a failed call at its verdict slot leaves it unforced."""

    def respond(request: Request, params: SamplingParams, k: int) -> Completion | str:
        user = request.messages[-1]["content"]
        if user.startswith(POLICY_INSTRUCTIONS):
            return "\\boxed{5}" if k < 4 else "\\boxed{7}"
        if request.prefix.endswith(VERDICT_LEAD):
            return Completion(text="", error="server error")
        return Completion(text="", error="server error") if user.startswith("Below") and "7" in user.rsplit(": ", 1)[1] else "It fits."

    builder = S2RTrajectoriesBuilder(S2RTrajectoriesConfig(styles="confirmative"), BuildContext({"policy": ScriptedEngine(respond)}, seed=1, run_id="r"))
    assert builder.build([Problem(id="p", question="What is 2 + 3?", answer="5")]) == []
    stats = builder.stats
    assert stats[S2RStats.VERIFICATIONS_FAILED] == 1 and stats[S2RStats.VERIFICATIONS] == 1  # only the one for 5 came back
    assert stats[S2RStats.VERDICT_SLOTS_FAILED] == 1 and stats[S2RStats.VERDICTS_UNPARSABLE] == 1 and stats[S2RStats.VERDICTS_FORCED] == 0


@pytest.mark.parametrize(
    ("completion", "outcome"),
    [
        (f"\\boxed{{5}}\n\n{VERIFY_LEAD}\n5 looks off.\nVerdict: incorrect", 0.0),  # rejects its correct answer and stops
        (trajectory(("\\boxed{5}", "5 looks off.", "incorrect")), 0.0),  # ... says it will retry, and stops
        (trajectory(("\\boxed{6}", "no", "incorrect"), ("\\boxed{5}", "5 looks off.", "incorrect")), 0.0),
        (trajectory(("\\boxed{5}", "yes", "correct")) + f"\n\n{RETRY_LEAD}\n\n\\boxed{{5}}", 0.0),  # an unverified last attempt
        (trajectory(("\\boxed{6}", "no", "incorrect"), ("\\boxed{5}", "yes", "correct")), 1.0),
    ],
)
def test_s2r_outcome_reward_grades_the_final_state_not_the_last_attempt(completion: str, outcome: float) -> None:
    """The answer that stands is the last attempt accepted by its own verification; a rejected one is no answer."""
    assert outcome_reward(["p"], [completion], None, **GOLD) == [outcome]


# The builder on the shared scripted engine: answers are read off the requests. Gold is 5 everywhere.
VERIFICATIONS = {
    "5": "2 + 3 = 5 fits.\nVerdict: correct\nChecked twice.\nVerdict: correct",  # two agreeing lines: one is kept
    "7": "7 is too big.\nVerdict: incorrect",
    "6": "6 is one too many.",  # no verdict line: forced, and the forced verdict is right
}
SAMPLES = {
    "What is 2 + 3?": ["\\boxed{5}"] * 4 + ["\\boxed{7}"],  # every verdict parsed
    "What is 1 + 4?": ["\\boxed{5}"] * 4 + ["\\boxed{6}"],  # the wrong answer's verdicts are forced
    "What is 0 + 5?": ["I add 0 and 5. Let me check this answer. It is \\boxed{5}."] * 3  # the lead mid-line: one attempt
    + [f"\\boxed{{5}}\n{VERIFY_LEAD}\nIt fits.", "\\boxed{7}"],  # the lead starting a line: cannot be an attempt
}


def s2r_respond(request: Request, params: SamplingParams, k: int) -> Completion | str:
    user = request.messages[-1]["content"]
    if user.startswith(POLICY_INSTRUCTIONS):
        return SAMPLES[user.split("Problem: ", 1)[1]][k]
    answer = user.rsplit("Proposed answer: ", 1)[1]
    if request.prefix.endswith(VERDICT_LEAD):  # the forced verdict: the right one, by log-probabilities
        right = -0.1 if answer == "5" else -3.0
        return Completion(text=" x", logprobs=[TokenLogprob(token=" x", logprob=-0.1, top={" correct": right, " incorrect": -3.1 - right})])
    return VERIFICATIONS[answer]


def scripted_s2r(**config: Any) -> tuple[S2RTrajectoriesBuilder, list[S2RTrajectoryRow]]:
    problems = [Problem(id=f"p{i}", question=q, answer="5") for i, q in enumerate(SAMPLES)]
    builder = S2RTrajectoriesBuilder(S2RTrajectoriesConfig(**config), BuildContext({"policy": ScriptedEngine(s2r_respond)}, seed=1, run_id="r"))
    return builder, builder.build(problems)  # type: ignore[return-value]


def test_s2r_forced_verifications_are_not_training_targets_unless_allowed() -> None:
    builder, rows = scripted_s2r()
    stats = builder.stats
    assert [r.id for r in rows] == ["p0", "p2"]  # p1's wrong answer was rejected only by forced verdicts
    assert stats["verdicts_forced"] == 2 and stats["verifications_forced_excluded"] == 2
    assert stats["no_trajectory_only_forced_verdicts"] == 1 and stats["trajectories_with_forced_verdicts"] == 0
    assert stats["trajectories"] + sum(v for k, v in stats.items() if k.startswith("no_trajectory_")) == stats["questions"] == 3
    for row in rows:
        for segment in row.segments[1::2]:  # every verification carries exactly one parsed verdict, the label's
            parsed = parse_verdict(segment.text)
            assert not segment.forced and parsed.lines == 1 and parsed.verdict == segment.verdict
            assert parsed.verdict == ("correct" if segment.answer_correct else "incorrect")
    report = dict(S2RTrajectoriesBuilder.report(dict(stats)))
    assert report["  forced verdicts as training targets"].startswith("2 valid verifications excluded, 1 questions lost their trajectory")
    assert "only forced verdicts 1" in report["no trajectory because"]

    builder, rows = scripted_s2r(allow_forced_verdicts=True)
    assert [r.id for r in rows] == ["p0", "p1", "p2"]
    forced = [s for s in rows[1].segments if s.forced]
    assert [(s.answer, s.verdict) for s in forced] == [("6", "incorrect")] and parse_verdict(forced[0].text).verdict == "incorrect"
    assert builder.stats["trajectories_with_forced_verdicts"] == 1 and builder.stats["verifications_forced_excluded"] == 0


def test_s2r_allow_forced_verdicts_is_a_cli_option_off_by_default() -> None:
    result = CliRunner().invoke(main, ["build", "s2r-trajectories", "--help"])
    assert result.exit_code == 0 and "--allow-forced-verdicts" in result.output
    assert S2RTrajectoriesConfig().allow_forced_verdicts is False


def test_s2r_process_reward_cuts_a_completion_exactly_as_the_builder_laid_it_out() -> None:
    """A sentence holding the verification lead does not cut an attempt; a sample with the lead starting a
    line is not used; the rewards then score the builder's own trajectory as the builder labelled it."""
    builder, rows = scripted_s2r()
    row = next(r for r in rows if r.id == "p2")
    columns = {"answer": ["5"], "problem": [Problem(id="p2", question="What is 0 + 5?", answer="5").model_dump_json()]}
    assert process_reward(["p"], [row.completion], None, **columns) == [1.0]
    assert outcome_reward(["p"], [row.completion], None, **columns) == [1.0]
    assert row.segments[-2].text == "\n\nI add 0 and 5. Let me check this answer. It is \\boxed{5}."
    assert builder.stats["samples_with_connector"] == 1
    from judgeforge.formats.s2r import split_segments

    for row in rows:
        assert split_segments(row.completion) == [(s.role, s.text) for s in row.segments]


def merging_tokenizer(texts: list[str]) -> Any:
    """A word-level fast tokenizer whose pre-tokeniser keeps ".\\n\\n" as one piece, like Qwen2's and
    Llama-3's merge of "}.\\n\\n": a segment ending in "." and the next starting with "\\n\\n" share a token."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"\.\n\n|\n\n|\n|[^\s.]+|\.| +"), behavior="isolated")
    backend.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["[UNK]", "<eos>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", eos_token="<eos>")
    tokenizer.chat_template = "{% for m in messages %}<{{ m.role }}> {{ m.content }}\n{% endfor %}<assistant>\n"
    return tokenizer


def test_s2r_sft_view_tokenises_the_whole_completion_when_the_tokenizer_merges_across_segments() -> None:
    attempts = ("The answer is \\boxed{6}.", "The answer is \\boxed{5}.")
    checks = (("6 is too big.\nVerdict: incorrect", "incorrect"), ("2 + 3 = 5.\nVerdict: correct", "correct"))
    texts = [
        t
        for i, (a, (v, verdict)) in enumerate(zip(attempts, checks, strict=True))
        for t in (attempt_segment(a, first=i == 0), verification_segment(v, verdict))
    ]  # type: ignore[arg-type]
    row = {"policy_prompt": policy_user_message("What is 2 + 3?"), "segments": [{"text": t} for t in texts], "loss_mask": [0, 1, 1, 1]}
    completion = "".join(texts)
    tokenizer = merging_tokenizer([f"<user> {row['policy_prompt']}\n<assistant>", completion])
    prompt = render_prompt(tokenizer, policy_messages("What is 2 + 3?"))

    def ids(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    per_segment = [i for t in texts for i in ids(t)]
    assert per_segment != ids(completion)  # the old segment-by-segment ids are not what the model reads
    record = sft_view([row], tokenizer)[0]
    prompt_ids, eos = ids(prompt), tokenizer.eos_token_id
    assert record["input_ids"] == [*prompt_ids, *ids(completion), eos]
    pieces = tokenizer.convert_ids_to_tokens(ids(completion))
    labels = record["labels"][len(prompt_ids) : -1]
    assert record["labels"][: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids) and record["labels"][-1] == eos
    # trained iff the token lies wholly in a trained segment: the masked attempt and the ".\n\n" it shares
    # with the first verification are masked, the ".\n\n" between two trained segments is trained
    boundary = len(texts[0])
    starts = [s for s, _ in tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]
    masked = [p for p, s, label in zip(pieces, starts, labels, strict=True) if label == IGNORE_INDEX]
    assert all(s < boundary for s, label in zip(starts, labels, strict=True) if label == IGNORE_INDEX)
    assert all(s >= boundary for s, label in zip(starts, labels, strict=True) if label != IGNORE_INDEX)
    assert masked[-1] == ".\n\n" and pieces.count(".\n\n") == 3
    assert "".join(masked) == texts[0] + "\n\n"


def test_s2r_sft_mask_counts_trimmed_offset_gaps_for_both_neighbours() -> None:
    from judgeforge.schemas.s2r import trained_tokens

    # "ab cd": a post-processor trimmed the space (masked) off both tokens' offsets
    assert trained_tokens([(0, 2), (3, 5)], [True, True, False, True, True]) == [False, False]
    assert trained_tokens([(0, 2), (2, 5)], [True, True, False, True, True]) == [True, False]
    assert trained_tokens([(0, 2), (2, 2), (2, 4)], [False, False, True, True]) == [False, True, True]
