"""R-PRM rows — kept analyses (SFT), analysis preference pairs (DPO), per-step rewards — and TRL views.

Every row is about one evaluation input: a problem, the previous steps, the now step and its label
(Yes/No), with how many of the K sampled analyses matched the label, did not, or were malformed.
``rprm_sft``: one kept analysis whose verdict matches the label. ``rprm_prefs``: a label-matching
analysis (chosen) against a non-matching one (rejected). ``rprm_scores``: the scorer's reward for one
step — the mean P(Yes) over K sampled evaluations, or their Yes-vote fraction where the engine gave no
log-probabilities (``method`` says which) — with its solution's ProcessBench label and subset. The rows
do not depend on a threshold: the ProcessBench figure is computed from them (builders/rprm_score.py).

TRL views use the very analysis prompt the builders sampled with (formats/rprm.py): SFT
``prompt``/``completion`` (the user turn, then the analysis as the assistant turn, trained on the
completion only) and conversational DPO
``prompt`` / ``chosen`` / ``rejected``. An analysis is a whole assistant turn ending in its verdict, so
the EOS TRL appends is right here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import pyarrow as pa

from judgeforge.formats.rprm import analysis_user_message
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.kind import (
    DISCARD_NOTE,
    R_PRM,
    TRL_DPO,
    TRL_SFT,
    CardExtras,
    Kind,
    NotTrained,
    ReviewField,
    ReviewMeta,
    ReviewQuestion,
    ReviewSpec,
    Row,
    TrainDefaults,
    VerdictCount,
    Verdicts,
    or_placeholder,
    previous_steps_field,
    problem_field,
    tally,
    view,
    yes_no,
)


class RprmCaseRow(BaseRow):
    """The evaluation input and the outcome of its K analyses (shared by the SFT and preference rows)."""

    question: str
    previous_steps: list[str]
    now_step: str
    step_index: int
    label: str
    gold_answer: str | None
    num_analyses: int
    num_matching: int
    num_mismatching: int
    num_malformed: int


class RprmSftRow(RprmCaseRow):
    kind: ClassVar[str] = "rprm_sft"

    analysis: str
    verdict: str
    forced_verdict: bool
    analysis_index: int


class RprmPrefsRow(RprmCaseRow):
    kind: ClassVar[str] = "rprm_prefs"

    chosen: str
    rejected: str
    chosen_verdict: str
    rejected_verdict: str
    chosen_forced_verdict: bool
    rejected_forced_verdict: bool
    chosen_index: int
    rejected_index: int


class RprmScoreRow(BaseRow):
    kind: ClassVar[str] = "rprm_scores"

    subset: str
    question: str
    now_step: str
    step_index: int
    label: str
    reward: float | None
    method: str
    p_yes: list[float | None]
    votes: list[str | None]
    analyses: list[str]
    solution_first_wrong: int


def _user(row: dict[str, Any]) -> dict[str, str]:
    return {"role": "user", "content": analysis_user_message(row["question"], row["previous_steps"], row["now_step"])}


def sft_view(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversational ``prompt`` / ``completion`` for TRL's SFTTrainer: the analysis prompt, then the kept
    analysis, the only part trained on."""
    return [{"prompt": [_user(row)], "completion": [{"role": "assistant", "content": row["analysis"]}]} for row in rows]


def dpo_view(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversational ``prompt`` / ``chosen`` / ``rejected`` for TRL's DPOTrainer."""
    return [
        {
            "prompt": [_user(row)],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }
        for row in rows
    ]


# --- review ----------------------------------------------------------------------------------------

REWARD_SIDE_THRESHOLD = 0.5  # a reward at or above it says Yes (``score rprm``'s default threshold)
_MEANING = {"Yes": "the step is correct", "No": "the step is wrong"}


def _verdict(verdict: str | None) -> str:
    return f"**{verdict}** ({_MEANING[verdict]})" if verdict in _MEANING else "**none**"


def _analysis_field(column: str, verdict: str, title: str) -> ReviewField:
    return ReviewField(column, title, lambda r: f"Verdict: {_verdict(r[verdict])}\n\n" + or_placeholder(r[column], "*(empty)*"))


_NOW_STEP = ReviewField("now_step", "Step under review", lambda r: or_placeholder(r["now_step"], "*(empty)*"))


def _case_answer(row: Row) -> tuple[str, float | None]:
    # The kept verdict matches the step's label; the confidence is the share of valid analyses that matched it.
    valid = row["num_matching"] + row["num_mismatching"]
    return "yes", round(row["num_matching"] / valid, 4) if valid else None


def _flip_label(row: Row) -> Row:
    """A preference pair whose step label was wrong: the rejected analysis had the right verdict."""
    flipped = dict(row)
    flipped["label"] = "No" if row["label"] == "Yes" else "Yes"
    flipped["num_matching"], flipped["num_mismatching"] = row["num_mismatching"], row["num_matching"]
    for side in ("", "_verdict", "_forced_verdict", "_index"):
        flipped[f"chosen{side}"], flipped[f"rejected{side}"] = row[f"rejected{side}"], row[f"chosen{side}"]
    return flipped


def _reward_side(reward: float | None) -> str | None:
    """The Yes/No side of a step reward (None: no reward)."""
    return None if reward is None else "Yes" if reward >= REWARD_SIDE_THRESHOLD else "No"


def _scores_answer(row: Row) -> tuple[str, float | None] | None:
    # The step's reference label says whether the reward's side is right.
    side = _reward_side(row["reward"])
    return None if side is None else ("yes" if side == row["label"] else "no", None)


def _reward(row: Row) -> str:
    side = _reward_side(row["reward"])
    if side is None:
        return "*(no reward: no evaluation gave a verdict)*"
    how = "mean P(Yes)" if row["method"] == "p_yes" else "share of Yes votes" if row["method"] == "vote" else row["method"]
    return f"Reward **{row['reward']:.3f}** ({how} over {len(row['analyses'])} evaluations): side {_verdict(side)}"


def _evaluations(row: Row) -> str:
    parts = []
    for i, (text, vote, p_yes) in enumerate(zip(row["analyses"], row["votes"], row["p_yes"], strict=True), 1):
        p = "" if p_yes is None else f", P(Yes) {p_yes:.3f}"
        parts.append(f"#### Evaluation {i} (vote {vote or 'none'}{p})\n\n{or_placeholder(text, '*(empty)*')}")
    return or_placeholder("\n\n".join(parts), "*(no evaluations)*")


_CASE_META = (
    ReviewMeta("label", "terms", lambda r: r["label"]),
    ReviewMeta("step_index", "integer", lambda r: r["step_index"]),
    ReviewMeta("num_matching", "integer", lambda r: r["num_matching"]),
)
_CASE_GUIDE = (
    "Each record is one step of a step-by-step solution, with the problem and the steps before it, and an analysis "
    "that ends in a verdict: **Yes** (the step is correct) or **No** (it is wrong). The verdict matches the step's label. "
)
_JUDGE_STEP = "Judge the step under review yourself, given the problem and the previous steps. "

SFT_REVIEW = ReviewSpec(
    fields=(problem_field(), previous_steps_field(), _NOW_STEP, _analysis_field("analysis", "verdict", "Analysis (kept for training)")),
    questions=(
        yes_no(
            "verdict_right",
            "Is the analysis's verdict right for this step?",
            _JUDGE_STEP + "Does the analysis reach the right verdict, for sound reasons?",
            _case_answer,
        ),
    ),
    guidelines=_CASE_GUIDE + "Answer **yes** if the verdict is right (kept), **no** if it is not (dropped). " + DISCARD_NOTE,
    metadata=(*_CASE_META, ReviewMeta("forced_verdict", "terms", lambda r: str(r["forced_verdict"]).lower())),
)
PREFS_REVIEW = ReviewSpec(
    fields=(
        problem_field(),
        previous_steps_field(),
        _NOW_STEP,
        _analysis_field("chosen", "chosen_verdict", "Chosen analysis"),
        _analysis_field("rejected", "rejected_verdict", "Rejected analysis"),
    ),
    questions=(
        yes_no(
            "verdict_right",
            "Is the chosen analysis's verdict right for this step?",
            _JUDGE_STEP + "The rejected analysis reaches the other verdict.",
            _case_answer,
            no="relabel",
            no_label="no, the rejected analysis's verdict is right",
        ),
    ),
    guidelines=(
        _CASE_GUIDE + "The chosen analysis's verdict matches the label, the rejected one's does not. Answer **yes** if the chosen "
        "verdict is right (kept), **no** if the rejected one is (the step's label is flipped and the pair swapped). " + DISCARD_NOTE
    ),
    metadata=_CASE_META,
    relabel=_flip_label,
)
SCORES_REVIEW = ReviewSpec(
    fields=(
        problem_field(answer=None),
        _NOW_STEP,
        ReviewField("reward", "Reward of the step", _reward),
        ReviewField("evaluations", "Evaluations", _evaluations),
    ),
    questions=(
        ReviewQuestion(
            "reward_side_right",
            "Is the reward's Yes/No side right for this step?",
            {"yes": "yes", "no": "no"},
            {"yes": "keep", "no": "keep"},
            f"A reward of {REWARD_SIDE_THRESHOLD} or more says Yes (the step is correct), below it No. Judge the step yourself.",
            _scores_answer,
        ),
    ),
    guidelines=(
        "Each record is one step of a solution and the reward a process reward model gave it, with the evaluations it "
        "was averaged from. Answer **yes** if the reward's side (Yes: the step is correct, No: it is wrong) is right, "
        "**no** if it is not. The rewards are measurements: your answers measure the reward model (its agreement with "
        "you, and yours with the reference labels) and change no row; a discarded record is dropped. Use the note for "
        "anything worth telling the dataset's maintainers."
    ),
    metadata=(
        ReviewMeta("subset", "terms", lambda r: r["subset"] or None),
        ReviewMeta("method", "terms", lambda r: r["method"]),
        ReviewMeta("step_index", "integer", lambda r: r["step_index"]),
        ReviewMeta("reward_value", "float", lambda r: r["reward"]),
    ),
)


_RPRM = "She et al. 2025, R-PRM: 1 epoch, batch 128"
_ANALYST = "the analysis model"


def count_sft_verdicts(table: pa.Table, config: Mapping[str, Any]) -> Verdicts:
    """Each row's kept analysis: its Yes/No verdict, written or forced."""
    verdicts, forced = table.column("verdict").to_pylist(), table.column("forced_verdict").to_pylist()
    return tally(((i, None, None, v or None, f) for i, (v, f) in enumerate(zip(verdicts, forced, strict=True))), _ANALYST)


def count_prefs_verdicts(table: pa.Table, config: Mapping[str, Any]) -> Verdicts:
    """The chosen and rejected analyses of every pair, each once however many pairs reuse it."""
    columns = ("source_id", "chosen_index", "chosen_verdict", "chosen_forced_verdict", "rejected_index", "rejected_verdict", "rejected_forced_verdict")
    seen: dict[tuple[str, int], tuple[str, bool]] = {}
    for source, ci, cv, cf, ri, rv, rf in zip(*(table.column(c).to_pylist() for c in columns), strict=True):
        seen[(source, ci)], seen[(source, ri)] = (cv, cf), (rv, rf)
    return tally(((key, None, None, v or None, f) for key, (v, f) in seen.items()), _ANALYST)


_SCORES_ONLY = "rewards are measurements of a PRM (ProcessBench metrics come from them), not training data"
SFT_KIND = Kind(
    name="rprm_sft",
    row=RprmSftRow,
    builder=("rprm-sft", "judgeforge.builders.rprm:RprmSftBuilder"),
    paper=R_PRM,
    views={
        "sft": view(sft_view, "prompt+completion", TRL_SFT),
        "dpo": NotTrained("rprm_sft rows hold one kept analysis; preference pairs are the rprm_prefs kind"),
        "rl": NotTrained("R-PRM trains by SFT then DPO, not RL"),
    },
    train_defaults={"sft": TrainDefaults(5e-6, 1, 128, f"{_RPRM}, SFT lr 5e-6")},
    default_spec="rprm_sft.yaml",
    review=SFT_REVIEW,
    card=CardExtras("Step verification analyses (R-PRM SFT)", ("text-generation",), ("sft", "process-reward-model")),
    verdicts=VerdictCount(("verdict", "forced_verdict"), count_sft_verdicts),
)
PREFS_KIND = Kind(
    name="rprm_prefs",
    row=RprmPrefsRow,
    builder=("rprm-prefs", "judgeforge.builders.rprm:RprmPrefsBuilder"),
    paper=R_PRM,
    views={
        "sft": NotTrained("rprm_prefs rows are preference pairs; SFT data is the rprm_sft kind"),
        "dpo": view(dpo_view, "conversational", TRL_DPO),
        "rl": NotTrained("R-PRM trains by SFT then DPO, not RL"),
    },
    train_defaults={"dpo": TrainDefaults(5e-7, 1, 128, f"{_RPRM}, DPO lr 5e-7 (beta not found)")},
    default_spec="rprm_prefs.yaml",
    review=PREFS_REVIEW,
    card=CardExtras("Step verification preference pairs (R-PRM DPO)", ("text-generation",), ("dpo", "process-reward-model")),
    verdicts=VerdictCount(
        ("source_id", "chosen_index", "chosen_verdict", "chosen_forced_verdict", "rejected_index", "rejected_verdict", "rejected_forced_verdict"),
        count_prefs_verdicts,
    ),
)
SCORES_KIND = Kind(
    name="rprm_scores",
    row=RprmScoreRow,
    builder=("rprm-score", "judgeforge.builders.rprm_score:RprmScoreBuilder"),
    paper=R_PRM,
    views={"sft": NotTrained(_SCORES_ONLY), "dpo": NotTrained(_SCORES_ONLY), "rl": NotTrained(_SCORES_ONLY)},
    train_defaults={},
    default_spec="rprm_scores.yaml",
    review=SCORES_REVIEW,
    card=CardExtras("Per-step process rewards (R-PRM scores)", ("text-classification",), ("process-reward-model", "processbench")),
)
