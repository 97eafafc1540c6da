"""R-PRM rows — kept analyses (SFT), analysis preference pairs (DPO), per-step rewards — and TRL views.

Every row is about one evaluation input: a problem, the previous steps, the now step and its label
(Yes/No), with how many of the K sampled analyses matched the label, did not, or were malformed.
``rprm_sft``: one kept analysis whose verdict matches the label. ``rprm_prefs``: a label-matching
analysis (chosen) against a non-matching one (rejected). ``rprm_scores``: the scorer's reward for one
step — the mean P(Yes) over K sampled evaluations, or their Yes-vote fraction where the engine gave no
log-probabilities (``method`` says which) — with its solution's ProcessBench label and subset. The rows
do not depend on a threshold: the ProcessBench figure is computed from them (builders/rprm_score.py).

TRL views use the very analysis prompt the builders sampled with (builders/rprm_format.py): SFT
``prompt``/``completion`` (the user turn, then the analysis as the assistant turn, trained on the
completion only) and conversational DPO
``prompt`` / ``chosen`` / ``rejected``. An analysis is a whole assistant turn ending in its verdict, so
the EOS TRL appends is right here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from judgeforge.formats.rprm import analysis_user_message
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.kind import R_PRM, TRL_DPO, TRL_SFT, CardExtras, Kind, NotTrained, TrainDefaults, generic_review, view


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


_RPRM = "She et al. 2025, R-PRM: 1 epoch, batch 128"
_SCORES_ONLY = "rewards are measurements of a PRM (ProcessBench metrics come from them), not training data"
SFT_KIND = Kind(
    name="rprm_sft",
    row=RprmSftRow,
    builder=("rprm-sft", "judgeforge.builders.rprm:RprmSftBuilder"),
    paper=R_PRM,
    views={
        "sft": view(sft_view, "prompt+completion", TRL_SFT),
        "dpo": NotTrained("rprm_sft rows hold one kept analysis; preference pairs are the rprm_prefs kind"),
        "grpo": NotTrained("R-PRM trains by SFT then DPO, not RL"),
    },
    train_defaults={"sft": TrainDefaults(5e-6, 1, 128, f"{_RPRM}, SFT lr 5e-6")},
    default_spec="rprm_sft.yaml",
    review=generic_review(RprmSftRow),
    card=CardExtras("Step verification analyses (R-PRM SFT)", ("text-generation",), ("sft", "process-reward-model")),
)
PREFS_KIND = Kind(
    name="rprm_prefs",
    row=RprmPrefsRow,
    builder=("rprm-prefs", "judgeforge.builders.rprm:RprmPrefsBuilder"),
    paper=R_PRM,
    views={
        "sft": NotTrained("rprm_prefs rows are preference pairs; SFT data is the rprm_sft kind"),
        "dpo": view(dpo_view, "conversational", TRL_DPO),
        "grpo": NotTrained("R-PRM trains by SFT then DPO, not RL"),
    },
    train_defaults={"dpo": TrainDefaults(5e-7, 1, 128, f"{_RPRM}, DPO lr 5e-7 (beta not found)")},
    default_spec="rprm_prefs.yaml",
    review=generic_review(RprmPrefsRow),
    card=CardExtras("Step verification preference pairs (R-PRM DPO)", ("text-generation",), ("dpo", "process-reward-model")),
)
SCORES_KIND = Kind(
    name="rprm_scores",
    row=RprmScoreRow,
    builder=("rprm-score", "judgeforge.builders.rprm_score:RprmScoreBuilder"),
    paper=R_PRM,
    views={"sft": NotTrained(_SCORES_ONLY), "dpo": NotTrained(_SCORES_ONLY), "grpo": NotTrained(_SCORES_ONLY)},
    train_defaults={},
    default_spec="rprm_scores.yaml",
    review=generic_review(RprmScoreRow),
    card=CardExtras("Per-step process rewards (R-PRM scores)", ("text-classification",), ("process-reward-model", "processbench")),
)
