"""Training targets: SFT learns the answer only, and no SFT or DPO example is ever truncated.

The loss checks train a tiny randomly initialised Llama built from the embedded model's config, with
its tokenizer, for one step through ``judgeforge train`` (the recipe's own view, tokenisation and
collator), and read the step's loss from the training manifest. Every attention output projection of
that model is zeroed, so each position's logits depend on its own token only: a prompt token can then
change the loss only by being a loss *target*. With attention on, a prompt token would also change the
answer's predictions as context, which is intended and not what is tested here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.formats.judge import judge_user_message, response_judge_message
from judgeforge.formats.rprm import analysis_user_message
from judgeforge.formats.steps import policy_user_message, solution_text
from judgeforge.models import ModelRef
from judgeforge.schemas import eft, ift, rprm, self_taught
from judgeforge.schemas.ift import IftRow
from judgeforge.schemas.kind import View
from judgeforge.schemas.registry import all_kinds
from judgeforge.schemas.rprm import RprmPrefsRow
from judgeforge.schemas.s2r import S2RTrajectoryRow
from tests.helpers import rprm_pair, tiny_llama, write_run

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
STEPS = ["Step 1: He has 3+4=7 apples.", "Step 2: The answer is 7."]
LONG = " ".join(["and then he counted them again"] * 80)  # ~480 tokens


@pytest.fixture(scope="module")
def tiny_model(smollm2: ModelRef, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with the embedded model's vocabulary and tokenizer, random weights, attention off."""
    return tiny_llama(smollm2, tmp_path_factory.mktemp("tiny-llama"), zero_attention=True)


def ift_run(root: Path, *solutions: tuple[str, list[str]]) -> Path:
    rows = [
        {"question": q, "steps": steps, "solution": solution_text(steps), "gold_answer": "7", "final_answer": "7", "origin": "gold", "verified": True}
        for q, steps in solutions
    ]
    return write_run(root, IftRow, rows)


def train(method: str, run: Path, out: Path, model: Path, *options: str) -> tuple[int, str, dict[str, Any] | None]:
    """``judgeforge train METHOD`` for one step of one example; (exit code, output, training manifest)."""
    args = [
        "train",
        method,
        "--data",
        str(run),
        "--model",
        str(model),
        "--out",
        str(out),
        "--max-steps",
        "1",
        "--batch-size",
        "1",
        "--micro-batch-size",
        "1",
        "--device",
        "cpu",
        *options,
    ]
    result = CliRunner().invoke(main, args, env={"COLUMNS": "200"})
    manifest = out / "training_manifest.json"
    return result.exit_code, result.output, json.loads(manifest.read_text()) if manifest.is_file() else None


def test_chat_sft_views_are_prompt_and_completion() -> None:
    """Every chat SFT view is a conversational prompt (the user turn) and completion (the assistant turn)."""
    user = {"role": "user", "content": ""}
    cases = [
        (ift.sft_view, {"question": QUESTION, "steps": STEPS}, policy_user_message(QUESTION), solution_text(STEPS)),
        (
            eft.sft_view,
            {"question": QUESTION, "previous_steps": STEPS[:1], "step_a": "a", "step_b": "b", "judgment": "j [[A]]"},
            judge_user_message(QUESTION, STEPS[:1], "a", "b"),
            "j [[A]]",
        ),
        (
            rprm.sft_view,
            {"question": QUESTION, "previous_steps": STEPS[:1], "now_step": STEPS[1], "analysis": "an"},
            analysis_user_message(QUESTION, STEPS[:1], STEPS[1]),
            "an",
        ),
        (
            self_taught.sft_view,
            {"instruction": "i", "better_response": "w", "worse_response": "l", "label": "B", "judgment": "j [[B]]"},
            response_judge_message("i", "l", "w"),
            "j [[B]]",
        ),
    ]
    for view, row, prompt, answer in cases:
        (record,) = view([row])
        assert set(record) == {"prompt", "completion"}, view.__module__
        assert record["prompt"] == [{**user, "content": prompt}]
        assert record["completion"] == [{"role": "assistant", "content": answer}]
    # ift + eft (M0 -> M1) still train together: one record format, and every SFT format names its targets.
    formats = {kind.name: view.format for kind in all_kinds() if isinstance(view := kind.view("sft"), View)}
    assert formats["ift"] == formats["eft"] == formats["rprm_sft"] == formats["ste_judgments"] == "prompt+completion"
    assert set(formats.values()) == {"prompt+completion", "input_ids+labels"}


def test_sft_loss_ignores_prompt_tokens(tiny_model: Path, tmp_path: Path) -> None:
    """Changing a prompt token leaves the SFT loss bit-identical; changing an answer token changes it."""
    losses = {}
    variants = {
        "base": (QUESTION, STEPS),
        "prompt changed": (QUESTION.replace("has 3", "has 5"), STEPS),
        "answer changed": (QUESTION, [STEPS[0].replace("=7", "=8"), STEPS[1]]),
    }
    for name, solution in variants.items():
        run = ift_run(tmp_path / name.replace(" ", "-") / "ift", solution)
        code, output, manifest = train("sft", run, tmp_path / f"out-{name.replace(' ', '-')}", tiny_model)
        assert code == 0 and manifest is not None, output
        assert manifest["steps"] == 1 and manifest["examples"] == 1
        losses[name] = manifest["train_loss"]
    assert losses["prompt changed"] == losses["base"]
    assert losses["answer changed"] != losses["base"]


def test_sft_rows_longer_than_max_length_are_dropped_and_counted(tiny_model: Path, tmp_path: Path) -> None:
    run = ift_run(tmp_path / "ift", (QUESTION, STEPS), (QUESTION, [STEPS[0], f"Step 2: {LONG}.", "Step 3: The answer is 7."]), (QUESTION, STEPS[1:]))
    code, output, manifest = train("sft", run, tmp_path / "out", tiny_model, "--max-length", "400")
    assert code == 0 and manifest is not None, output
    assert manifest.get("dropped_too_long") == 1 and manifest["examples"] == 2
    assert "dropped (too long)" in output and "dropped 1 example(s) longer than --max-length" in output


def test_every_example_too_long_fails_naming_max_length(tiny_model: Path, tmp_path: Path) -> None:
    run = ift_run(tmp_path / "ift", (QUESTION, STEPS), (QUESTION, STEPS[1:]))
    code, output, manifest = train("sft", run, tmp_path / "out", tiny_model, "--max-length", "16")
    assert code == 2 and manifest is None
    assert "every one of the 2 training examples is longer than --max-length 16 tokens" in output
    assert "Traceback" not in output


def _trajectory(attempt: str) -> dict[str, Any]:
    segments = [
        {"role": "attempt", "text": attempt, "sample_index": 0, "answer": "7", "answer_correct": True, "style": None, "verdict": None, "forced": False},
        {
            "role": "verification",
            "text": "\n\nLet me check: 3+4=7. The answer is correct.",
            "sample_index": 0,
            "answer": "7",
            "answer_correct": True,
            "style": "confirmative",
            "verdict": "correct",
            "forced": False,
        },
    ]
    return {
        "question": QUESTION,
        "policy_prompt": policy_user_message(QUESTION),
        "gold_answer": "7",
        "accuracy": 0.5,
        "num_samples": 2,
        "num_correct": 1,
        "difficulty_level": 2,
        "num_attempts": 1,
        "segments": segments,
        "loss_mask": [1, 1],
        "completion": attempt + segments[1]["text"],
        "samples": [],
        "verifications": [],
    }


def test_pretokenised_s2r_rows_longer_than_max_length_are_dropped_and_counted(tiny_model: Path, tmp_path: Path) -> None:
    """S2R's input_ids + labels records are measured and dropped like every other SFT format."""
    rows = [_trajectory("3+4=7. The answer is 7."), _trajectory(f"{LONG}. So 3+4=7. The answer is 7.")]
    run = write_run(tmp_path / "s2r_trajectories", S2RTrajectoryRow, rows)
    code, output, manifest = train("sft", run, tmp_path / "out", tiny_model, "--max-length", "300")
    assert code == 0 and manifest is not None, output
    assert manifest.get("dropped_too_long") == 1 and manifest["examples"] == 1


def test_dpo_pairs_longer_than_max_length_are_dropped_and_counted(tiny_model: Path, tmp_path: Path) -> None:
    """TRL's DPO collator cuts prompt + completion at max_length (an analysis loses its verdict): such pairs are dropped."""
    rows = [
        rprm_pair(QUESTION, STEPS[:1], STEPS[1], "The step is right. Verdict: Yes", "The step is wrong. Verdict: No"),
        rprm_pair(QUESTION, STEPS[:1], STEPS[1], f"The step is right: {LONG}. Verdict: Yes", "The step is wrong. Verdict: No"),
    ]
    run = write_run(tmp_path / "rprm_prefs", RprmPrefsRow, rows)
    code, output, manifest = train("dpo", run, tmp_path / "out", tiny_model, "--max-length", "400")
    assert code == 0 and manifest is not None, output
    assert manifest.get("dropped_too_long") == 1 and manifest["examples"] == 1
