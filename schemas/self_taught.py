"""Self-Taught Evaluator rows: synthetic pairwise judgments a judge M_t got right, the data for M_{t+1}.

Wang et al., "Self-Taught Evaluators", 2024, arXiv 2408.02666. A row is one kept judgment of one
synthetic pair: the instruction x, the "similar but different" instruction x' the model wrote, y^w (a
response to x) and y^l (a response to x', so plausibly a worse answer to x), which position y^w was
shown in (``label``: "A" or "B", also the kept verdict, since only correct verdicts are kept), the kept
judgment (reasoning + ``[[A]]``/``[[B]]``; its text parses to exactly ``label``, and it is a forced
verdict only when the build allowed forced verdicts as targets), every judgment sampled for the pair
with its verdict, ``rejected_indices`` (the sampled judgments that may stand against the kept one in a
preference pair: shown in the same order, naming the worse response, in a seeded order; forced ones
only when the build allowed forced verdicts as targets), and the counts. ``iteration`` and
``judge_model`` say which M_t wrote the judgments, so ``loop`` can chain M_t → data → M_{t+1}.

TRL views, both on the pairwise response-judge prompt laid out exactly as the judge saw it (y^w in
the ``label`` position), the judgments in the format :func:`judgeforge.formats.judge.parse_verdict`
reads — so a model trained on them judges in the format the builder parses:

- SFT (the paper): conversational ``prompt``/``completion``, trained on the kept judgment only;
- DPO (the released Llama-3.1 judge: SFT, then DPO β 0.1 + NLL, i.e. TRL's ``loss_type: [sigmoid,
  sft]``): conversational ``prompt``/``chosen``/``rejected`` — the kept (correct) judgment over the
  first of ``rejected_indices``, an incorrect one of the same pair and order. A row without one gives
  no pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import BaseModel

from judgeforge.formats.judge import response_judge_message
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.kind import (
    DISCARD_NOTE,
    SELF_TAUGHT_EVALUATORS,
    TRL_DPO,
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
    kept_judgment_field,
    or_placeholder,
    problem_field,
    tally,
    view,
    yes_no,
)


class SampledJudgment(BaseModel):
    """One of the N judgments sampled for a pair, in its own presentation order.

    ``correct``: the verdict picks y^w, whether the judge wrote it or it was forced (``forced``, with the
    judge's P(A) in ``p_a``) — the build's correct-verdict rate counts parsed verdicts only.
    """

    index: int
    better_shown_as: Literal["A", "B"]
    text: str
    verdict: Literal["A", "B"] | None
    forced: bool
    p_a: float | None
    correct: bool


class SelfTaughtRow(BaseRow):
    kind: ClassVar[str] = "ste_judgments"
    schema_version: ClassVar[str] = "2"  # 2: rejected_indices

    instruction: str
    similar_instruction: str
    better_response: str
    worse_response: str
    gold_answer: str | None
    better_verified: bool | None
    worse_verified: bool | None
    label: Literal["A", "B"]
    judgment: str
    judgment_index: int
    judgment_forced: bool
    judgments: list[SampledJudgment]
    rejected_indices: list[int]
    num_judgments: int
    num_correct: int
    num_parsed: int
    num_forced: int
    num_unparsable: int
    iteration: int
    judge_model: str


def presented(row: dict[str, Any]) -> tuple[str, str]:
    """(Response A, Response B) of a row's kept judgment."""
    if row["label"] == "A":
        return row["better_response"], row["worse_response"]
    return row["worse_response"], row["better_response"]


def sft_view(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversational ``prompt`` / ``completion`` for TRL's SFTTrainer: the judge prompt as presented, then
    the kept judgment, the only part trained on."""
    return [{"prompt": prompt_message(row), "completion": [{"role": "assistant", "content": row["judgment"]}]} for row in rows]


def prompt_message(row: dict[str, Any]) -> list[dict[str, str]]:
    """The user turn of a row's kept judgment: the judge prompt with the responses as presented."""
    return [{"role": "user", "content": response_judge_message(row["instruction"], *presented(row))}]


def dpo_view(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversational ``prompt`` / ``chosen`` / ``rejected`` for TRL's DPOTrainer: the kept judgment over an
    incorrect one sampled for the same pair in the same order (the first of ``rejected_indices``)."""
    records = []
    for row in rows:
        if not row["rejected_indices"]:
            continue
        rejected = next(j for j in row["judgments"] if j["index"] == row["rejected_indices"][0])
        records.append(
            {
                "prompt": prompt_message(row),
                "chosen": [{"role": "assistant", "content": row["judgment"]}],
                "rejected": [{"role": "assistant", "content": rejected["text"]}],
            }
        )
    return records


# --- review ----------------------------------------------------------------------------------------


def _model_answer(row: Row) -> tuple[str, float | None]:
    # Only verdicts picking y^w are kept; the confidence is the share of sampled judgments that picked it.
    return "yes", round(row["num_correct"] / row["num_judgments"], 4) if row["num_judgments"] else None


REVIEW = ReviewSpec(
    fields=(
        problem_field("instruction", title="Instruction"),
        ReviewField("response_a", "Response A", lambda r: or_placeholder(presented(r)[0], "*(empty)*")),
        ReviewField("response_b", "Response B", lambda r: or_placeholder(presented(r)[1], "*(empty)*")),
        kept_judgment_field("Response"),
    ),
    questions=(
        yes_no(
            "verdict_correct",
            "Is the kept verdict correct?",
            "Read the instruction and both responses yourself: is the response the judgment picks really the better "
            "answer to the instruction, and does the judgment's reasoning hold?",
            _model_answer,
        ),
    ),
    guidelines=(
        "Each record is a judgment the judge model will be fine-tuned to write: an instruction, two responses (A and "
        "B) and a judgment ending in the verdict `[[A]]` or `[[B]]`. One response answers the instruction, the other "
        "a similar but different instruction, so it is meant to be the worse answer; only judgments picking the "
        "first were kept. Answer **yes** if the verdict is correct (kept), **no** if it is not (dropped). " + DISCARD_NOTE
    ),
    metadata=(
        ReviewMeta("label", "terms", lambda r: r["label"]),
        ReviewMeta("iteration", "integer", lambda r: r["iteration"]),
        ReviewMeta("judge_model", "terms", lambda r: r["judge_model"]),
        ReviewMeta("judgment_forced", "terms", lambda r: str(r["judgment_forced"]).lower()),
        ReviewMeta("num_correct", "integer", lambda r: r["num_correct"]),
    ),
)


def count_verdicts(table: pa.Table, config: Mapping[str, Any]) -> Verdicts:
    """Every judgment sampled for a pair (once per pair, however many of its judgments became rows): y^w and y^l
    in the order the judgment showed them."""
    seen: dict[str, list[dict[str, Any]]] = {}
    for source, judgments in zip(table.column("source_id").to_pylist(), table.column("judgments").to_pylist(), strict=True):
        seen.setdefault(source, judgments)
    return tally(
        (source, *(("w", "l") if j["better_shown_as"] == "A" else ("l", "w")), j["verdict"], j["forced"])
        for source, judgments in seen.items()
        for j in judgments
    )


KIND = Kind(
    name="ste_judgments",
    row=SelfTaughtRow,
    builder=("self-taught", "judgeforge.builders.self_taught:SelfTaughtBuilder"),
    paper=SELF_TAUGHT_EVALUATORS,
    views={
        "sft": view(sft_view, "prompt+completion", TRL_SFT),
        "dpo": view(dpo_view, "conversational", TRL_DPO),
        "rl": NotTrained("Self-Taught judgments are supervised targets, not RL prompts"),
    },
    train_defaults={
        "sft": TrainDefaults(1e-6, 1, 32, "Wang et al. 2024, released judge SFT lr 1e-6; epochs and batch not found (ours: 1, 32)"),
        "dpo": TrainDefaults(
            1e-6,
            1,
            32,
            "Wang et al. 2024, released Llama-3.1 judge: DPO beta 0.1 + NLL (TRL: loss_type sigmoid + sft); its lr, NLL weight, epochs and batch not found "
            "(ours: lr 1e-6 as its SFT, NLL weight 1.0 as RPO, 1 epoch, batch 32)",
            trl={"beta": 0.1, "loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 1.0]},
        ),
    },
    default_spec="ste_judgments.yaml",
    review=REVIEW,
    card=CardExtras("Synthetic judge training data (Self-Taught Evaluator)", ("text-generation",), ("llm-as-a-judge", "reward-model")),
    verdicts=VerdictCount(("source_id", "judgments"), count_verdicts),
)
