"""``judgeforge loop``: M_i → data → M_{i+1}, T times, resumable stage by stage.

Each iteration runs four stages, each one a ``judgeforge`` command in a child process (so the recorded
command of every run is the real one, and memory goes back to the system between stages):

1. **build** with M_i — ``step-prefs`` with M_i as policy and judge (self-rewarding, Zhang et al. 2025),
   or ``self-taught`` with the seed model writing the pairs and M_i judging (Wang et al. 2024);
2. **curate** with the kind's default spec (or ``--spec``);
3. **train** — step-wise DPO from M_i (self-rewarding), or SFT of the *seed* model on this iteration's
   judgments (self-taught: "the seed model is fine-tuned on the correct judgments" each iteration);
4. **eval** — greedy final-answer accuracy of M_{i+1} on held-out problems (M1 is evaluated once first)
   and, with ``--judge-eval-pairs``, its judge accuracy on held-out pairs (``judgeforge eval judge``:
   both orders, forced verdicts never counted correct) — the figure the judge papers track.

With ``--from-m0`` (self-rewarding) the loop begins where the paper does, at the base model M0: one
M0 → M1 stage builds IFT (gold solutions, or rejection-sampled by M0 with ``--ift-from samples``) and
EFT with M0, fine-tunes M0 on both (SFT, the paper's 3 epochs at lr 1e-6 unless ``--sft-args`` says
otherwise) and evaluates M1; the step-wise DPO iterations then start from M1. ``loop.json`` records the
stage under ``m0`` (``ift``, ``eft``, ``train``, ``eval``), resumable stage by stage like the others.

Each build draws new problems: a ``gym:`` task one seed per build, a file or ``datasets`` source the
next block of rows (``--offset``), as the paper uses new questions every round (400 / 800 / 1,200:
``--problems-per-iteration 400,800,1200``); the M0 stage takes the first block (``--m0-limit``).

The engine options (``--engine``, ``--dtype``, ``--judge-engine``, ``--judge-base-url``...) go to every
build and eval: the stage commands carry them as options that parse back into the same specs
(:meth:`judgeforge.options.EngineChoices.argv`). M_i replaces the model of the role it plays (the
policy for self-rewarding, whose judge follows it unless ``--judge-model`` fixes one; the judge for
self-taught); the other roles keep theirs, so a fixed judge can be a larger model on a server.

Everything of iteration i lives under ``OUT/iter-<i>/`` (``build/``, ``curated/``, ``model/``,
``eval.json``), the M0 → M1 stage's under ``OUT/m0/``. ``OUT/loop.json`` records the settings and, per iteration, rows built, rows kept, the
judge's parse-failure rate, the builder's own quality signal (final-answer accuracy of the step search;
correct-verdict rate of the judge on the verdicts it wrote itself, with the forced verdicts' agreement
with the label reported apart), the training loss, the held-out accuracy and the held-out judge
accuracy when pairs are given; it is rewritten
atomically after every stage, so a killed loop re-run with the same command resumes at the first
unfinished stage (a build resumes at its first unfinished shard). ``OUT/loop.png`` plots the metrics.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from judgeforge.builders import diagnose_build
from judgeforge.builders.base import Stat
from judgeforge.builders.self_taught import SelfTaughtStats
from judgeforge.builders.step_prefs import StepPrefsStats
from judgeforge.errors import UserError
from judgeforge.executors.build import POLICY
from judgeforge.files import utc_now, write_json
from judgeforge.options import EngineChoices, engine_flags, spec_argv
from judgeforge.runs import open_run, redact, redact_urls
from judgeforge.sources import GYM_PREFIX
from judgeforge.train.common import finished_checkpoint

STAGES = ("build", "curate", "train", "eval")
M0_STAGES = ("ift", "eft", "train", "eval")


def _rate(stats: dict[str, float], numerator: tuple[Stat, ...], denominator: Stat) -> float | None:
    total = denominator.read(stats)
    return round(sum(k.read(stats) for k in numerator) / total, 4) if total else None


@dataclass(frozen=True)
class LoopMethod:
    """How one self-improvement method maps onto builders, kinds and recipes.

    ``role`` is the engine role M_i plays in the iteration's build (and the role whose engine evaluates
    it): its model is replaced by M_i, every other role keeps its own. ``quality`` is the builder's
    quality signal from its stats; ``forced_quality`` (where the builder forces verdicts it judges by)
    the same signal on forced verdicts, kept apart from it.
    """

    builder: str
    builder_options: Callable[[int], list[str]]
    role: str
    kind: str
    recipe: Literal["sft", "dpo"]
    train_from_seed: bool
    quality_name: str
    quality: Callable[[dict[str, float]], float | None]
    parse_failures: Callable[[dict[str, float]], float | None]
    forced_quality_name: str | None = None
    forced_quality: Callable[[dict[str, float]], float | None] | None = None

    def build_metrics(self, stats: dict[str, float]) -> dict[str, Any]:
        """What ``loop.json`` records about a build, from its manifest's builder stats."""
        metrics = {"judge_parse_failure_rate": self.parse_failures(stats), "quality_name": self.quality_name, "quality": self.quality(stats)}
        if self.forced_quality_name is not None and self.forced_quality is not None:
            metrics |= {"forced_quality_name": self.forced_quality_name, "forced_quality": self.forced_quality(stats)}
        return metrics


METHODS: dict[str, LoopMethod] = {
    "self-rewarding": LoopMethod(
        builder="step-prefs",
        builder_options=lambda i: [],
        role=POLICY,
        kind="step_prefs",
        recipe="dpo",
        train_from_seed=False,
        quality_name="search accuracy",
        quality=lambda s: _rate(s, (StepPrefsStats.SOLUTIONS_CORRECT,), StepPrefsStats.SOLUTIONS_CHECKED),
        parse_failures=lambda s: _rate(s, (StepPrefsStats.FORCED, StepPrefsStats.UNPARSABLE), StepPrefsStats.JUDGMENTS),
    ),
    "self-taught": LoopMethod(
        builder="self-taught",
        builder_options=lambda i: ["--iteration", str(i)],
        role="judge",
        kind="ste_judgments",
        recipe="sft",
        train_from_seed=True,
        quality_name="correct-verdict rate",
        quality=lambda s: _rate(s, (SelfTaughtStats.JUDGMENTS_CORRECT,), SelfTaughtStats.PARSED),
        parse_failures=lambda s: _rate(s, (SelfTaughtStats.FORCED, SelfTaughtStats.UNPARSABLE), SelfTaughtStats.JUDGMENTS),
        forced_quality_name="forced verdicts agreeing",
        forced_quality=lambda s: _rate(s, (SelfTaughtStats.FORCED_AGREEING,), SelfTaughtStats.FORCED),
    ),
}


class LoopSettings(BaseModel):
    """Everything that decides a loop's results; a re-run must match it to resume.

    ``engines`` are the engine options every build and eval gets; ``engines.policy.model`` is M1.
    """

    method: Literal["self-rewarding", "self-taught"]
    iterations: int
    engines: EngineChoices
    source: str
    limit: int
    seed: int
    eval_source: str
    eval_limit: int
    eval_seed: int
    eval_max_tokens: int
    judge_eval_pairs: str | None = None
    spec: str | None
    build_args: list[str]
    train_args: list[str]
    from_m0: bool = False
    ift_from: Literal["gold", "samples"] = "gold"
    m0_limit: int | None = None
    problems_per_iteration: list[int] | None = None
    ift_args: list[str] = []
    eft_args: list[str] = []
    sft_args: list[str] = []

    @property
    def model(self) -> str:
        """The model the loop starts from: M1, or M0 with ``from_m0``."""
        return self.engines.policy.model

    def count(self, stage: int) -> int:
        """Problems built by ``stage`` (0: the M0 → M1 stage, i: iteration i)."""
        if stage == 0:
            return self.m0_limit or self.limit
        return self.problems_per_iteration[stage - 1] if self.problems_per_iteration else self.limit

    def problems(self, stage: int) -> list[str]:
        """The build options choosing ``stage``'s new problems: its own seed (a gym: task draws new ones per seed) or the next rows."""
        first = 0 if self.from_m0 else 1
        args = ["--limit", str(self.count(stage)), "--seed", str(self.seed + stage - first)]
        if not self.source.startswith(GYM_PREFIX):
            args += ["--offset", str(sum(self.count(k) for k in range(first, stage)))]
        return args

    def record(self) -> dict[str, Any]:
        """The settings as ``loop.json`` keeps them: credentials in URLs masked."""
        recorded: dict[str, Any] = redact_urls(self.model_dump(mode="json"))
        return recorded

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.record(), sort_keys=True).encode()).hexdigest()[:16]


class Loop:
    """One loop directory: its state file, its stages, and the child commands that run them."""

    def __init__(self, settings: LoopSettings, out: Path, console: Console) -> None:
        self.settings = settings
        self.method = METHODS[settings.method]
        self.out = out
        self.console = console
        self.state_path = out / "loop.json"
        self.state = self._open()

    def _open(self) -> dict[str, Any]:
        settings = self.settings.record()
        if self.state_path.exists():
            state = json.loads(self.state_path.read_text())
            if state.get("fingerprint") != self.settings.fingerprint():
                changed = sorted(k for k, v in settings.items() if state.get("settings", {}).get(k) != v)
                raise UserError(
                    f"{self.state_path} was started with other settings ({', '.join(changed)} differ); re-run the same command to resume, or use another --out"
                )
            return state
        self.out.mkdir(parents=True, exist_ok=True)
        return {
            "settings": settings,
            "fingerprint": self.settings.fingerprint(),
            "status": "running",
            "started_at": utc_now(),
            "baseline": None,
            **({"m0": {"model_in": self.settings.model, "model_out": str(self.m0_dir / "model")}} if self.settings.from_m0 else {}),
            "iterations": [],
        }

    def save(self) -> None:
        write_json(self.state_path, self.state)

    # --- paths and models -------------------------------------------------------------------------

    def iter_dir(self, i: int) -> Path:
        return self.out / f"iter-{i}"

    @property
    def m0_dir(self) -> Path:
        return self.out / "m0"

    @property
    def first_label(self) -> str:
        """The name of the model the loop starts from."""
        return "M0" if self.settings.from_m0 else "M1"

    def model_in(self, i: int) -> str:
        """M_i: for i = 1 the starting model (or the M0 → M1 stage's checkpoint), else the checkpoint iteration i - 1 trained."""
        if i > 1:
            return str(self.iter_dir(i - 1) / "model")
        return str(self.m0_dir / "model") if self.settings.from_m0 else self.settings.model

    def engines_for(self, model: str) -> EngineChoices:
        """The engine options of a stage run with ``model`` as M_i: the method's role gets it, the others keep theirs."""
        return self.settings.engines.with_model(self.method.role, model)

    # --- stages -----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        if self.state["baseline"] is None:
            label = self.first_label
            self.console.rule(f"[bold]eval {label}[/] {self.settings.model}")
            self.state["baseline"] = {"model": self.settings.model, "eval": self.evaluate(self.settings.model, self.out / f"eval-{label.lower()}.json")}
            self.save()
        if self.settings.from_m0:
            record = self.state["m0"]
            for stage in M0_STAGES:
                if stage not in record:
                    self.console.rule(f"[bold]M0 → M1 · {stage}[/]")
                    record[stage] = getattr(self, f"_m0_{stage}")()
                    self.save()
        for i in range(1, self.settings.iterations + 1):
            record = self._iteration(i)
            for stage in STAGES:
                if stage in record:
                    continue
                self.console.rule(f"[bold]iteration {i}/{self.settings.iterations} · {stage}[/] ({self.settings.method})")
                record[stage] = getattr(self, f"_{stage}")(i)
                self.save()
        self.state["status"] = "complete"
        self.state["finished_at"] = utc_now()
        self.save()
        self.plot()
        return self.state

    def _iteration(self, i: int) -> dict[str, Any]:
        for record in self.state["iterations"]:
            if record["iteration"] == i:
                return record
        record = {"iteration": i, "model_in": self.model_in(i), "model_out": str(self.iter_dir(i) / "model")}
        self.state["iterations"].append(record)
        return record

    def build_argv(self, i: int) -> list[str]:
        """Iteration ``i``'s build command (after ``judgeforge``)."""
        s, m = self.settings, self.method
        # Iteration i draws new problems: a gym: task under its own seed, a file or datasets source its own rows.
        return [
            "build",
            m.builder,
            *self.engines_for(self.model_in(i)).argv(),
            "--source",
            s.source,
            *s.problems(i),
            "--out",
            str(self.iter_dir(i) / "build"),
            *m.builder_options(i),
            *s.build_args,
        ]

    # --- the M0 → M1 stage (self-rewarding --from-m0) ----------------------------------------------

    def m0_build_argv(self, kind: Literal["ift", "eft"]) -> list[str]:
        """The M0 stage's IFT or EFT build (after ``judgeforge``): M0 writes (and, for EFT, judges) the first problems."""
        s = self.settings
        engines = self.engines_for(s.model)
        options = ["--from", s.ift_from, *spec_argv(engines.policy), *s.ift_args] if kind == "ift" else [*engines.argv(), *s.eft_args]
        return ["build", kind, "--source", s.source, *s.problems(0), "--out", str(self.m0_dir / "build"), *options]

    def _m0_build(self, kind: Literal["ift", "eft"], hint: str) -> dict[str, Any]:
        self.command(self.m0_build_argv(kind))
        run = self.m0_dir / "build" / kind
        manifest = open_run(run, kind).require_manifest()
        if not manifest.rows_out:
            raise UserError(f"M0 → M1: the {kind.upper()} build produced no rows (its counters are above); M1 needs both IFT and EFT: {hint}")
        return {"run": str(run), "run_id": manifest.run_id, "rows": manifest.rows_out}

    def _m0_ift(self) -> dict[str, Any]:
        return self._m0_build(
            "ift",
            "with --ift-from gold the source needs gold step-by-step solutions (--solution-col, or GSM8K-style answers ending in '#### N'); "
            "with --ift-from samples M0 must solve some problems (raise --m0-limit, or --samples-per-problem in --ift-args)",
        )

    def _m0_eft(self) -> dict[str, Any]:
        return self._m0_build(
            "eft",
            "no candidate pair cleared the rollout-value gap, or the judge never agreed with it in both orders: raise --m0-limit, "
            "lower --min-gap or raise --rollouts in --eft-args, or write the judgments from the rollouts (--eft-args '--judgment-source rollouts')",
        )

    def _m0_train(self) -> dict[str, Any]:
        s, record = self.settings, self.state["m0"]
        out = self.m0_dir / "model"
        self.command(["train", "sft", "--data", record["ift"]["run"], "--data", record["eft"]["run"], "--model", s.model, "--out", str(out), *s.sft_args])
        return self._trained(out, s.model, "M0 → M1")

    def _m0_eval(self) -> dict[str, Any]:
        return self.evaluate(str(self.m0_dir / "model"), self.m0_dir / "eval.json")

    def _build(self, i: int) -> dict[str, Any]:
        m = self.method
        out = self.iter_dir(i) / "build"
        self.command(self.build_argv(i))
        manifest = open_run(out / m.kind, m.kind).require_manifest()
        if not manifest.rows_out:
            why = "; ".join(diagnose_build(manifest)) or "see its counters above"
            raise UserError(f"iteration {i}: the build produced no rows, nothing to train on: {why} (builder options go in --build-args)")
        return {"run": str(out / m.kind), "run_id": manifest.run_id, "rows": manifest.rows_out, **m.build_metrics(manifest.builder_stats)}

    def _curate(self, i: int) -> dict[str, Any]:
        out = self.iter_dir(i) / "curated"
        shutil.rmtree(out, ignore_errors=True)  # the loop owns it: a curate killed mid-way starts over
        spec = ["--spec", self.settings.spec] if self.settings.spec else []
        self.command(["curate", str(self.iter_dir(i) / "build" / self.method.kind), "--out", str(out), *spec])
        manifest = open_run(out, self.method.kind).require_manifest()
        curation = manifest.curation
        if curation is None:
            raise UserError(f"iteration {i}: {out} is not a curated run (its manifest records no curation)")
        dropped = {step.name: step.dropped for step in curation.funnel if step.dropped}
        if not manifest.rows_out:
            why = "; ".join(curation.diagnosis) or ", ".join(f"{k} dropped {v}" for k, v in sorted(dropped.items(), key=lambda kv: -kv[1]))
            raise UserError(f"iteration {i}: curation kept 0 of {curation.rows_in} rows, nothing to train on: {why} (a spec goes in --spec)")
        return {"run": str(out), "rows": manifest.rows_out, "dropped": dropped}

    def _train(self, i: int) -> dict[str, Any]:
        s, m = self.settings, self.method
        base = s.model if m.train_from_seed else self.model_in(i)
        out = self.iter_dir(i) / "model"
        self.command(["train", m.recipe, "--data", str(self.iter_dir(i) / "curated"), "--model", base, "--out", str(out), *s.train_args])
        return self._trained(out, base, f"iteration {i}")

    def _trained(self, out: Path, base: str, stage: str) -> dict[str, Any]:
        manifest = finished_checkpoint(out)
        if manifest is None:
            raise UserError(f"{stage}: training left no checkpoint at {out}")
        return {
            "checkpoint": str(out),
            "base_model": base,
            "steps": manifest["steps"],
            "examples": manifest["examples"],
            "train_loss": manifest["train_loss"],
            "final_loss": manifest["final_loss"],
        }

    def _eval(self, i: int) -> dict[str, Any]:
        return self.evaluate(str(self.iter_dir(i) / "model"), self.iter_dir(i) / "eval.json")

    def judge_eval_argv(self, model: str, pairs: str, out: Path) -> list[str]:
        """The eval judge command (after ``judgeforge``) of ``model`` on held-out ``pairs``, on the engine of the role M_i plays."""
        spec = spec_argv(self.engines_for(model).spec(self.method.role), skip=("model",))
        return ["eval", "judge", "--model", model, *spec, "--pairs", pairs, "--max-tokens", str(self.settings.eval_max_tokens), "--out", str(out)]

    def eval_argv(self, model: str, out: Path) -> list[str]:
        """The eval command (after ``judgeforge``) of ``model``, on the engine of the role M_i plays."""
        s = self.settings
        return [
            "eval",
            "--model",
            model,
            *spec_argv(self.engines_for(model).spec(self.method.role), skip=("model",)),
            "--source",
            s.eval_source,
            "--limit",
            str(s.eval_limit),
            "--seed",
            str(s.eval_seed),
            "--max-tokens",
            str(s.eval_max_tokens),
            "--out",
            str(out),
        ]

    def evaluate(self, model: str, out: Path) -> dict[str, Any]:
        """Held-out accuracy of ``model`` and, with held-out pairs, its judge figures (``judge``) beside it."""
        self.command(self.eval_argv(model, out))
        result = json.loads(out.read_text())[0]
        record = {k: result[k] for k in ("accuracy", "correct", "graded", "unanswered", "seconds")}
        pairs = self.settings.judge_eval_pairs
        if pairs is not None:
            judged = out.with_name(out.stem + "-judge.json")
            self.command(self.judge_eval_argv(model, pairs, judged))
            overall = json.loads(judged.read_text())[0]["overall"]
            record["judge"] = {k: overall[k] for k in ("accuracy", "pair_accuracy", "position_consistency", "forced_accuracy", "judgments", "parsed", "forced")}
        return record

    def command(self, args: list[str]) -> None:
        """Run one ``judgeforge`` command as a child that dies with the loop; fail the loop if it fails."""
        shown = shlex.join(redact(["judgeforge", *args]))
        self.console.print(f"[dim]$ {shown}[/]")
        code = subprocess.call([sys.executable, "-m", "judgeforge.cli", *args], preexec_fn=_die_with_parent)
        if code != 0:
            raise UserError(f"stage command failed (exit {code}): {shown}; fix it and re-run the loop to resume here")

    # --- report -----------------------------------------------------------------------------------

    def table(self) -> Table:
        """One row per iteration: the data M_i built, what curation kept, and the M_{i+1} trained on it (M0 → M1 first, with --from-m0)."""
        table = Table(title=f"judgeforge loop · {self.settings.method} · {self.out}")
        forced = [self.method.forced_quality_name] if self.method.forced_quality_name else []
        judge = ["held-out judge acc"] if self.settings.judge_eval_pairs is not None else []
        headers = (
            "iter",
            "built by",
            "rows built",
            "rows kept",
            "judge parse fail",
            self.method.quality_name,
            *forced,
            "train loss",
            "trained",
            "held-out acc",
            *judge,
        )
        for name in headers:
            table.add_column(name, justify="left" if name in ("built by", "trained") else "right")

        def row(iteration: str, built_by: str, build: dict[str, Any], kept: str, train: dict[str, Any], trained: str, ev: dict[str, Any]) -> None:
            table.add_row(
                iteration,
                built_by,
                str(build.get("rows", "")),
                kept,
                _pct(build.get("judge_parse_failure_rate")),
                _pct(build.get("quality")),
                *(_pct(build.get("forced_quality")) for _ in forced),
                f"{train['train_loss']:.4f}" if train else "",
                trained,
                _pct(ev.get("accuracy")),
                *(_pct(ev.get("judge", {}).get("accuracy")) for _ in judge),
            )

        row("0", "", {}, "", {}, self.first_label, (self.state.get("baseline") or {}).get("eval", {}))
        m0 = self.state.get("m0")
        if m0 is not None:
            built = {"rows": f"{m0['ift']['rows']} + {m0['eft']['rows']}"} if "eft" in m0 else {}
            row("M0→M1", "M0", built, "", m0.get("train", {}), "M1", m0.get("eval", {}))
        for r in self.state["iterations"]:
            build, curate, train, ev = (r.get(k, {}) for k in STAGES)
            i = r["iteration"]
            row(str(i), f"M{i}", build, str(curate.get("rows", "")), train, f"M{i + 1}", ev)
        return table

    def plot(self) -> Path:
        from judgeforge.plots import lines

        records = self.state["iterations"]
        m0 = [self.state["m0"]] if self.settings.from_m0 else []
        evals = [(self.state.get("baseline") or {}).get("eval", {})] + [r.get("eval", {}) for r in m0 + records]
        first = 0 if self.settings.from_m0 else 1
        labels = [f"M{k}" for k in range(first, first + len(evals))]
        series: dict[str, Sequence[float | None]] = {"held-out accuracy": [e.get("accuracy") for e in evals]}
        if self.settings.judge_eval_pairs is not None:
            series["held-out judge accuracy"] = [e.get("judge", {}).get("accuracy") for e in evals]
        # The builder's quality signal is measured with M_i (the model the iteration starts from).
        series[self.method.quality_name] = [None] * len(m0) + [r.get("build", {}).get("quality") for r in records] + [None]
        return lines(labels, series, f"{self.settings.method} loop", self.out / "loop.png")


def build_settings(
    method: str,
    iterations: int,
    engines: EngineChoices,
    source: str,
    limit: int,
    seed: int,
    eval_source: str | None,
    eval_limit: int,
    eval_seed: int,
    eval_max_tokens: int,
    spec: str | None,
    build_args: str,
    train_args: str,
    judge_eval_pairs: str | None = None,
    from_m0: bool = False,
    ift_from: Literal["gold", "samples"] = "gold",
    m0_limit: int | None = None,
    problems_per_iteration: str | None = None,
    ift_args: str = "",
    eft_args: str = "",
    sft_args: str = "",
) -> LoopSettings:
    """Check the options and fill the held-out set: the same gym task under another seed, or --eval-source."""
    if not from_m0:
        given = [flag for flag, value in (("--m0-limit", m0_limit), ("--ift-args", ift_args), ("--eft-args", eft_args), ("--sft-args", sft_args)) if value]
        if given or ift_from != "gold":
            raise UserError(f"{', '.join(given or ['--ift-from'])}: the M0 → M1 stage runs only with --from-m0")
    elif method != "self-rewarding":
        raise UserError(f"--from-m0: the M0 → M1 stage (IFT + EFT, then SFT) is process-based self-rewarding's; --method {method} starts from its seed model")
    counts = _counts(problems_per_iteration, iterations)
    if eval_source is None:
        if not source.startswith(GYM_PREFIX):
            raise UserError("--eval-source is required when --source is not a gym: task (held-out problems must differ from the training problems)")
        eval_source = source
    builds = iterations + int(from_m0)
    if eval_source == source and source.startswith(GYM_PREFIX) and seed <= eval_seed < seed + builds:
        raise UserError(f"--eval-seed {eval_seed} is one of the build seeds ({seed}..{seed + builds - 1}): the held-out problems would be training problems")
    if judge_eval_pairs is not None and not Path(judge_eval_pairs).expanduser().exists():
        raise UserError(f"--judge-eval-pairs '{judge_eval_pairs}' not found")
    _check_roles(METHODS[method], method, engines)
    split: dict[str, list[str]] = {}
    for flag, value in (
        ("--build-args", build_args),
        ("--train-args", train_args),
        ("--ift-args", ift_args),
        ("--eft-args", eft_args),
        ("--sft-args", sft_args),
    ):
        try:
            split[flag] = shlex.split(value)
        except ValueError as exc:
            raise UserError(f"{flag}: {exc}") from exc
    loop_set = {"--model", "--source", "--limit", "--offset", "--seed", "--out", "--iteration"} | engine_flags((POLICY, *engines.roles))
    for flag in ("--build-args", "--ift-args", "--eft-args"):
        owned = (loop_set | ({"--from"} if flag == "--ift-args" else set())) & {a.split("=")[0] for a in split[flag]}
        if owned:
            raise UserError(f"{flag} may not set {', '.join(sorted(owned))}: the loop sets them")
    for flag in ("--train-args", "--sft-args"):
        args = {a.split("=")[0] for a in split[flag]}
        owned = {"--data", "--model", "--out"} & args
        if owned:
            raise UserError(f"{flag} may not set {', '.join(sorted(owned))}: the loop sets them")
        if {"--lora-r", "--peft.r"} & args and "--merge" not in args:
            raise UserError(f"{flag}: with --lora-r add --merge: the next stage runs the trained model, and a bare LoRA adapter is no model to run")
    return LoopSettings(
        method=method,
        iterations=iterations,
        engines=engines,
        source=source,
        limit=limit,
        seed=seed,
        eval_source=eval_source,
        eval_limit=eval_limit,
        eval_seed=eval_seed,
        eval_max_tokens=eval_max_tokens,
        judge_eval_pairs=judge_eval_pairs,
        spec=spec,
        build_args=split["--build-args"],
        train_args=split["--train-args"],
        from_m0=from_m0,
        ift_from=ift_from,
        m0_limit=m0_limit,
        problems_per_iteration=counts,
        ift_args=split["--ift-args"],
        eft_args=split["--eft-args"],
        sft_args=split["--sft-args"],
    )


def _counts(given: str | None, iterations: int) -> list[int] | None:
    """``--problems-per-iteration``: one count for every iteration, or one per iteration (e.g. 400,800,1200)."""
    if given is None:
        return None
    try:
        counts = [int(c) for c in given.split(",")]
    except ValueError as exc:
        raise UserError(f"--problems-per-iteration '{given}': give whole numbers separated by commas, e.g. 400,800,1200") from exc
    if any(c < 1 for c in counts) or len(counts) not in (1, iterations):
        raise UserError(f"--problems-per-iteration '{given}': one count (≥ 1) for every iteration, or one per iteration ({iterations})")
    return counts * iterations if len(counts) == 1 else counts


def _check_roles(method: LoopMethod, name: str, engines: EngineChoices) -> None:
    """M_i is a new local checkpoint each iteration: a role that runs it cannot be a served model, nor fixed by --<role>-model."""
    if method.role != POLICY and "model" in engines.roles.get(method.role, {}):
        raise UserError(f"--{method.role}-model: --method {name} trains the {method.role}, so M_i is the {method.role} of every iteration")
    moving = "<M_i>"
    choices = engines.with_model(method.role, moving)
    for role in (POLICY, *choices.roles):
        spec = choices.spec(role)
        if spec.model == moving and spec.engine == "openai":
            flag = "--engine" if role == POLICY else f"--{role}-engine"
            fixed = "" if role == method.role else f" (or fix the {role} with --{role}-model, e.g. a served judge)"
            raise UserError(
                f"--method {name}: the {role} runs M_i, a new local checkpoint each iteration, so it cannot use {flag} openai; use transformers or vllm{fixed}"
            )


def _die_with_parent() -> None:
    """Linux: the stage dies when the loop dies (a killed loop must not leave a stage writing into OUT)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
