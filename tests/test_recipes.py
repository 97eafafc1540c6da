"""Recipes as a researcher runs them: TRL's own options through ``trl:`` / ``--trl.*``, LoRA through peft, eval splits.

The wiring tests train a tiny random Llama with the embedded model's tokenizer (well under a second a
step) through ``judgeforge train`` on hand-written run dirs; the refusals must come as one line, exit 2,
before any model loads or any work dir is written. The end-to-end tests (``slow``) train the real
embedded model with real TRL and peft for two steps, and load the merged LoRA model in the transformers
engine and in ``judgeforge eval``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner

from judgeforge.cli import main
from judgeforge.errors import UserError
from judgeforge.formats.judge import response_judge_message
from judgeforge.formats.steps import solution_text
from judgeforge.models import ModelRef, resolve_model
from judgeforge.schemas.ift import IftRow
from judgeforge.schemas.rprm import RprmPrefsRow
from judgeforge.schemas.self_taught import SelfTaughtRow, dpo_view
from judgeforge.train.data import hold_out, open_data
from tests.helpers import TINY_TRAIN, rprm_pair, tiny_llama, write_run

slow = pytest.mark.slow

STEPS = ["Step 1: He has 3+4=7 apples.", "Step 2: The answer is 7."]


@pytest.fixture(scope="module")
def tiny(smollm2: ModelRef, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(smollm2, tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def ift(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four IFT rows, one problem each (s0..s3)."""
    rows = [
        {
            "question": f"Tom has {i} apples and buys 4 more. How many apples does he have?",
            "steps": STEPS,
            "solution": solution_text(STEPS),
            "gold_answer": "7",
            "final_answer": "7",
            "origin": "gold",
            "verified": True,
        }
        for i in range(4)
    ]
    return write_run(tmp_path_factory.mktemp("ift") / "ift", IftRow, rows)


@pytest.fixture(scope="module")
def prefs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two conversational R-PRM preference pairs (TRL's DPOTrainer)."""
    question = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    right, wrong = "The step adds correctly. Verdict: Yes", "The step is wrong. Verdict: No"
    rows = [rprm_pair(question, STEPS[:1], step, right, wrong) for step in (STEPS[1], "Step 2: The answer is 8.")]
    return write_run(tmp_path_factory.mktemp("prefs") / "rprm_prefs", RprmPrefsRow, rows)


def train(method: str, run: Path, out: Path, model: Path | str, *options: str) -> tuple[int, str, dict[str, Any] | None]:
    """``judgeforge train METHOD`` for two steps; (exit code, output, training manifest or None)."""
    args = ["train", method, "--data", str(run), "--model", str(model), "--out", str(out), *TINY_TRAIN, "--device", "cpu", *options]
    result = CliRunner().invoke(main, args, env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    manifest = out / "training_manifest.json"
    return result.exit_code, result.output, json.loads(manifest.read_text()) if manifest.is_file() else None


def training_args(checkpoint: Path) -> Any:
    """The TrainingArguments the trainer saved with the weights (the adapter's folder for LoRA)."""
    saved = next(p for p in (checkpoint / "training_args.bin", checkpoint / "adapter" / "training_args.bin") if p.is_file())
    return torch.load(saved, weights_only=False)


def assert_refused(code: int, output: str, message: str, out: Path) -> None:
    """One ``Error:`` line holding ``message``, exit 2, and nothing written: no checkpoint, no work dir."""
    assert code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], output
    assert "Traceback" not in output and "train sft (" not in output and "train dpo (" not in output
    assert not out.exists() and not out.with_name(f".{out.name}.partial").exists()


# --- refusals: one line, before anything loads ---------------------------------------------------------


def test_unknown_or_ill_typed_trl_fields_and_owned_ones_are_refused_in_one_line(ift: Path, tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    cases = {
        ("--trl.learning_rat=1e-5",): "trl.learning_rat: SFTConfig has no field 'learning_rat'; did you mean learning_rate",
        ("--trl.warmup_steps", "many"): "trl.warmup_steps='many': SFTConfig.warmup_steps takes",
        ("--trl.max_length=64",): "trl.max_length: judgeforge drops examples longer than --max-length",
        ("--trl.output_dir=x",): "trl.output_dir: the checkpoint goes to --out",
        ("--trl.hub_token=hf_secret",): "trl.hub_token: judgeforge takes no secret in a file or an argument",
        ("--trl.report_to=wandb",): "trl.report_to=['wandb']: WandbCallback requires wandb to be installed",
        ("--learning-rate", "2e-6", "--trl.learning_rate=3e-6"): "--learning-rate 2e-06 and trl.learning_rate=3e-06 set the same thing; give one",
        ("--trl.beta=0.1",): "trl.beta: SFTConfig has no field 'beta'",
        ("--trl.seed=1", "--trl.seed=2"): "--trl.seed given twice",
    }
    for options, message in cases.items():
        code, output, _ = train("sft", ift, out, tiny, *options)
        assert_refused(code, output, message, out)
    result = CliRunner().invoke(main, ["train", "sft", "--data", str(ift), "--out", str(out), "--max-step", "2"])
    assert result.exit_code == 2 and "No such option '--max-step'" in result.output and "--max-steps" in result.output
    assert "hf_secret" not in result.output


def test_lora_options_that_cannot_work_are_refused_in_one_line(ift: Path, tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    cases = {
        ("--merge",): "--merge configure a LoRA adapter, but LoRA is off: give --lora-r",
        ("--lora-alpha", "8"): "--lora-alpha configure a LoRA adapter, but LoRA is off",
        ("--peft.use_rslora=true",): "peft.use_rslora configure a LoRA adapter, but LoRA is off",
        ("--lora-r", "2", "--qlora"): "--qlora loads the base model in 4-bit with bitsandbytes on a CUDA GPU; this machine lacks bitsandbytes",
        ("--lora-r", "2", "--lora-target-modules", "nope_proj"): "--lora-target-modules: model",
        ("--lora-r", "2", "--peft.r=4"): "--lora-r 2 and peft.r=4 set the same thing",
        ("--lora-r", "2", "--peft.bias=sideways"): "peft.bias='sideways': LoraConfig.bias takes",
    }
    for options, message in cases.items():
        code, output, _ = train("sft", ift, out, tiny, *options)
        assert_refused(code, output, message, out)
    code, output, _ = train("sft", ift, out, tiny, "--lora-r", "2", "--lora-target-modules", "nope_proj")
    assert "has no module named nope_proj (its linear layers: down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj)" in output


def test_yaml_trl_and_peft_blocks_are_checked_before_anything_runs(ift: Path, tiny: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    for block, message in (
        ("trl:\n  lr_scheduler_tpye: cosine\n", "trl.lr_scheduler_tpye: SFTConfig has no field 'lr_scheduler_tpye'; did you mean lr_scheduler_type"),
        ("trl: [1, 2]\n", "'trl:' must be a mapping of field: value"),
        ("lora_r: 2\npeft:\n  lora_dropout: lots\n", "peft.lora_dropout='lots': LoraConfig.lora_dropout takes float"),
    ):
        recipe.write_text(f"recipe: sft\ndata: [{ift}]\nmodel: {tiny}\n{block}")
        result = CliRunner().invoke(main, ["train", str(recipe), "--out", str(tmp_path / "m")])
        assert result.exit_code == 2 and message in result.output, result.output
        assert not (tmp_path / "m").exists()


# --- TRL's options pass through -------------------------------------------------------------------------


def test_trl_fields_from_yaml_and_cli_reach_the_trainer_with_the_documented_precedence(ift: Path, tiny: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"recipe: sft\ndata: [{ift}]\nmodel: {tiny}\ntrl:\n  lr_scheduler_type: cosine\n  weight_decay: 0.1\n  warmup_steps: 1\n  learning_rate: 3.0e-6\n"
    )
    out = tmp_path / "m"
    args = ["train", str(recipe), "--out", str(out), *TINY_TRAIN, "--device", "cpu", "--trl.weight_decay=0.2", "--trl.adam_beta2", "0.95"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    saved, manifest = training_args(out), json.loads((out / "training_manifest.json").read_text())
    assert saved.lr_scheduler_type == "cosine" and saved.warmup_steps == 1  # from the YAML file
    assert saved.weight_decay == 0.2 and saved.adam_beta2 == 0.95  # the command line beats the file
    assert saved.learning_rate == 3e-6 and manifest["hyperparameters"]["learning_rate"] == 3e-6  # the user's value beats the paper's 1e-6
    assert saved.num_train_epochs == 3.0  # judgeforge's paper default where the user set nothing (Zhang et al.: 3 epochs)
    assert saved.per_device_train_batch_size == 2 and saved.gradient_accumulation_steps == 1 and saved.use_cpu
    # The manifest holds the full effective config, fields left at TRL's defaults included, and what the user set.
    config = manifest["trl_config"]
    assert config["weight_decay"] == 0.2 and config["lr_scheduler_type"] == "cosine" and config["adam_beta1"] == 0.9
    assert len(config) > 100 and config["max_length"] is None and config["completion_only_loss"] is True
    assert manifest["trl_set"] == {"lr_scheduler_type": "cosine", "weight_decay": 0.2, "warmup_steps": 1, "adam_beta2": 0.95}
    assert set(manifest["versions"]) == {"trl", "transformers", "torch", "peft", "accelerate", "datasets"} and all(manifest["versions"].values())
    # A secret-looking TRL field is masked even when it is left empty.
    assert config["hub_token"] in (None, "<HUB_TOKEN>")


def test_report_to_tensorboard_keeps_its_event_files_in_the_checkpoint(ift: Path, tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    code, output, manifest = train("sft", ift, out, tiny, "--trl.report_to=tensorboard")
    assert code == 0 and manifest is not None, output
    assert manifest["trl_config"]["report_to"] == ["tensorboard"]
    events = list((out / "runs").rglob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)


# --- LoRA ---------------------------------------------------------------------------------------------


def test_lora_dpo_takes_the_adapter_disabled_model_as_reference_and_loads_one_copy(
    prefs: Path, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM

    loads: list[str] = []
    load = AutoModelForCausalLM.from_pretrained

    def counted(*args: Any, **kwargs: Any) -> Any:
        loads.append(str(args[0]))
        return load(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", counted)
    code, output, manifest = train("dpo", prefs, tmp_path / "lora", tiny, "--lora-r", "2", "--lora-target-modules", "q_proj", "--lora-target-modules", "v_proj")
    assert code == 0 and manifest is not None, output
    assert loads == [str(tiny)]  # the policy only: no second copy for the reference
    assert manifest["reference_model"] == "the trained model with its LoRA adapter disabled (no second copy)"
    assert (
        manifest["peft_config"]["r"] == 2 and manifest["peft_config"]["lora_alpha"] == 4 and manifest["peft_config"]["target_modules"] == ["q_proj", "v_proj"]
    )
    adapter = tmp_path / "lora" / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "adapter_config.json").is_file()
    assert not (tmp_path / "lora" / "model.safetensors").exists() and not manifest["merged"]
    # A bare adapter is no model the builders or eval can load: one line says to train with --merge.
    for given in (tmp_path / "lora", adapter):
        with pytest.raises(UserError, match="is a LoRA adapter without a merged model: train with --merge"):
            resolve_model(str(given))
    loads.clear()
    code, output, manifest = train("dpo", prefs, tmp_path / "full", tiny)
    assert code == 0 and manifest is not None, output
    assert loads == [str(tiny), str(tiny)] and manifest["reference_model"] == "a separate copy of the starting weights"


def test_lora_merge_writes_a_plain_checkpoint_beside_the_adapter(ift: Path, tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    code, output, manifest = train("sft", ift, out, tiny, "--lora-r", "4", "--lora-target-modules", "all-linear", "--merge", "--trl.learning_rate=1e-2")
    assert code == 0 and manifest is not None, output
    # peft resolves 'all-linear' to the model's linear layers, output layer excepted; the manifest records what it adapted.
    adapted = manifest["peft_config"]["target_modules"]
    assert manifest["merged"] and {t.rsplit(".", 1)[-1] for t in adapted} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    merged = resolve_model(str(out))
    assert merged.path == out and merged.weights_hash != resolve_model(str(tiny)).weights_hash  # the adapter is in the weights
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    card = (out / "README.md").read_text()
    assert "library_name: transformers" in card and "merged into the base at the top level" in card and "- lora" in card


# --- eval split -------------------------------------------------------------------------------------------


def test_eval_fraction_holds_out_whole_problems_and_logs_eval_losses(ift: Path, tiny: Path, tmp_path: Path) -> None:
    runs = open_data([ift], "sft")
    held = hold_out(runs, 0.5)
    assert len(held.source_ids) == 2 and held.total == 4 and hold_out(runs, 0.5) == held  # the same problems every time
    assert hold_out(runs, 0.1).source_ids < held.source_ids | {"-"} and len(hold_out(runs, 0.1).source_ids) == 1
    with pytest.raises(UserError, match="holds out 4 of the 4 problems"):
        hold_out(runs, 0.99)
    out = tmp_path / "m"
    code, output, manifest = train("sft", ift, out, tiny, "--eval-fraction", "0.5")
    assert code == 0 and manifest is not None, output
    assert manifest["examples"] == 2 and manifest["eval_examples"] == 2
    assert manifest["eval_split"]["problems"] == 2 and manifest["eval_split"]["source_ids_sha256"] == held.describe()["source_ids_sha256"]
    assert [e["step"] for e in manifest["eval_losses"]] == [1, 2] and manifest["final_eval_loss"] == manifest["eval_losses"][-1]["eval_loss"]
    card = (out / "README.md").read_text()
    assert "| step | train loss | eval loss |" in card and f"{manifest['final_eval_loss']:.4f}" in card and "2 of 4 problems held out" in card
    # --eval-data evaluates on other runs; both ways at once is refused.
    code, output, manifest = train("sft", ift, tmp_path / "m2", tiny, "--eval-data", str(ift))
    assert code == 0 and manifest is not None and manifest["eval_examples"] == 4 and len(manifest["eval_losses"]) == 2, output
    code, output, _ = train("sft", ift, tmp_path / "m3", tiny, "--eval-data", str(ift), "--eval-fraction", "0.5")
    assert_refused(code, output, "--eval-fraction and --eval-data both give an eval split; give one", tmp_path / "m3")


# --- DPO + NLL on Self-Taught judgments ---------------------------------------------------------------------


def ste_row(label: str, kept: str, wrong: str | None) -> dict[str, Any]:
    """A Self-Taught row whose kept judgment (index 0) is ``kept``; ``wrong`` an incorrect one in the same order (index 1)."""
    other = "B" if label == "A" else "A"
    judgments = [{"index": 0, "better_shown_as": label, "text": kept, "verdict": label, "forced": False, "p_a": None, "correct": True}]
    if wrong is not None:
        judgments.append({"index": 1, "better_shown_as": label, "text": wrong, "verdict": other, "forced": False, "p_a": None, "correct": False})
    return {
        "instruction": "What is 3 + 4?",
        "similar_instruction": "What is 3 - 4?",
        "better_response": "3 + 4 = 7. The answer is 7.",
        "worse_response": "3 - 4 = -1. The answer is -1.",
        "gold_answer": "7",
        "better_verified": True,
        "worse_verified": False,
        "label": label,
        "judgment": kept,
        "judgment_index": 0,
        "judgment_forced": False,
        "judgments": judgments,
        "rejected_indices": [1] if wrong is not None else [],
        "num_judgments": len(judgments),
        "num_correct": 1,
        "num_parsed": len(judgments),
        "num_forced": 0,
        "num_unparsable": 0,
        "iteration": 1,
        "judge_model": "test",
    }


def test_self_taught_dpo_view_pairs_the_kept_judgment_with_a_wrong_one_in_its_order() -> None:
    rows = [ste_row("A", "A answers it. [[A]]", "B answers it. [[B]]"), ste_row("B", "B answers it. [[B]]", None)]
    (record,) = dpo_view(rows)  # the row without a wrong judgment in its order gives no pair
    assert record["chosen"] == [{"role": "assistant", "content": "A answers it. [[A]]"}]
    assert record["rejected"] == [{"role": "assistant", "content": "B answers it. [[B]]"}]
    row = rows[0]  # y^w shown as A: the prompt the kept and the rejected judgment answered
    assert record["prompt"] == [{"role": "user", "content": response_judge_message(row["instruction"], row["better_response"], row["worse_response"])}]


def test_dpo_plus_nll_adds_the_chosen_judgments_nll_to_the_dpo_loss(tiny: Path, tmp_path: Path) -> None:
    """At step 1 the policy is its reference, so plain DPO's loss is exactly ln 2; the kind's default adds the NLL of the chosen."""
    rows = [ste_row("A", "A answers it. [[A]]", "B answers it. [[B]]"), ste_row("B", "B is right. [[B]]", "A is right. [[A]]")]
    run = write_run(tmp_path / "ste_judgments", SelfTaughtRow, rows)
    code, output, nll = train("dpo", run, tmp_path / "rpo", tiny, "--logging-steps", "1")
    assert code == 0 and nll is not None, output
    assert nll["trl_config"]["loss_type"] == ["sigmoid", "sft"] and nll["trl_config"]["loss_weights"] == [1.0, 1.0] and nll["trl_config"]["beta"] == 0.1
    code, output, plain = train("dpo", run, tmp_path / "dpo", tiny, "--trl.loss_type=[sigmoid]", "--trl.loss_weights=null")
    assert code == 0 and plain is not None, output
    assert plain["losses"][0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert nll["losses"][0]["loss"] > math.log(2) + 1.0  # + the mean NLL of the chosen tokens under a random model (~ln vocab)


# --- the real embedded model ------------------------------------------------------------------------------


@slow
def test_sft_with_lora_on_the_embedded_model_merges_into_a_model_the_engine_and_eval_load(ift: Path, smollm2: ModelRef, tmp_path: Path) -> None:
    from judgeforge.engines.base import Request, SamplingParams
    from judgeforge.engines.transformers import TransformersEngine

    out = tmp_path / "m1"
    code, output, manifest = train("sft", ift, out, "smollm2", "--lora-r", "8", "--merge", "--max-length", "256", "--trl.lr_scheduler_type=cosine")
    assert code == 0 and manifest is not None, output
    assert training_args(out).lr_scheduler_type == "cosine" and manifest["trl_config"]["lr_scheduler_type"] == "cosine"  # the CLI's value reached the trainer
    assert manifest["steps"] == 2 and manifest["peft_config"]["r"] == 8 and (out / "adapter" / "adapter_model.safetensors").is_file()
    merged = resolve_model(str(out))
    assert merged.weights_hash != smollm2.weights_hash
    engine = TransformersEngine(merged, device="cpu", batch_size=1, dtype="float32")
    try:
        [[completion]] = engine.generate([Request.chat("What is 3 + 4?")], SamplingParams(temperature=0.0, max_tokens=8))
    finally:
        engine.close()
    assert completion.ok and completion.completion_tokens > 0
    result = CliRunner().invoke(main, ["eval", "--model", str(out), "--limit", "1", "--max-tokens", "8", "--out", str(tmp_path / "eval.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "eval.json").read_text())[0]["graded"] == 1


@slow
def test_dpo_with_lora_from_a_yaml_recipe_on_the_embedded_model(step_prefs_run: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "dpo-lora.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "recipe": "dpo",
                "data": [str(step_prefs_run)],
                "model": "smollm2",
                "max_length": 384,
                "merge": True,
                "trl": {"lr_scheduler_type": "constant_with_warmup", "warmup_steps": 1, "beta": 0.2},
                "peft": {"r": 4, "lora_alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
            }
        )
    )
    out = tmp_path / "m2"
    result = CliRunner().invoke(main, ["train", str(recipe), "--out", str(out), *TINY_TRAIN, "--trl.beta=0.3"])
    assert result.exit_code == 0, result.output
    manifest, saved = json.loads((out / "training_manifest.json").read_text()), training_args(out)
    assert manifest["trainer"] == "StepwiseDPOTrainer" and manifest["steps"] == 2
    assert saved.lr_scheduler_type == "constant_with_warmup" and saved.beta == 0.3  # YAML's scheduler; the CLI's beta over the YAML's
    assert manifest["trl_config"]["beta"] == 0.3 and manifest["peft_config"]["lora_alpha"] == 16
    assert manifest["reference_model"] == "the trained model with its LoRA adapter disabled (no second copy)"
    assert resolve_model(str(out)).weights_hash != resolve_model("smollm2").weights_hash
