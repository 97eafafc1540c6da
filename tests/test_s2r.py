"""S2R end to end on the embedded model: real trajectories, their invariants, resume, the plot, the masked
SFT view under TRL's own loss, SFT and GRPO training, and the rewards on the model's real completions.

The questions are very easy and ask for a "The answer is ..." sentence so that SmolLM2-135M is sometimes
right and sometimes wrong; every row the tests look at was built by the real model in one module run.
In 16 tokens the model seldom writes its own verdict line, so the build opts in to forced verdicts
(--allow-forced-verdicts); excluding them by default is tested on the scripted engine (test_s2r_units).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from judgeforge.builders.s2r import S2RTrajectoriesBuilder, difficulty_level, parse_difficulty_table, write_difficulty_plot
from judgeforge.chat import render_prompt
from judgeforge.cli import main
from judgeforge.formats.s2r import VERIFY_LEAD, parse_verdict, policy_messages, split_segments
from judgeforge.models import ModelRef, load_tokenizer
from judgeforge.schemas.s2r import IGNORE_INDEX, rl_view, sft_view
from judgeforge.sources import SourceConfig, load_problems
from judgeforge.train.rewards import outcome_reward, process_reward
from judgeforge.verify import check_answer
from tests.helpers import CPU_ARGS, assert_pipeline_on, read_rows, train_tiny

pytestmark = pytest.mark.slow

HINT = "Reply in one sentence that starts with 'The answer is'."
QUESTIONS = [("What is 1 + 1?", "2"), ("What is 2 + 3?", "5"), ("What is 3 times 2?", "6"), ("What is 5 + 5?", "10")]
TABLE = "0.75:1,0:2"
TINY = [
    "--num-samples", "6", "--max-tokens", "16", "--verify-max-tokens", "16", "--verify-temperature", "0.7",
    "--verifications-per-style", "2", "--difficulty-table", TABLE, "--seed", "0", "--allow-forced-verdicts",
]  # fmt: skip


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("s2r-source") / "easy.jsonl"
    path.write_text("".join(json.dumps({"question": f"{q} {HINT}", "answer": a}) + "\n" for q, a in QUESTIONS))
    return path


def build(kind: str, source: Path, out: Path, *extra: str) -> Any:
    result = CliRunner().invoke(main, ["build", kind, "--source", str(source), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def run(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one real s2r-trajectories run every test here reads."""
    out = tmp_path_factory.mktemp("s2r")
    build("s2r-trajectories", source, out, *TINY)
    return out / "s2r_trajectories"


@pytest.fixture(scope="module")
def rows(run: Path) -> list[dict[str, Any]]:
    built = read_rows(run)
    assert built, "the build produced no trajectories"
    assert any(r["num_attempts"] > 1 for r in built), "no trajectory has a wrong attempt to mask"
    return built


@pytest.fixture(scope="module")
def prompts_run(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("s2r-prompts")
    build("s2r-rl-prompts", source, out)
    return out / "s2r_rl_prompts"


def test_trajectory_invariants_hold_on_every_real_row(rows: list[dict[str, Any]], source: Path) -> None:
    levels = parse_difficulty_table(TABLE)
    problems = {p.id: p for p in load_problems(SourceConfig(source=str(source)))}
    for row in rows:
        problem, segments, k = problems[row["source_id"]], row["segments"], row["num_attempts"]
        assert [s["role"] for s in segments] == ["attempt", "verification"] * k
        attempts, checks = segments[0::2], segments[1::2]
        assert [a["answer_correct"] for a in attempts] == [False] * (k - 1) + [True]
        assert len({a["answer"] for a in attempts[:-1]}) == k - 1  # distinct wrong answers
        for attempt, check in zip(attempts, checks, strict=True):
            sample = row["samples"][attempt["sample_index"]]
            assert sample["index"] == attempt["sample_index"] and sample["text"].strip() in attempt["text"]
            assert check_answer(problem, attempt["text"]) == attempt["answer_correct"]
            expected = "correct" if attempt["answer_correct"] else "incorrect"
            assert check["sample_index"] == attempt["sample_index"] and check["verdict"] == expected
            assert parse_verdict(check["text"]).verdict == expected and parse_verdict(check["text"]).lines == 1
            kept = [v for v in row["verifications"] if v["answer"] == attempt["answer"] and v["style"] == check["style"] and v["text"] in check["text"]]
            assert kept and all(v["valid"] for v in kept)
        for v in row["verifications"]:
            right = next(s["correct"] for s in row["samples"] if s["answer"] == v["answer"])
            assert v["valid"] == (v["verdict"] == ("correct" if right else "incorrect"))
        assert row["accuracy"] == row["num_correct"] / row["num_samples"] and row["num_samples"] == 6
        assert row["difficulty_level"] == difficulty_level(levels, row["accuracy"])
        assert k == levels[row["difficulty_level"] - 1].attempts
        assert row["loss_mask"] == [0 if s["role"] == "attempt" and not s["answer_correct"] else 1 for s in segments]
        assert row["completion"] == "".join(s["text"] for s in segments)
        assert split_segments(row["completion"]) == [(s["role"], s["text"]) for s in segments]  # what the rewards read


def test_manifest_counts_levels_and_reasons_and_the_plot_is_drawn(run: Path, rows: list[dict[str, Any]]) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    stats = manifest["builder_stats"]
    assert manifest["status"] == "complete" and manifest["rows_out"] == len(rows) == stats["trajectories"]
    assert manifest["builder"] == {"name": "s2r-trajectories", "version": S2RTrajectoriesBuilder.version} and manifest["config"]["difficulty_table"] == TABLE
    assert manifest["config"]["allow_forced_verdicts"] is True and stats.get("verifications_forced_excluded", 0) == 0
    assert stats.get("trajectories_with_forced_verdicts", 0) == sum(any(s["forced"] for s in r["segments"]) for r in rows)
    levels = range(1, len(parse_difficulty_table(TABLE)) + 1)
    assert sum(stats.get(f"difficulty_level_{n}", 0) for n in levels) == stats["questions"] == len(QUESTIONS)
    for n in levels:
        assert stats.get(f"trajectory_level_{n}", 0) == sum(r["difficulty_level"] == n for r in rows)
    reasons = sum(v for key, v in stats.items() if key.startswith("no_trajectory_"))
    assert stats["trajectories"] + reasons == stats["questions"]
    count = {key: stats.get(key, 0) for key in ("verifications_valid", "verifications_invalid", "verdicts_parsed", "verdicts_forced", "verdicts_unparsable")}
    assert stats["verifications"] == count["verifications_valid"] + count["verifications_invalid"] > 0
    assert stats["verifications"] == count["verdicts_parsed"] + count["verdicts_forced"] + count["verdicts_unparsable"]
    assert stats["samples"] == 6 * len(QUESTIONS)
    png = run / "plots" / "difficulty.png"  # written by the build itself once the run completed
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert write_difficulty_plot(run, run / "again.png").stat().st_size > 0


def test_second_run_resumes_and_recomputes_nothing(run: Path, source: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in (run / "data").glob("*.parquet")}
    result = build("s2r-trajectories", source, run.parent, *TINY)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["chunks"]["built_this_run"] == 0 and "(built this run: 0)" in result.output
    assert {p: p.stat().st_mtime_ns for p in (run / "data").glob("*.parquet")} == before


def test_sft_view_labels_exactly_the_trained_segments(rows: list[dict[str, Any]], smollm2: ModelRef) -> None:
    tokenizer = load_tokenizer(smollm2)
    for row, record in zip(rows, sft_view(rows, tokenizer), strict=True):
        prompt = render_prompt(tokenizer, policy_messages(row["question"]))
        assert record["input_ids"] == [*tokenizer(prompt + row["completion"], add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        expected = [IGNORE_INDEX] * len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        for segment, trained in zip(row["segments"], row["loss_mask"], strict=True):
            ids = tokenizer(segment["text"], add_special_tokens=False)["input_ids"]
            expected += ids if trained else [IGNORE_INDEX] * len(ids)
        assert record["labels"] == [*expected, tokenizer.eos_token_id]


def _same_length_text(tokenizer: Any, text: str) -> str:
    """Different text that tokenises to as many tokens as ``text`` (keeping a leading blank line)."""
    lead = "\n\n" if text.startswith("\n\n") else ""
    n = len(tokenizer(text, add_special_tokens=False)["input_ids"]) - len(lead)
    other = lead + "x" + " x" * (n - 1)
    assert len(tokenizer(other, add_special_tokens=False)["input_ids"]) == n + len(lead)
    return other


def test_masked_segments_carry_no_loss_under_trls_own_loss(rows: list[dict[str, Any]], smollm2: ModelRef, tmp_path: Path) -> None:
    """TRL's SFT loss on a real row counts only the trained segments' tokens.

    In a causal LM a masked segment still conditions the tokens after it (it is context, as the paper
    intends); the mask decides which tokens are *targets*. So the check keeps the input ids fixed and
    swaps the labels for those of the same row with one segment rewritten (same token count): rewriting
    a masked wrong attempt leaves TRL's loss bit-identical, rewriting a trained verification changes it,
    and the loss equals the mean token NLL over exactly the trained positions.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    tokenizer = load_tokenizer(smollm2)
    row = next(r for r in rows if 0 in r["loss_mask"])
    record = sft_view([row], tokenizer)[0]
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(smollm2.path),
        args=SFTConfig(output_dir=str(tmp_path), max_length=None, **CPU_ARGS),
        train_dataset=Dataset.from_list([record]),
        processing_class=tokenizer,
    )
    example = trainer.train_dataset[0]
    assert example["input_ids"] == record["input_ids"] and example["labels"] == record["labels"]  # TRL kept our labels
    trainer.model.eval()

    def loss_with(labels: list[int]) -> float:
        batch = trainer.data_collator([{"input_ids": record["input_ids"], "labels": labels}])
        with torch.no_grad():
            return float(trainer.compute_loss(trainer.model, {k: v.to(trainer.model.device) for k, v in batch.items()}))

    def relabelled(index: int) -> list[int]:
        segments = [dict(s) for s in row["segments"]]
        segments[index]["text"] = _same_length_text(tokenizer, segments[index]["text"])
        view = sft_view([{**row, "segments": segments}], tokenizer)[0]
        assert len(view["input_ids"]) == len(record["input_ids"]) and view["input_ids"] != record["input_ids"]
        return view["labels"]

    base = loss_with(record["labels"])
    masked = row["loss_mask"].index(0)
    trained = next(i for i, s in enumerate(row["segments"]) if s["role"] == "verification")
    assert loss_with(relabelled(masked)) == base
    assert loss_with(relabelled(trained)) != base
    prompt_length = len(tokenizer(render_prompt(tokenizer, policy_messages(row["question"])), add_special_tokens=False)["input_ids"])
    unmasked = [IGNORE_INDEX] * prompt_length + record["input_ids"][prompt_length:]
    assert loss_with(unmasked) != base

    with torch.no_grad():
        logits = trainer.model(torch.tensor([record["input_ids"]])).logits[0, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(record["input_ids"][1:]), reduction="none")
    targets = torch.tensor(record["labels"][1:]) != IGNORE_INDEX
    assert base == pytest.approx(float(nll[targets].mean()), rel=1e-4)


def test_sft_recipe_trains_two_steps_on_the_masked_trajectories(run: Path, rows: list[dict[str, Any]], tmp_path: Path) -> None:
    manifest = train_tiny("sft", [run], tmp_path / "sft", "--max-length", "512")
    assert manifest["examples"] == len(rows) and manifest["hyperparameters"]["learning_rate"] == 5e-6
    assert all(r["loss"] == r["loss"] and r["loss"] > 0 for r in manifest["losses"])


def test_rl_prompts_carry_the_policy_prompt_and_gold(prompts_run: Path) -> None:
    prompts = read_rows(prompts_run)
    assert len(prompts) == len(QUESTIONS)
    golds = dict(QUESTIONS)
    for row in prompts:
        assert row["prompt"] == policy_messages(row["question"]) and row["answer"] == golds[row["question"].removesuffix(f" {HINT}")]
    manifest = json.loads((prompts_run / "manifest.json").read_text())
    assert manifest["builder_stats"]["prompts"] == len(QUESTIONS) and manifest["status"] == "complete"


def test_rewards_score_the_models_real_completions(rows: list[dict[str, Any]], prompts_run: Path) -> None:
    prompt_rows = read_rows(prompts_run)
    columns_by_id = {r["id"]: view for r, view in zip(prompt_rows, rl_view(prompt_rows), strict=True)}
    for row in rows:
        columns = {k: [columns_by_id[row["id"]][k]] for k in ("answer", "problem")}
        for sample in row["samples"]:  # never verified: no answer stands, right or wrong
            assert outcome_reward([None], [sample["text"]], None, **columns) == [0.0]
        assert outcome_reward([None], [row["completion"]], None, **columns) == [1.0]
        assert process_reward([None], [row["completion"]], None, **columns) == [1.0]  # every kept verification is valid
        for v in row["verifications"]:
            sample = next(s for s in row["samples"] if s["answer"] == v["answer"])
            checked = f"{sample['text']}\n\n{VERIFY_LEAD}\n{v['text']}"
            assert process_reward([None], [checked], None, **columns) == [float(v["valid"])]
            assert outcome_reward([None], [checked], None, **columns) == [float(sample["correct"] and v["verdict"] == "correct")]


@pytest.mark.parametrize(("trainer", "reward"), [("rloo", "outcome"), ("rloo", "process"), ("grpo", "process")])
def test_rl_recipe_trains_with_one_reward_variant(prompts_run: Path, tmp_path: Path, trainer: str, reward: str) -> None:
    """RLOO (the default for s2r_rl_prompts, S2R's own trainer being RLOO-style) or GRPO, with exactly one of the two rewards."""
    options = ["--reward", reward, "--trl.num_generations=2", "--trl.max_completion_length=8", *(["--trainer", trainer] if trainer == "grpo" else [])]
    manifest = train_tiny("rl", [prompts_run], tmp_path / "rl", *options)
    assert manifest["trainer"] == {"rloo": "RLOOTrainer", "grpo": "GRPOTrainer"}[trainer] and manifest["method"] == "rl"
    assert manifest["trl_config"]["beta"] == 0.01 and manifest["trl_config"]["temperature"] == 0.7  # S2R's KL and sampling temperature
    assert manifest["hyperparameters"]["reward"] == reward and manifest["trl_config"]["reward_weights"] is None
    logged = {k for h in manifest["log_history"] for k in h}
    other = {"outcome": "process", "process": "outcome"}[reward]
    assert f"rewards/{reward}_reward/mean" in logged and f"rewards/{other}_reward/mean" not in logged  # one variant, never the sum


def test_a_source_without_gold_is_refused_and_questions_without_it_are_counted_and_never_sampled(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.scripted import ScriptedEngine

    seen: list[str] = []

    def respond(request: Any, params: Any, k: int) -> str:
        seen.append(request.messages[-1]["content"])
        return "The answer is 2."

    monkeypatch.setattr("judgeforge.executors.local.make_engine", lambda spec: ScriptedEngine(respond))
    for kind in ("s2r-trajectories", "s2r-rl-prompts"):  # no question has gold: refused before any model loads
        result = CliRunner().invoke(main, ["build", kind, "--source", str(source), "--answer-col", "none", "--out", str(tmp_path / "none")])
        assert result.exit_code == 2 and f"{kind} needs gold answers" in result.output and "--answer-col is none" in result.output
    assert seen == []
    mixed = tmp_path / "mixed.jsonl"  # one question without gold beside the others
    mixed.write_text(source.read_text() + json.dumps({"question": "Name a colour."}) + "\n")
    build("s2r-trajectories", mixed, tmp_path, "--num-samples", "1", "--verify-max-tokens", "8")
    build("s2r-rl-prompts", mixed, tmp_path)
    trajectories = json.loads((tmp_path / "s2r_trajectories/manifest.json").read_text())
    assert trajectories["builder_stats"]["no_trajectory_no_gold_answer"] == 1 and seen and not any("Name a colour." in t for t in seen)
    prompts = json.loads((tmp_path / "s2r_rl_prompts/manifest.json").read_text())
    assert prompts["rows_out"] == len(QUESTIONS) and prompts["builder_stats"]["skipped_no_gold_answer"] == 1


def test_real_runs_audit_curate_and_card(run: Path, prompts_run: Path, tmp_path: Path) -> None:
    for built in (run, prompts_run):
        assert_pipeline_on(built, tmp_path)
