"""``--dry-run``: every builder plans its build and its cost with no model weights loaded and nothing written;
the estimate's prompt tokens are the real prompts tokenized, and a real build measures what it estimated.

Every builder's dry run uses the embedded model's real tokenizer (its weights must never load: loading
them fails the test). On the embedded model, ``ift --from samples`` is built after its dry run: the
estimated requests and prompt tokens are exactly what the build's engine counted, its generated tokens
at most the estimate; and a dry run on the session's step-prefs run says it would resume it, grow it, or
refuse another run, as a real build would.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from judgeforge.builders import builder_names
from judgeforge.cli import main
from judgeforge.runs import read_manifest
from tests.helpers import STEP_PREFS_TINY

STEP_LABELS = [
    {"id": "pb-0", "problem": "What is 2 + 3?", "steps": ["2 + 3 = 6.", "The answer is 6."], "label": 0, "final_answer_correct": False},
    {"id": "pb-1", "problem": "What is 6 / 2?", "steps": ["6 / 2 = 3.", "The answer is 3."], "label": -1, "final_answer_correct": True},
]


def _no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    import judgeforge.models

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a dry run loaded model weights")

    monkeypatch.setattr(judgeforge.models, "load_causal_lm", refuse)


def stages(output: str) -> dict[tuple[str, str], list[int]]:
    """The dry run's table: (role, stage) → requests, completions, prompt tokens, generated tokens."""
    found = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 6 and cells[2].replace(",", "").isdigit():
            found[(cells[0], cells[1])] = [int(c.replace(",", "")) for c in cells[2:]]
    return found


@pytest.mark.parametrize("name", builder_names())
def test_every_builder_plans_its_cost_without_weights_or_writes(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_weights(monkeypatch)
    labels = tmp_path / "pb.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in STEP_LABELS))
    source = str(labels) if name.startswith("rprm") else "gym:gsm_symbolic"
    options = {"ift": ["--from", "samples"], "rprm-score": ["--threshold", "0.5"]}.get(name, [])
    command = ["score", "rprm"] if name == "rprm-score" else ["build", name]
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [*command, "--source", source, "--limit", "2", "--out", str(out), "--dry-run", *options])
    assert result.exit_code == 0, result.output
    assert not out.exists(), "a dry run wrote something"
    assert re.search(r"\d+ inputs in \d+ chunks of 16; a new run", result.output)
    found = stages(result.output)
    if name == "s2r-rl-prompts":
        assert not found and "no engine calls" in result.output
    else:
        assert found and all(requests > 0 and prompt > 0 and generated > 0 for requests, _, prompt, generated in found.values()), found
        assert "Nothing was loaded or written." in result.output


@pytest.mark.slow
def test_the_estimate_is_what_a_real_build_counts(tmp_path: Path) -> None:
    args = ["build", "ift", "--from", "samples", "--source", "gym:basic_arithmetic", "--limit", "3", "--samples-per-problem", "2", "--max-tokens", "24"]
    args += ["--dtype", "float32", "--out", str(tmp_path)]
    planned = CliRunner().invoke(main, [*args, "--dry-run"])
    assert planned.exit_code == 0, planned.output
    [(requests, completions, prompt, generated)] = stages(planned.output).values()
    assert (requests, completions, generated) == (3, 6, 6 * 24)
    built = CliRunner().invoke(main, args)
    assert built.exit_code == 0, built.output
    manifest = read_manifest(tmp_path / "ift/manifest.json")
    assert manifest and manifest.calls
    measured = manifest.calls["policy"]
    assert measured.requests == requests and measured.prompt_tokens == prompt and 0 < measured.completion_tokens <= generated
    assert manifest.tokens and manifest.tokens.prompt == prompt
    assert re.search(r"tok/s: prompt / generated\s*│\s*[\d,.]+ / [\d,.]+", built.output), built.output
    assert re.search(rf"policy\s*│ {requests} requests \(0 from cache\) · prompt {prompt:,} · generated {measured.completion_tokens:,} tokens", built.output)


@pytest.mark.slow
def test_a_dry_run_says_what_a_build_would_do_with_the_run_dir(step_prefs_run: Path) -> None:
    args = ["build", "step-prefs", *STEP_PREFS_TINY, "--chunk-size", "2", "--out", str(step_prefs_run.parent), "--dry-run"]
    same = CliRunner().invoke(main, [*args, "--limit", "3"])
    assert same.exit_code == 0 and f"resumes the run at {step_prefs_run} (complete)" in same.output and "nothing to build" in same.output
    grow = CliRunner().invoke(main, [*args, "--limit", "4"])
    assert grow.exit_code == 0 and "grows the run" in grow.output and "from 3 to 4 inputs" in grow.output
    assert "1 inputs in 1 chunks to build" in grow.output
    other = CliRunner().invoke(main, [*args, "--limit", "3", "--temperature", "0.9"])
    assert other.exit_code == 0 and "refused:" in other.output and "--temperature: 0.5 → 0.9" in other.output
    assert not list(step_prefs_run.glob("data/shard-00002.parquet"))
