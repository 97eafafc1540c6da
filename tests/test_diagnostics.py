"""A new user gets data or a reason: refusals before any model loads, "why so few rows" lines, empty --data refused.

Fast tests, no model: a builder that needs gold solutions or answers refuses a source without them before
any engine is made (the engine factory is replaced by one that records the call); every declared loss and
every curation hint names options the command really has; a loss line reads its counters and config;
``train`` refuses an empty run among several, naming it and why it is empty. The same points on the real
embedded model are in ``tests/test_diagnostics_real.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from judgeforge.builders import builder_names, load_builder
from judgeforge.builders.base import Facts, Stat, check_needs, too_few
from judgeforge.builders.eft import EftBuilder, EftConfig, EftStats
from judgeforge.builders.ift import IftBuilder, IftConfig
from judgeforge.cli import main
from judgeforge.curation.filters import FILTERS
from judgeforge.curation.pipeline import shipped_specs
from judgeforge.errors import UserError
from judgeforge.files import write_json
from judgeforge.runs import FunnelStep, RunDir
from judgeforge.schemas.base import RowMeta, rows_to_table
from judgeforge.schemas.eft import EftRow
from judgeforge.schemas.ift import IftRow
from judgeforge.schemas.registry import get_kind
from judgeforge.sources import SourceConfig, load_problems

WORDS = [
    {"problem": "Tom has 3 apples and buys 4 more. How many apples does he have?", "final": "7", "worked": "3 + 4 = 7\n#### 7"},
    {"problem": "A box holds 5 pens. How many pens are in 3 boxes?", "final": "15", "worked": "5 * 3 = 15\n#### 15"},
]


@pytest.fixture
def words(tmp_path: Path) -> Path:
    """Word problems with non-default column names: the question in 'problem', the answer in 'final'."""
    path = tmp_path / "words.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in WORDS))
    return path


@pytest.fixture
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every engine a build asks for; the factory refuses to make one, so a build that gets this far stops here."""
    calls: list[Any] = []

    def factory(spec: Any) -> Any:
        calls.append(spec)
        raise RuntimeError("an engine was asked for")

    monkeypatch.setattr("judgeforge.executors.local.make_engine", factory)
    return calls


def build(*args: str) -> Any:
    return CliRunner().invoke(main, ["build", *args])


COLUMNS = ["--question-col", "problem", "--answer-col", "final"]

REFUSED = [
    (["ift", "--from", "gold", *COLUMNS], "ift --from gold needs gold solutions", "--solution-col"),
    (["ift", "--from", "samples", "--question-col", "problem", "--answer-col", "none"], "ift --from samples needs gold answers", "--answer-col is none"),
    (["eft", *COLUMNS], "eft --depth random needs gold solutions", "or --depth first"),
    (["eft", "--depth", "first", "--question-col", "problem", "--answer-col", "none"], "eft needs gold answers", "--answer-col"),
    (["step-labels", *COLUMNS], "step-labels --corruptions 2 needs gold solutions", "--corruptions 0 --no-include-gold"),
    (["s2r-trajectories", "--question-col", "problem", "--answer-col", "none"], "s2r-trajectories needs gold answers", "--answer-col"),
    (["s2r-rl-prompts", "--question-col", "problem", "--answer-col", "none"], "s2r-rl-prompts needs gold answers", "--answer-col"),
    (
        ["self-taught", "--require-verified", "--question-col", "problem", "--answer-col", "none"],
        "self-taught --require-verified needs gold answers",
        "drop --require-verified",
    ),
]


@pytest.mark.parametrize(("args", "what", "remedy"), REFUSED, ids=[" ".join(r[0][:3]) for r in REFUSED])
def test_a_source_without_what_the_builder_needs_is_refused_before_any_model_loads(
    args: list[str], what: str, remedy: str, words: Path, tmp_path: Path, engine_calls: list[Any]
) -> None:
    out = tmp_path / "out"
    result = build(*args, "--source", str(words), "--out", str(out))
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"Error: {what}") and remedy in line and f"none of the 2 problems of '{words}' has one" in line, line
    assert engine_calls == []
    assert not any(p.is_dir() for p in out.iterdir())  # no run dir was started


def test_a_reasoning_gym_task_without_worked_solutions_is_refused_with_one_that_has_them(tmp_path: Path, engine_calls: list[Any]) -> None:
    result = build("ift", "--from", "gold", "--source", "gym:basic_arithmetic", "--limit", "2", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "reasoning-gym task 'basic_arithmetic' writes no worked solution" in result.output and "gym:gsm_symbolic" in result.output
    assert engine_calls == []


@pytest.mark.parametrize(
    "args",
    [
        ["ift", "--from", "gold", *COLUMNS, "--solution-col", "worked"],
        ["eft", "--depth", "first", *COLUMNS],
        ["step-labels", *COLUMNS, "--corruptions", "0", "--no-include-gold"],
        ["step-labels", *COLUMNS, "--answer-col", "worked"],  # GSM8K-style chains give both the answer and the steps
    ],
)
def test_a_source_that_gives_what_is_needed_goes_on_to_load_the_model(args: list[str], words: Path, tmp_path: Path, engine_calls: list[Any]) -> None:
    result = build(*args, "--source", str(words), "--out", str(tmp_path))
    assert isinstance(result.exception, RuntimeError) and len(engine_calls) == 1


def test_problems_that_lack_it_beside_ones_that_have_it_are_counted_not_refused(tmp_path: Path) -> None:
    source = tmp_path / "mixed.jsonl"
    source.write_text(json.dumps(WORDS[0]) + "\n" + json.dumps({**WORDS[1], "worked": None}) + "\n")
    cfg = SourceConfig(source=str(source), question_col="problem", answer_col="final", solution_col="worked")
    check_needs(IftBuilder, IftConfig(), cfg, load_problems(cfg))  # one of the two has a solution: the build goes on
    source.write_text(json.dumps({**WORDS[0], "worked": ""}) + "\n")
    with pytest.raises(UserError, match=r"\(its column 'worked' is empty in every row\): name the column that holds them with --solution-col"):
        check_needs(IftBuilder, IftConfig(), cfg, load_problems(cfg))


def _options(command: list[str]) -> set[str]:
    group: Any = main
    for name in command:
        group = group.get_command(None, name)
    return {"--help", *(opt for param in group.params for opt in (*param.opts, *param.secondary_opts))}


OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*[a-z]")


def _sample_facts(builder: Any) -> Facts:
    """Every declared counter at 1 and the builder's default config: enough to render every loss's text."""
    stats: dict[str, float] = {key: 1 for key in builder.Stats._keys}
    for loss in builder.Stats.LOSSES:
        stats[str(loss.lost)] = 1
    return Facts(stats, builder.Config().model_dump())


@pytest.mark.parametrize("name", builder_names())
def test_every_loss_names_only_options_its_build_command_has(name: str) -> None:
    builder = load_builder(name)
    options = _options(["build", name])
    facts = _sample_facts(builder)
    for loss in builder.Stats.LOSSES:
        line = loss.line(facts, 1)
        assert line.startswith(f"{loss.lost}: "), line
        named = set(OPTION.findall(line))
        assert named <= options, (name, line, named - options)


def test_every_builder_that_can_lose_every_row_declares_where() -> None:
    for name in builder_names():
        assert load_builder(name).Stats.LOSSES, name


def test_curation_advice_names_options_of_curate_or_of_the_kinds_build() -> None:
    builds = {name: _options(["build", name]) for name in builder_names()}
    curate = _options(["curate"])
    for spec in shipped_specs().glob("*.yaml"):
        data = yaml.safe_load(spec.read_text())
        known = curate | builds[get_kind(data["kind"]).builder[0]]
        for entry in data["filters"]:
            named = set(OPTION.findall(entry.get("hint") or ""))
            assert named <= known, (spec.name, entry, named - known)
            params = {k: v for k, v in entry.items() if k not in ("filter", "name", "action", "hint")}
            f = FILTERS[entry["filter"]](entry.get("name") or entry["filter"], FILTERS[entry["filter"]].Params.model_validate(params))
            why, fix = f.explain(FunnelStep(name=f.name, rows_in=2, rows_out=0, dropped=2, examples=[{"id": "x", "reason": "r"}]))
            assert set(OPTION.findall(why + fix)) <= known, (spec.name, f.name, why, fix)


def test_a_loss_line_reads_its_counters_and_config() -> None:
    stats = {EftStats.PAIRS_CONSIDERED: 3, EftStats.DROPPED_GAP: 3, EftStats.PROBLEMS: 4, EftStats.TOO_FEW_CANDIDATES: 1}
    lines = EftBuilder.diagnose(stats, EftConfig(min_gap=0.7).model_dump(), inputs=4, rows=0)
    assert lines == [
        "too_few_candidates: 1 of 4 problems had fewer than two distinct candidates with a rollout value (0 candidates, 0 without a "
        "finished rollout) — raise --num-candidates (now 4) or --rollout-max-tokens (now 256)",
        "dropped_gap: all 3 pairs considered had best and worst rollout values closer than --min-gap 0.7 — lower --min-gap, or raise "
        "--rollouts (now 4) or --num-candidates so values spread",
    ]
    assert EftBuilder.diagnose(stats, EftConfig().model_dump(), inputs=4, rows=1) == []  # a quarter of the inputs: enough
    assert too_few(0, 0) and too_few(9, 100) and not too_few(10, 100)


def test_the_two_losses_that_took_the_largest_shares_are_named_in_stage_order() -> None:
    S = EftStats
    stats = {S.PROBLEMS: 10, S.CANDIDATES: 40, S.CANDIDATES_NO_FINISHED_ROLLOUT: 4, S.TOO_FEW_CANDIDATES: 2, S.PAIRS_CONSIDERED: 8, S.DROPPED_GAP: 2}
    stats |= {S.DROPPED_INCONSISTENT: 6}
    lines = EftBuilder.diagnose(stats, EftConfig().model_dump(), inputs=10, rows=0)
    assert [line.split(":")[0] for line in lines] == ["dropped_gap", "dropped_inconsistent"]  # 2/8 and 6/8 beat 4/40 and 2/10


def test_a_loss_must_name_a_declared_counter() -> None:
    from judgeforge.builders.base import BuilderStats, Loss

    with pytest.raises(TypeError, match="names 'elsewhere', a counter it does not declare"):

        class Broken(BuilderStats):  # noqa: F841
            KEPT = Stat("kept")
            LOSSES = (Loss(Stat("elsewhere"), KEPT, "rows", "went", "--nothing"),)


META = RowMeta(builder="b", builder_version="0", run_id="r", model="m")


def _ift_run(root: Path, rows: int) -> Path:
    run = RunDir(root, "ift")
    table = [
        IftRow(
            id=f"p{i}/ift-0",
            source_id=f"p{i}",
            meta=META,
            question="q",
            steps=["Step 1: 1."],
            solution="Step 1: 1.",
            gold_answer="1",
            final_answer="1",
            origin="gold",
            verified=True,
        )
        for i in range(rows)
    ]
    run.write_chunk(0, rows_to_table(IftRow, table), {"rows": rows})
    write_json(run.manifest_path, {"kind": "ift", "status": "complete", "builder": {"name": "ift", "version": "0.2.0"}, "rows_in": rows, "rows_out": rows})
    return root


def _empty_eft_run(root: Path) -> Path:
    run = RunDir(root, "eft")
    run.write_chunk(0, rows_to_table(EftRow, []), {"rows": 0})
    manifest = {
        "kind": "eft",
        "status": "complete",
        "builder": {"name": "eft", "version": "0.2.0"},
        "config": EftConfig().model_dump(),
        "rows_in": 2,
        "rows_out": 0,
        "builder_stats": {"problems": 2, "pairs_considered": 1, "dropped_gap": 1, "too_few_candidates": 1},
    }
    write_json(run.manifest_path, manifest)
    return root


def test_train_refuses_an_empty_run_among_several_naming_it_and_why(tmp_path: Path) -> None:
    ift, eft = _ift_run(tmp_path / "ift", 2), _empty_eft_run(tmp_path / "eft")
    result = CliRunner().invoke(main, ["train", "sft", "--data", str(ift), "--data", str(eft), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"--data '{eft}' holds no rows (too_few_candidates: 1 of 2 problems had fewer than two distinct candidates" in message
    assert "; dropped_gap: 1 of 1 pairs considered had best and worst rollout values closer than --min-gap 0.5" in message
    assert "leave it out of --data or rebuild it" in message and not (tmp_path / "m").exists()
    alone = CliRunner().invoke(main, ["train", "sft", "--data", str(eft), "--out", str(tmp_path / "m")])
    assert alone.exit_code == 2 and "nothing to train on" in alone.output


def test_inspect_says_why_a_built_or_curated_run_kept_no_rows(tmp_path: Path) -> None:
    eft = _empty_eft_run(tmp_path / "eft")
    shown = CliRunner().invoke(main, ["inspect", str(eft)], env={"COLUMNS": "400"})
    assert shown.exit_code == 0, shown.output
    assert "kept 0 of 2 rows:" in shown.output and "too_few_candidates: 1 of 2 problems had fewer than two distinct candidates" in shown.output
    curated = tmp_path / "curated"
    assert CliRunner().invoke(main, ["curate", str(eft), "--out", str(curated)]).exit_code == 0
    shown = CliRunner().invoke(main, ["inspect", str(curated)], env={"COLUMNS": "400"})
    assert shown.exit_code == 0, shown.output
    assert "kept 0 of 0 rows:" in shown.output and "the input run holds no rows: too_few_candidates: 1 of 2 problems" in shown.output
    again = tmp_path / "curated-again"
    assert CliRunner().invoke(main, ["curate", str(curated), "--out", str(again)]).exit_code == 0
    first, second = (json.loads((run / "manifest.json").read_text())["curation"]["diagnosis"] for run in (curated, again))
    assert second == first and first[0].startswith("the input run holds no rows: too_few_candidates")
    kept = CliRunner().invoke(main, ["inspect", str(_ift_run(tmp_path / "ift", 2))], env={"COLUMNS": "400"})
    assert kept.exit_code == 0 and "kept" not in kept.output.replace("kept rows", "")
