"""CLI: help documents every option; bad input fails with one clear line and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from judgeforge.builders import builder_names, load_builder
from judgeforge.cli import main


def test_help_documents_every_option() -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["--help"]).exit_code == 0
    assert "step-prefs" in runner.invoke(main, ["build", "--help"]).output
    result = runner.invoke(main, ["build", "step-prefs", "--help"])
    assert result.exit_code == 0
    command = main.commands["build"].get_command(None, "step-prefs")  # type: ignore[attr-defined]
    for param in command.params:
        assert param.opts[0] in result.output
        assert param.help, f"{param.opts[0]} has no help text"
    for field in load_builder("step-prefs").Config.model_fields:
        assert "--" + field.replace("_", "-") in result.output


def test_cache_help_says_what_the_cache_cannot_detect() -> None:
    result = CliRunner().invoke(main, ["build", "step-prefs", "--help"])
    text = " ".join(result.output.split())
    assert "tokenizer/chat-template hash" in text
    assert "/v1/models" in text and "cannot detect a server that swaps weights but reports identical metadata" in text


@pytest.mark.parametrize("name", builder_names())
def test_every_builder_config_field_is_an_option(name: str) -> None:
    result = CliRunner().invoke(main, ["build", name, "--help"])
    assert result.exit_code == 0
    for field_name, field in load_builder(name).Config.model_fields.items():
        assert "--" + (field.alias or field_name).replace("_", "-") in result.output


def _fail(args: list[str]) -> str:
    result = CliRunner().invoke(main, ["build", "step-prefs", *args])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def _nothing_written(out: Path) -> None:
    assert not list(out.rglob("*.parquet")) and not list(out.rglob("*.tmp*"))


def test_unknown_source(tmp_path: Path, out: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert f"unknown source '{notes}'" in _fail(["--source", str(notes), "--out", str(out)])
    assert "gsm_symbolic" in _fail(["--source", "gym:gsm_symbolik", "--out", str(out)])  # suggests the close name
    _nothing_written(out)


def test_missing_column(tmp_path: Path, out: Path) -> None:
    data = tmp_path / "p.jsonl"
    data.write_text('{"problem": "1+1?", "answer": "2"}\n')
    line = _fail(["--source", str(data), "--out", str(out)])
    assert "p.jsonl" in line and "'question'" in line
    _nothing_written(out)


def test_empty_dataset(tmp_path: Path, out: Path) -> None:
    data = tmp_path / "empty.jsonl"
    data.write_text("")
    assert "no rows" in _fail(["--source", str(data), "--out", str(out)])
    _nothing_written(out)


def test_missing_model_path(out: Path) -> None:
    line = _fail(["--model", "/does/not/exist", "--limit", "1", "--out", str(out)])
    assert "/does/not/exist" in line and "does not exist" in line
    _nothing_written(out)


def test_unwritable_out(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = _fail(["--limit", "1", "--out", str(blocker / "sub")])
    assert "cannot write to --out" in line
    assert blocker.read_text() == "x"


def test_bad_shard(out: Path) -> None:
    assert "--shard '3/2'" in _fail(["--shard", "3/2", "--limit", "1", "--out", str(out)])
    _nothing_written(out)


def test_role_options_say_what_inheriting_means() -> None:
    command = main.commands["build"].get_command(None, "step-prefs")  # type: ignore[attr-defined]
    helps = {param.opts[0]: param.help or "" for param in command.params}
    assert "shares the policy's engine (one model, loaded once)" in helps["--judge-engine"]
    assert "--judge-base-url alone implies --judge-engine openai" in helps["--judge-engine"]
    assert helps["--judge-dtype"].endswith("[default: the policy's --dtype]") and helps["--judge-model"].endswith("[default: the policy's --model]")
    assert "or openai when --base-url is given" in helps["--engine"] and "repeatable, VALUE read as YAML" in helps["--vllm-arg"]
