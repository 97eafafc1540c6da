"""An engine per role: the policy on one backend, the judge on another, in build, eval and loop.

The option → spec logic (inheritance, the implied openai engine, ``--vllm-arg``, one-line errors) is
checked by parsing real command lines; engine sharing on real transformers engines; the end-to-end
case is a real build with the policy on the transformers engine and the judge on a real
``transformers serve`` (the session fixture), reached through a URL that carries credentials which
must never reach the manifest. eval takes the same policy options, and the loop hands its stages
options that parse back into the specs it meant.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from judgeforge.builders import load_builder
from judgeforge.cli import main
from judgeforge.engines import Engine, EngineSpec
from judgeforge.engines.hardware import resolve_dtype
from judgeforge.engines.openai import OpenAIEngine
from judgeforge.errors import UserError
from judgeforge.executors import local
from judgeforge.executors.build import make_engines
from judgeforge.models import ModelRef
from judgeforge.options import EngineChoices, build_options, build_params, engine_choices
from judgeforge.runs import redact, redact_urls
from judgeforge.train.loop import Loop, build_settings
from tests.helpers import STEP_PREFS_TINY

# --------------------------------------------------------------------------------------------------
# Options → specs


def specs_of(builder: str, *args: str) -> dict[str, EngineSpec]:
    """The role → spec map ``judgeforge build BUILDER ARGS`` would build with."""
    command = click.Command(builder, params=build_params(load_builder(builder)))
    return build_options(builder, command.make_context(builder, list(args)).params).engines


def one_line_error(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_a_role_inherits_every_option_it_is_not_given() -> None:
    policy = EngineSpec(dtype="float32", batch_size=4, vllm_args={"enforce_eager": True})
    same = specs_of("step-prefs", "--dtype", "float32", "--batch-size", "4", "--vllm-arg", "enforce_eager=true")
    assert same == {"policy": policy, "judge": policy}

    own = specs_of("step-prefs", "--dtype", "float32", "--batch-size", "4", "--judge-model", "judge-ckpt", "--judge-batch-size", "2")
    assert own["policy"] == EngineSpec(dtype="float32", batch_size=4)
    assert own["judge"] == EngineSpec(model="judge-ckpt", dtype="float32", batch_size=2)


def test_a_base_url_implies_the_openai_engine() -> None:
    specs = specs_of("step-prefs", "--judge-base-url", "http://127.0.0.1:9/v1", "--judge-model", "served", "--judge-tokenizer", "smollm2")
    assert specs["policy"] == EngineSpec()
    assert specs["judge"] == EngineSpec(engine="openai", model="served", base_url="http://127.0.0.1:9/v1", tokenizer="smollm2")
    # The policy too; and a role that leaves the server keeps no URL.
    served = specs_of("step-prefs", "--base-url", "http://127.0.0.1:9/v1", "--judge-engine", "transformers", "--judge-model", "smollm2")
    assert served["policy"].engine == "openai" and served["policy"].base_url == "http://127.0.0.1:9/v1"
    assert served["judge"] == EngineSpec(engine="transformers")


def test_a_builder_without_a_judge_offers_no_judge_options() -> None:
    assert load_builder("ift").roles == ("policy",)
    flags = {opt for param in build_params(load_builder("ift")) for opt in param.opts}
    assert {"--engine", "--dtype", "--vllm-arg"} <= flags and not {f for f in flags if f.startswith("--judge-")}
    judged = {opt for param in build_params(load_builder("step-prefs")) for opt in param.opts}
    assert {"--judge-engine", "--judge-model", "--judge-base-url", "--judge-tokenizer", "--judge-max-concurrency"} <= judged
    assert {"--judge-batch-size", "--judge-device", "--judge-dtype", "--judge-vllm-arg"} <= judged
    assert "No such option '--judge-engine'" in CliRunner().invoke(main, ["build", "ift", "--judge-engine", "openai"]).output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "openai"], "--engine openai needs --base-url"),
        (["--judge-engine", "openai"], "--judge-engine openai needs --judge-base-url"),
        (["--engine", "vllm", "--base-url", "http://127.0.0.1:9/v1"], "--base-url is for --engine openai, not vllm"),
        (["--judge-engine", "transformers", "--judge-base-url", "http://127.0.0.1:9/v1"], "--judge-base-url is for --judge-engine openai, not transformers"),
        (["--vllm-arg", "enforce_eager"], "--vllm-arg 'enforce_eager': expected KEY=VALUE"),
        (["--judge-vllm-arg", "max_model_len=[1,"], "--judge-vllm-arg 'max_model_len=[1,': VALUE is not YAML"),
        (["--vllm-arg", "dtype=float32"], "'dtype' has its own option (--dtype"),
    ],
)
def test_bad_engine_options_fail_in_one_line_before_anything_loads(tmp_path: Path, args: list[str], message: str) -> None:
    line = one_line_error("build", "step-prefs", *args, "--limit", "1", "--out", str(tmp_path / "out"))
    assert message in line
    assert not (tmp_path / "out").exists()


def test_vllm_args_are_yaml_scalars() -> None:
    args = ["--vllm-arg", "enforce_eager=true", "--vllm-arg", "max_model_len=4096", "--vllm-arg", "gpu_memory_utilization=0.5"]
    args += ["--vllm-arg", "quantization=fp8", "--vllm-arg", "served_model_name='4096'"]
    spec = specs_of("step-prefs", *args)["policy"]
    assert spec.vllm_args == {"enforce_eager": True, "max_model_len": 4096, "gpu_memory_utilization": 0.5, "quantization": "fp8", "served_model_name": "4096"}


def test_roles_with_equal_specs_share_one_engine(smollm2: ModelRef) -> None:
    policy = EngineSpec(dtype="float32", device="cpu")
    engines = make_engines(("policy", "judge"), {"policy": policy, "judge": policy})
    assert engines["policy"] is engines["judge"]
    engines["policy"].close()
    apart = make_engines(("policy", "judge"), {"policy": policy, "judge": policy.model_copy(update={"batch_size": 4})})
    assert apart["policy"] is not apart["judge"] and apart["judge"].describe()["batch_size"] == 4
    for engine in apart.values():
        engine.close()
    with pytest.raises(UserError, match="engines given for critic, which this builder does not use"):
        make_engines(("policy",), {"policy": policy, "critic": policy})


def test_url_credentials_are_masked() -> None:
    url = "https://user:s3cret@judge.example:8443/v1"
    assert redact_urls({"base_url": url, "n": 3, "args": [url, "plain"]}) == {
        "base_url": "https://***@judge.example:8443/v1",
        "n": 3,
        "args": ["https://***@judge.example:8443/v1", "plain"],
    }
    assert redact(["judgeforge", "--judge-base-url", url, "--judge-base-url=" + url]) == [
        "judgeforge",
        "--judge-base-url",
        "https://***@judge.example:8443/v1",
        "--judge-base-url=https://***@judge.example:8443/v1",
    ]
    assert redact_urls("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


# --------------------------------------------------------------------------------------------------
# A real build: the policy on transformers, the judge on a real `transformers serve`


@pytest.mark.slow
def test_policy_local_and_judge_on_a_server(transformers_served: str, smollm2: ModelRef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[EngineSpec, Engine]] = []
    real = local.make_engine

    def recording(spec: EngineSpec) -> Engine:
        engine = real(spec)
        made.append((spec, engine))
        return engine

    monkeypatch.setattr(local, "make_engine", recording)
    secret = "s3cret-token"
    url = transformers_served.replace("http://", f"http://judge:{secret}@")
    masked = transformers_served.replace("http://", "http://***@")
    judge = ["--judge-base-url", url, "--judge-model", str(smollm2.path), "--judge-tokenizer", "smollm2", "--judge-max-concurrency", "2"]
    # One pair judged in both orders (and forced): four requests to a CPU server.
    tiny = ["--num-candidates", "2", "--max-steps", "1", "--max-rollbacks", "0", "--max-step-tokens", "16", "--judge-max-tokens", "8", "--tie-epsilon", "0"]
    args = ["build", "step-prefs", *tiny, "--limit", "1", "--dtype", "float32", "--device", "cpu", *judge, "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output

    # Two engines, one per role; the judge's calls really went to the server.
    (policy_spec, policy), (judge_spec, served) = made
    assert policy_spec.engine == "transformers" and judge_spec.engine == "openai" and judge_spec.base_url == url
    assert isinstance(served, OpenAIEngine) and served.server_model == {"id": str(smollm2.path), "created": 0, "owned_by": "local"}
    assert served.stats.requests > 0 and served.stats.completions > 0 and served.stats.failed_requests == 0
    assert policy.stats.requests > 0 and policy.name == "transformers"

    text = (tmp_path / "step_prefs" / "manifest.json").read_text()
    assert secret not in text
    manifest = json.loads(text)
    engines, models = manifest["engines"], manifest["models"]
    assert engines["policy"]["engine"] == "transformers" and engines["policy"]["spec"]["dtype"] == "float32"
    assert engines["judge"]["engine"] == "openai" and engines["judge"]["base_url"] == masked.rstrip("/")
    assert engines["judge"]["spec"] == {**judge_spec.model_dump(mode="json"), "base_url": masked}
    assert engines["judge"]["spec"]["tokenizer"] == "smollm2" and engines["judge"]["spec"]["model"] == str(smollm2.path)
    assert models["policy"]["engine"] == "transformers" and models["judge"]["engine"] == "openai"
    assert models["policy"]["numerics"] == "float32" and models["judge"]["spec"]["base_url"] == masked


@pytest.mark.slow
def test_a_changed_judge_engine_is_another_run(step_prefs_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(step_prefs_run.parent, out)
    args = ["build", "step-prefs", *STEP_PREFS_TINY, "--limit", "3", "--chunk-size", "2", "--out", str(out)]
    other = "bfloat16" if resolve_dtype("auto", "cpu") == "float32" else "float32"  # the fixture's judge ran on auto
    refused = CliRunner().invoke(main, [*args, "--judge-dtype", other])
    assert refused.exit_code == 2 and f"  --judge-dtype (as the engine resolved it): {resolve_dtype('auto', 'cpu')} → {other}" in refused.output, refused.output
    # Options that only change how fast a role runs do not make another run: the finished run resumes.
    resumed = CliRunner().invoke(main, [*args, "--batch-size", "4", "--judge-batch-size", "2"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "step_prefs" / "manifest.json").read_text())["chunks"]["built_this_run"] == 0


# --------------------------------------------------------------------------------------------------
# eval and loop


@pytest.mark.slow
def test_eval_takes_the_policy_engine_options(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(
        main, ["eval", "--engine", "transformers", "--dtype", "float32", "--batch-size", "2", "--limit", "2", "--max-tokens", "8", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    (report,) = json.loads(out.read_text())
    assert report["engine"] == EngineSpec(dtype="float32", batch_size=2).model_dump(mode="json") and report["problems"] == 2
    assert "--engine openai needs --base-url" in one_line_error("eval", "--engine", "openai", "--limit", "1")


LOOP = dict(iterations=2, source="gym:gsm_symbolic", limit=2, seed=0, eval_source=None, eval_limit=2, eval_seed=10_000, eval_max_tokens=8, spec=None)


def loop_choices(*args: str) -> EngineChoices:
    """The engine choices ``judgeforge loop ARGS`` makes (the loop command's own parser)."""
    command = main.commands["loop"]
    return engine_choices(command.make_context("loop", ["--method", "self-rewarding", "--out", "x", *args]).params, ("policy", "judge"))


def parsed_build(argv: list[str]) -> dict[str, EngineSpec]:
    assert argv[0] == "build"
    return specs_of(argv[1], *argv[2:])


def parsed_eval(argv: list[str]) -> EngineSpec:
    assert argv[0] == "eval"
    params = main.commands["eval"].make_context("eval", argv[1:]).params
    (model,) = params["models"]
    return engine_choices(params).policy.model_copy(update={"model": model})


def test_self_rewarding_stages_get_m_i_as_policy_and_a_fixed_served_judge(tmp_path: Path) -> None:
    judge = ["--judge-base-url", "http://judge:tok@127.0.0.1:9/v1", "--judge-model", "big-judge", "--judge-tokenizer", "smollm2"]
    choices = loop_choices("--model", "m1", "--dtype", "float32", "--vllm-arg", "enforce_eager=true", *judge)
    loop = Loop(build_settings(method="self-rewarding", engines=choices, build_args="", train_args="", **LOOP), tmp_path / "loop", Console())
    policy = EngineSpec(model="m1", dtype="float32", vllm_args={"enforce_eager": True})
    fixed = choices.spec("judge")
    assert fixed.engine == "openai" and fixed.model == "big-judge"
    assert parsed_build(loop.build_argv(1)) == {"policy": policy, "judge": fixed}
    m2 = str(tmp_path / "loop" / "iter-1" / "model")
    assert parsed_build(loop.build_argv(2)) == {"policy": policy.model_copy(update={"model": m2}), "judge": fixed}
    assert parsed_eval(loop.eval_argv(m2, tmp_path / "eval.json")) == policy.model_copy(update={"model": m2})
    # loop.json keeps the settings without the credential; the fingerprint includes the engine options.
    assert "tok@" not in json.dumps(loop.settings.record()) and "***@127.0.0.1:9" in json.dumps(loop.settings.record())
    other = build_settings(method="self-rewarding", engines=loop_choices("--model", "m1", "--dtype", "bfloat16", *judge), build_args="", train_args="", **LOOP)
    assert other.fingerprint() != loop.settings.fingerprint()
    loop.save()
    with pytest.raises(UserError, match=r"\(engines differ\)"):
        Loop(other, tmp_path / "loop", Console())


def test_self_taught_stages_get_m_i_as_judge_on_the_judge_options(tmp_path: Path) -> None:
    choices = loop_choices(
        "--model", "seed", "--base-url", "http://127.0.0.1:9/v1", "--tokenizer", "smollm2", "--judge-engine", "vllm", "--judge-dtype", "float32"
    )
    loop = Loop(build_settings(method="self-taught", engines=choices, build_args="", train_args="", **LOOP), tmp_path / "loop", Console())
    seed = EngineSpec(engine="openai", model="seed", base_url="http://127.0.0.1:9/v1", tokenizer="smollm2")
    m2 = str(tmp_path / "loop" / "iter-1" / "model")
    judge = EngineSpec(engine="vllm", model=m2, tokenizer="smollm2", dtype="float32")
    argv = loop.build_argv(2)
    assert parsed_build(argv) == {"policy": seed, "judge": judge} and argv[argv.index("--iteration") + 1] == "2"
    assert parsed_eval(loop.eval_argv(m2, tmp_path / "eval.json")) == judge


@pytest.mark.parametrize(
    ("method", "args", "message"),
    [
        ("self-rewarding", ["--engine", "openai", "--base-url", "http://127.0.0.1:9/v1"], "the policy runs M_i, a new local checkpoint each iteration"),
        (
            "self-rewarding",
            ["--judge-base-url", "http://127.0.0.1:9/v1"],
            "the judge runs M_i, a new local checkpoint each iteration, so it cannot use --judge-engine openai",
        ),
        ("self-taught", ["--judge-model", "judge"], "--judge-model: --method self-taught trains the judge"),
        ("self-taught", ["--engine", "openai", "--base-url", "http://127.0.0.1:9/v1"], "the judge runs M_i"),
        ("self-rewarding", ["--build-args", "--judge-dtype float32"], "--build-args may not set --judge-dtype: the loop sets them"),
    ],
)
def test_loop_engine_options_are_checked_before_anything_runs(tmp_path: Path, method: str, args: list[str], message: str) -> None:
    line = one_line_error("loop", "--method", method, *args, "--out", str(tmp_path / "loop"))
    assert message in line
    assert not (tmp_path / "loop").exists()
