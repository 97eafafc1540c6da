"""S2R rows — self-verification trajectories and RL prompts — and their TRL views.

``s2r_trajectories``: one row per question that yielded a trajectory r = {s1, v1, ..., sk, vk}. The row
keeps the segments (attempt or verification, exact text including the connectors of
:mod:`judgeforge.formats.s2r`), the per-segment loss mask (0 on wrong attempts, 1 on
verifications and on the final correct attempt, as in the paper's m = {0,1,0,1,1,1}), the question's
Stage-0 accuracy and difficulty level, and every Stage-0 sample with every verification made of it, so
curation and review can see what the trajectory was drawn from.

Its SFT view is pre-tokenised: ``input_ids`` are the prompt (the row's ``policy_prompt`` user turn
rendered with the model's chat template, exactly as the policy saw it at sampling time), then the
completion — all segments joined — tokenised **once, as a whole**, then EOS. Tokenising segment by
segment would differ from that wherever the pre-tokeniser merges across a segment boundary (Qwen2 and
Llama-3 merge ``}.`` with the ``\\n\\n`` a segment starts with), giving ids the model never produces.
The loss mask is mapped onto the tokens by character offsets (so the tokenizer must be a fast one): a
token is trained iff every character it covers lies in a trained segment, so a token straddling a
masked and a trained segment is masked — the view never trains on masked text, at the price of not
training the one boundary token. Where a post-processor trims whitespace off the offsets, a token is
taken to cover the gaps on both sides of it too. ``labels`` copy ``input_ids`` except for -100 on the
prompt and on every masked token; EOS is trained (a trajectory ends in its trained final verification).
TRL 1.16's ``SFTTrainer`` keeps a ``labels`` column exactly as given — the robust way to honour the
mask (a ``completion_mask`` column is ignored unless ``completion_only_loss=True``, and
``assistant_only_loss`` needs ``{% generation %}`` markers SmolLM2's template lacks).

``s2r_rl_prompts``: one row per question with a gold answer, for RL: its RL view (for TRL's
``RLOOTrainer``, S2R's own trainer being RLOO-style, or ``GRPOTrainer``) is a conversational
``prompt`` plus the ``answer`` and ``problem`` (the whole problem as JSON, so reasoning-gym tasks are
graded by their own scorer) columns that :mod:`judgeforge.train.rewards` reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import BaseModel

from judgeforge.chat import render_prompt
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.kind import (
    DISCARD_NOTE,
    S2R,
    TRL_RLOO,
    TRL_SFT,
    CardExtras,
    Kind,
    NotTrained,
    ReviewField,
    ReviewMeta,
    ReviewSpec,
    Row,
    TrainDefaults,
    VerdictCount,
    Verdicts,
    or_placeholder,
    problem_field,
    tally,
    view,
    yes_no,
)

IGNORE_INDEX = -100


class Verification(BaseModel):
    """One verification the model wrote of one proposed final answer."""

    answer: str
    style: Literal["problem-solving", "confirmative"]
    text: str
    verdict: Literal["correct", "incorrect"] | None
    forced: bool
    valid: bool


class Sample(BaseModel):
    """One Stage-0 response to the question."""

    index: int
    text: str
    answer: str | None
    correct: bool
    finish_reason: str


class Segment(BaseModel):
    """One segment of a trajectory. ``answer_correct`` is the correctness of the attempt (for a
    verification: of the attempt it verifies); a verification's ``verdict`` always matches it."""

    role: Literal["attempt", "verification"]
    text: str
    sample_index: int
    answer: str
    answer_correct: bool
    style: Literal["problem-solving", "confirmative"] | None
    verdict: Literal["correct", "incorrect"] | None
    forced: bool


class S2RTrajectoryRow(BaseRow):
    kind: ClassVar[str] = "s2r_trajectories"

    question: str
    policy_prompt: str
    gold_answer: str | None
    accuracy: float
    num_samples: int
    num_correct: int
    difficulty_level: int
    num_attempts: int
    segments: list[Segment]
    loss_mask: list[int]
    completion: str
    samples: list[Sample]
    verifications: list[Verification]


class ChatMessage(BaseModel):
    role: str
    content: str


class S2RPromptRow(BaseRow):
    kind: ClassVar[str] = "s2r_rl_prompts"

    question: str
    prompt: list[ChatMessage]
    answer: str | None
    problem: str


def sft_view(rows: Iterable[dict[str, Any]], tokenizer: Any) -> list[dict[str, list[int]]]:
    """Pre-tokenised ``input_ids`` / ``labels`` records with -100 on the prompt and on masked segments."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("the S2R SFT view maps its loss mask by character offsets and needs a fast tokenizer (PreTrainedTokenizerFast)")
    out = []
    for row in rows:
        prompt = render_prompt(tokenizer, [{"role": "user", "content": row["policy_prompt"]}])
        input_ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        labels = [IGNORE_INDEX] * len(input_ids)
        texts = [segment["text"] for segment in row["segments"]]
        encoded = tokenizer("".join(texts), add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoded["input_ids"])
        trained = trained_tokens([(a, b) for a, b in encoded["offset_mapping"]], trained_chars(texts, row["loss_mask"]))
        input_ids += ids
        labels += [i if t else IGNORE_INDEX for i, t in zip(ids, trained, strict=True)]
        input_ids.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
        out.append({"input_ids": input_ids, "labels": labels})
    return out


def trained_chars(texts: list[str], loss_mask: list[int]) -> list[bool]:
    """Per character of the joined segment texts: whether its segment is trained."""
    return [bool(trained) for text, trained in zip(texts, loss_mask, strict=True) for _ in text]


def trained_tokens(offsets: list[tuple[int, int]], trained: list[bool]) -> list[bool]:
    """Whether each token is trained: iff every character it covers is (see the module docstring).

    Token ``i`` covers ``[start_i, end_i)`` widened to the previous token's end and the next token's
    start (gaps left by trimmed offsets count for both neighbours); a token covering no character counts
    the one at its position.
    """
    size = len(trained)
    flags = []
    for i, (start, end) in enumerate(offsets):
        low = min(start, offsets[i - 1][1]) if i else 0
        high = max(end, offsets[i + 1][0]) if i + 1 < len(offsets) else size
        if low >= high:
            low, high = min(low, size - 1), min(low, size - 1) + 1
        flags.append(all(trained[max(low, 0) : high]))
    return flags


def rl_view(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``prompt`` (conversational) with the ``answer`` and ``problem`` columns the S2R rewards read."""
    return [{"prompt": [dict(m) for m in row["prompt"]], "answer": row["answer"], "problem": row["problem"]} for row in rows]


# --- review ----------------------------------------------------------------------------------------


def _segment_heading(segment: Row, number: int, trained: int) -> str:
    what = "right" if segment["answer_correct"] else "wrong"
    if segment["role"] == "attempt":
        head = f"Attempt {number}: answer `{segment['answer']}` ({what})"
    else:
        style, verdict = segment["style"] or "unknown", segment["verdict"] or "none"
        head = f"Verification {number} ({style} style) of answer `{segment['answer']}` ({what}): verdict **{verdict}**"
    return f"#### {head}" + ("" if trained else " · *not trained*")


def _trajectory(row: Row) -> str:
    counts = {"attempt": 0, "verification": 0}
    parts = []
    for segment, trained in zip(row["segments"], row["loss_mask"], strict=True):
        counts[segment["role"]] += 1
        parts.append(f"{_segment_heading(segment, counts[segment['role']], trained)}\n\n{or_placeholder(segment['text'].strip(), '*(empty)*')}")
    return or_placeholder("\n\n".join(parts), "*(no segments)*")


def _trajectory_answer(row: Row) -> tuple[str, float | None]:
    # Every verdict in a trajectory matches its attempt's correctness; the confidence is the share of all the
    # question's Stage-0 verifications whose verdict was right.
    made = row["verifications"]
    return "yes", round(sum(v["valid"] for v in made) / len(made), 4) if made else None


TRAJECTORIES_REVIEW = ReviewSpec(
    fields=(problem_field(), ReviewField("trajectory", "Trajectory", _trajectory)),
    questions=(
        yes_no(
            "verifications_valid",
            "Are the verifications valid?",
            "Each verification checks the attempt before it and ends in a verdict. Valid: every verdict is right and "
            "every verification's reasoning actually checks the answer (not just restates it).",
            _trajectory_answer,
        ),
    ),
    guidelines=(
        "Each record is a self-verification trajectory the policy will be fine-tuned to write: attempts at the problem, "
        "each followed by a verification ending in `Verdict: correct` or `Verdict: incorrect`, until an attempt is "
        "verified correct. Wrong attempts are not trained on. Answer **yes** if the verifications are valid (kept), "
        "**no** if any is not (dropped). " + DISCARD_NOTE
    ),
    metadata=(
        ReviewMeta("difficulty_level", "integer", lambda r: r["difficulty_level"]),
        ReviewMeta("num_attempts", "integer", lambda r: r["num_attempts"]),
        ReviewMeta("accuracy", "float", lambda r: r["accuracy"]),
    ),
)


def _gold(row: Row) -> str:
    solution = json.loads(row["problem"]).get("solution")
    answer = f"**{row['answer']}**" if row["answer"] is not None else "*(none)*"
    return answer + (f"\n\nGold solution:\n\n{solution}" if solution else "")


RL_PROMPTS_REVIEW = ReviewSpec(
    fields=(problem_field(answer=None), ReviewField("answer", "Gold answer", _gold)),
    questions=(
        yes_no(
            "gold_answer_right",
            "Is the gold answer right for this question?",
            "The RL rewards grade the policy's answers against the gold answer: is it the right (and the only right) answer?",
            lambda r: None if r["answer"] is None else ("yes", None),
        ),
    ),
    guidelines=(
        "Each record is a question the policy will be trained on by RL, rewarded when its final answer matches the "
        "gold answer. Answer **yes** if the gold answer is right (kept), **no** if it is wrong or the question is "
        "ambiguous (dropped). " + DISCARD_NOTE
    ),
    metadata=(ReviewMeta("gym_task", "terms", lambda r: (json.loads(r["problem"]).get("meta") or {}).get("gym_task")),),
)


def count_verdicts(table: pa.Table, config: Mapping[str, Any]) -> Verdicts:
    """The verdict of every verification segment of every trajectory (the ones the data trains on)."""
    verdicts = (
        (i, None, None, segment["verdict"], segment["forced"])
        for i, segments in enumerate(table.column("segments").to_pylist())
        for segment in segments
        if segment["role"] == "verification"
    )
    return tally(verdicts, "the model")


TRAJECTORIES_KIND = Kind(
    name="s2r_trajectories",
    row=S2RTrajectoryRow,
    builder=("s2r-trajectories", "judgeforge.builders.s2r:S2RTrajectoriesBuilder"),
    paper=S2R,
    views={
        "sft": view(sft_view, "input_ids+labels", TRL_SFT, needs_tokenizer=True),
        "dpo": NotTrained("S2R initialises by SFT on trajectories, then trains by RL on s2r_rl_prompts"),
        "rl": NotTrained("the RL stage trains on the s2r_rl_prompts kind"),
    },
    train_defaults={"sft": TrainDefaults(5e-6, 5, 32, "Ma et al. 2025, S2R initialisation: 5 epochs, lr 5e-6, batch 32")},
    default_spec="s2r_trajectories.yaml",
    review=TRAJECTORIES_REVIEW,
    card=CardExtras("Self-verify and self-correct trajectories (S²R)", ("text-generation",), ("sft", "self-verification")),
    verdicts=VerdictCount(("segments",), count_verdicts),
)
RL_PROMPTS_KIND = Kind(
    name="s2r_rl_prompts",
    row=S2RPromptRow,
    builder=("s2r-rl-prompts", "judgeforge.builders.s2r_prompts:S2RPromptsBuilder"),
    paper=S2R,
    views={
        "sft": NotTrained("RL prompts carry no target completion"),
        "dpo": NotTrained("RL prompts carry no preference pairs"),
        "rl": view(rl_view, "prompt+reward columns", TRL_RLOO),
    },
    train_defaults={
        "rl": TrainDefaults(
            5e-7,
            1,
            32,
            "Ma et al. 2025, S2R RL: RLOO-style trainer, lr 5e-7, KL 0.01, sampling at T = 0.7; epochs and batch not found (ours: 1, 32)",
            trl={"beta": 0.01, "temperature": 0.7},
        )
    },
    default_spec="s2r_rl_prompts.yaml",
    review=RL_PROMPTS_REVIEW,
    card=CardExtras("RL prompts with verifiable answers (S²R)", ("reinforcement-learning", "text-generation"), ("rloo", "self-verification")),
)
