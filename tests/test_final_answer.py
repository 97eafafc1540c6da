"""Final-answer detection: property tests of the one rule, and the builders that inherit it.

Texts are built from parts whose meaning is known by construction -- reasoning sentences that state no
answer (some of them the known false positives, "To find the answer: first ..."), explicit final-answer
forms in mixed case, surrounding noise -- and the detector must agree with the construction. The last
tests check that the step search and the rollouts take "final" from the same rule.
"""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from judgeforge.builders.base import BuildContext
from judgeforge.builders.rollouts import rollout_values
from judgeforge.builders.step_prefs import StepPrefsBuilder, StepPrefsConfig
from judgeforge.engines.base import Completion, Request, SamplingParams
from judgeforge.formats.judge import format_judgment
from judgeforge.sources import Problem
from judgeforge.verify import extract_answer, has_final_answer
from tests.scripted import ScriptedEngine

# Sentences that state no final answer, each ending a sentence.
REASONING = (
    "To find the answer: first compute 3 + 4.",
    "Let's find the answer.",
    "The answer is not obvious yet, so let us compute 3 + 4 first.",
    "We know the answer is 7 minus 3, so we compute 7 - 3 = 4 next.",
    "Answer: first add the two numbers.",
    "Tom has 3 apples and buys 4 more.",
    "So 3 + 4 = 7.",
    "Now, 12 / 4 = 3.",
)
# Noise that cannot spell "answer" (no "w"), a box, a "####" line or a header; made into a sentence.
NOISE = st.text(alphabet=string.ascii_letters.replace("w", "").replace("W", "") + string.digits + " +-=()", min_size=1, max_size=30).map(
    lambda s: f"{s.strip() or 'x'}."
)
REASONING_SENTENCE = st.one_of(st.sampled_from(REASONING), NOISE)
ANSWERS = st.one_of(st.integers(-10_000, 10_000).map(str), st.sampled_from(["3.5", "\\frac{1}{2}", "x+1", "Paris", "2\\sqrt{2}"]))
PHRASES = ("The answer is", "So the answer is", "Therefore, the answer is", "The final answer is", "Final answer:", "Answer:")


@st.composite
def mixed_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.swapcase() if flip else c for c, flip in zip(text, flips, strict=True))


def reasoning(draw: st.DrawFn, min_size: int = 0) -> str:
    return " ".join(draw(st.lists(REASONING_SENTENCE, min_size=min_size, max_size=4)))


@given(st.data())
def test_reasoning_alone_states_no_final_answer(data: st.DataObject) -> None:
    text = reasoning(data.draw, min_size=1)
    assert extract_answer(text) is None
    assert not has_final_answer(text)


@given(st.data(), ANSWERS, st.sampled_from(PHRASES), st.sampled_from(["", ".", "!", " ", "\n", "**"]))
def test_closing_answer_phrase_is_final(data: st.DataObject, answer: str, phrase: str, end: str) -> None:
    text = f"{reasoning(data.draw)} {data.draw(mixed_case(phrase))} {answer}{end}".lstrip()
    assert extract_answer(text) == answer
    assert has_final_answer(text)


@given(st.data(), ANSWERS, st.sampled_from(PHRASES))
def test_answer_phrase_followed_by_more_reasoning_is_not_final(data: st.DataObject, answer: str, phrase: str) -> None:
    text = f"{reasoning(data.draw)} {data.draw(mixed_case(phrase))} {answer}. {reasoning(data.draw, min_size=1)}".lstrip()
    assert extract_answer(text) is None
    assert not has_final_answer(text)


@given(st.data(), st.lists(ANSWERS, min_size=1, max_size=3))
def test_boxed_answers_count_anywhere_and_the_last_wins(data: st.DataObject, answers: list[str]) -> None:
    text = " ".join(f"{reasoning(data.draw)} So we get \\boxed{{{a}}}. {reasoning(data.draw)}" for a in answers)
    assert extract_answer(text) == answers[-1]
    assert has_final_answer(text)


@given(st.data(), ANSWERS, st.sampled_from(PHRASES))
def test_boxed_answer_beats_a_closing_phrase(data: st.DataObject, answer: str, phrase: str) -> None:
    text = f"{reasoning(data.draw)} We get \\boxed{{{answer}}}. {reasoning(data.draw)} {phrase} 0."
    assert extract_answer(text) == answer


@given(st.data(), ANSWERS)
def test_closing_hash_line_is_final_and_a_hash_heading_is_not(data: st.DataObject, answer: str) -> None:
    body = "\n".join(data.draw(st.lists(REASONING_SENTENCE, min_size=1, max_size=3)))
    assert extract_answer(f"{body}\n#### {answer}\n") == answer
    assert extract_answer(f"#### {answer}\n{body}") is None
    assert not has_final_answer(f"#### Step 2: {body}\n{body}")


@given(st.data(), st.lists(st.tuples(ANSWERS, st.sampled_from(PHRASES)), min_size=2, max_size=4))
def test_several_answer_phrases_the_closing_one_counts(data: st.DataObject, stated: list[tuple[str, str]]) -> None:
    text = " ".join(f"{reasoning(data.draw)} {data.draw(mixed_case(phrase))} {answer}." for answer, phrase in stated).strip()
    assert extract_answer(text) == stated[-1][0]
    assert extract_answer(f"{text} {reasoning(data.draw, min_size=1)}") is None


def test_final_answer_phrase_mid_step_does_not_end_the_step_search() -> None:
    """A first step "To find the answer: first compute 3 + 4 = 7." is intermediate: the search goes on to
    step 2, and only the step that closes with "The answer is 7." is marked final (EOS in the DPO view)."""
    steps = {
        "Step 1:": (" To find the answer: first compute 3 + 4 = 7.", " Compute 3 - 4 = -1."),
        "Step 2:": (" The answer is 7.", " The answer is 8."),
    }
    favourite = {" To find the answer: first compute 3 + 4 = 7.", " The answer is 7."}

    def respond(request: Request, params: SamplingParams, k: int) -> str:
        header = request.prefix[-len("Step 1:") :]
        if header in steps:
            return steps[header][k]
        message = request.messages[-1]["content"]
        step_a = message.split("[Step A]\n")[1].split("\n\n[Step B]")[0]
        return format_judgment("Checked.", "A" if f" {step_a}" in favourite else "B")

    engine = ScriptedEngine(respond)
    builder = StepPrefsBuilder(StepPrefsConfig(num_candidates=2, max_steps=4), BuildContext({"policy": engine, "judge": engine}, seed=0, run_id="r"))
    rows = builder.build([Problem(id="p", question="Tom has 3 apples and buys 4. How many?", answer="7")])
    assert [(r.step_index, r.chosen_is_final) for r in rows] == [(1, False), (2, True)]  # type: ignore[attr-defined]
    assert rows[-1].solution_status == "final_answer" and rows[-1].solution_correct is True  # type: ignore[attr-defined]


def test_final_answer_phrase_mid_step_in_a_cut_rollout_is_unfinished() -> None:
    """A rollout cut by its token budget right after "To find the answer: first ..." has no final answer."""
    engine = ScriptedEngine(lambda request, params, k: Completion(text=" To find the answer: first compute 3 + 4", finish_reason="length"))
    (result,) = rollout_values(engine, [(Problem(id="p", question="3 + 4?", answer="7"), [])], 2, SamplingParams(max_tokens=8), 0)
    assert (result.unfinished, result.correct) == (2, 0)
