"""``--dry-run``: what a build would do and what it would cost, with no model weights loaded and nothing written.

A build's cost is engine calls and tokens, and for a judge most of it is prefill: the prompts it reads,
which a generated-tokens rate never shows. Before committing hours to a run, :func:`dry_run` says how
many inputs and chunks there are, what the run dir already holds (a new run, a resume, a growth, or
another run that a real build would refuse), and per role and stage of the builder how many requests
and completions it makes and how many prompt and generated tokens they take. The stages come from the
builder itself (:meth:`judgeforge.builders.base.Builder.estimate`, declared beside its ``build``); the
prompt tokens are measured by rendering the builder's real prompts for the first inputs with each
role's own tokenizer and chat template (the tokenizer files only, never the weights), and the rest are
read off the builder's parameters as bounds: every completion runs to its token budget, every search
to its last step, every verdict needs forcing.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from judgeforge.builders import load_builder
from judgeforge.builders.base import ESTIMATE_SAMPLE, Builder, Calls, check_needs
from judgeforge.chat import render_prompt
from judgeforge.console import make_console
from judgeforge.engines import EngineSpec
from judgeforge.errors import UserError
from judgeforge.executors.build import BuildOptions, validate_config
from judgeforge.executors.local import check_previous, chunk_bounds, inputs_fingerprint, recipe_of, role_specs, spec_identity
from judgeforge.runs import MANIFEST, read_manifest, shard_path


class StageCost(BaseModel):
    """One stage of a build's estimate: its engine calls and their tokens (upper bounds but for the measured prompts)."""

    role: str
    stage: str
    requests: int
    completions: int
    prompt_tokens: int
    generated_tokens: int


class DryRun(BaseModel):
    """What ``--dry-run`` found: the inputs, the chunks, the run dir's state, and the cost of what is left to build."""

    builder: str
    inputs: int
    chunks: int
    chunk_size: int
    to_build: int
    """Chunks this process would build (its ``--shard`` share, less those already built)."""
    inputs_to_build: int
    state: str
    stages: list[StageCost]


@functools.lru_cache(maxsize=8)
def _load_tokenizer(name: str, trust_remote_code: bool) -> Any:
    from judgeforge.models import load_tokenizer, resolve_model

    return load_tokenizer(resolve_model(name), trust_remote_code)


def _tokenizer(spec: EngineSpec) -> Any:
    """The tokenizer and chat template a role's engine renders with (openai: ``--tokenizer``, else the model); no weights."""
    return _load_tokenizer(spec.tokenizer if spec.engine == "openai" and spec.tokenizer else spec.model, spec.trust_remote_code)


def stage_cost(calls: Calls, spec: EngineSpec) -> StageCost:
    """A stage's tokens: its sample prompts tokenized as the role's engine would, a prompt counted once per completion."""
    tokenizer = _tokenizer(spec)
    lengths = [len(tokenizer(render_prompt(tokenizer, r.messages, r.prefix), add_special_tokens=False)["input_ids"]) for r in calls.prompts]
    per_prompt = (sum(lengths) / len(lengths) if lengths else 0) + calls.added_tokens
    completions = calls.requests * calls.samples
    return StageCost(
        role=calls.role,
        stage=calls.stage,
        requests=calls.requests,
        completions=completions,
        prompt_tokens=round(completions * per_prompt),
        generated_tokens=completions * calls.max_tokens,
    )


def _state(
    builder_cls: type[Builder[Any]], opts: BuildOptions, config: BaseModel, items: list[BaseModel], specs: dict[str, EngineSpec]
) -> tuple[str, list[Any]]:
    """What the run dir holds, in words, and the growth history the plan would use."""
    root = opts.out / builder_cls.row_model.kind
    previous = read_manifest(root / MANIFEST)
    if previous is None:
        return ("a new run" if not root.exists() else f"a new run ({root} has no manifest)"), []
    plan = {
        "builder": {"name": builder_cls.name, "version": builder_cls.version},
        "config": config.model_dump(mode="json"),
        "source": opts.source.model_dump(mode="json"),
        "models": {role: {"spec": spec_identity(spec)} for role, spec in specs.items()},
        "seed": opts.seed,
        "chunk_size": opts.chunk_size,
    }
    try:
        growth = check_previous(builder_cls, root, previous, recipe_of(plan), opts.source, items, models_by_spec=True)
    except UserError as exc:
        return f"refused: {exc.message}", []
    recorded = previous.source.inputs if previous.source is not None and previous.source.inputs is not None else len(items)
    if len(items) > recorded:
        return f"grows the run at {root} from {recorded} to {len(items)} inputs (its shards kept, the new inputs in new chunks)", growth
    if previous.source is not None and previous.source.fingerprint == inputs_fingerprint(items):
        return f"resumes the run at {root} ({previous.status or 'no status'})", growth
    return f"the run at {root}", growth


def dry_run(opts: BuildOptions) -> DryRun:
    """Plan ``opts``'s build and estimate its cost; load no weights, write nothing."""
    builder_cls = load_builder(opts.builder)
    config = validate_config(builder_cls, opts)
    specs = role_specs(builder_cls.roles, opts.engines)
    items = builder_cls.load_inputs(opts.source)
    check_needs(builder_cls, config, opts.source, items)  # what cannot work fails the same one line as the build would
    state, growth = _state(builder_cls, opts, config, items, specs)
    bounds = chunk_bounds(len(items), opts.chunk_size, growth)
    root = opts.out / builder_cls.row_model.kind
    refused = state.startswith("refused")
    todo = [c for c in range(len(bounds)) if c % opts.shard.count == opts.shard.index and (refused or not shard_path(root, c).exists())]
    left = [item for c in todo for item in items[bounds[c][0] : bounds[c][1]]]
    stages = [stage_cost(calls, specs[calls.role]) for calls in builder_cls.estimate(config, left)] if left else []
    return DryRun(
        builder=builder_cls.name,
        inputs=len(items),
        chunks=len(bounds),
        chunk_size=opts.chunk_size,
        to_build=len(todo),
        inputs_to_build=len(left),
        state=state,
        stages=stages,
    )


def dry_run_table(plan: DryRun) -> Table:
    """The estimate as one table: a line per stage, a total per role."""
    table = Table(title=f"{plan.builder} · dry run · {plan.inputs_to_build} inputs in {plan.to_build} chunks to build")
    for name, justify in (
        ("role", "left"),
        ("stage", "left"),
        ("requests", "right"),
        ("completions", "right"),
        ("prompt tokens", "right"),
        ("generated ≤", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for role in dict.fromkeys(s.role for s in plan.stages):
        mine = [s for s in plan.stages if s.role == role]
        for s in mine:
            table.add_row(role, s.stage, f"{s.requests:,}", f"{s.completions:,}", f"{s.prompt_tokens:,}", f"{s.generated_tokens:,}")
        if len(mine) > 1:
            table.add_row(
                f"[bold]{role}[/]",
                "[bold]all stages[/]",
                *(f"[bold]{sum(getattr(s, f) for s in mine):,}[/]" for f in ("requests", "completions", "prompt_tokens", "generated_tokens")),
            )
    return table


def print_dry_run(plan: DryRun, console: Console | None = None) -> None:
    """The plan in words, the estimate table, and what the numbers mean."""
    console = console or make_console()
    console.print(f"[bold]{plan.builder}[/]: {plan.inputs} inputs in {plan.chunks} chunks of {plan.chunk_size}; {plan.state}")
    if plan.state.startswith("refused"):
        console.print("A real build stops here; the estimate below is for building it in another --out.")
    if not plan.stages:
        console.print("nothing to build" if not plan.inputs_to_build else "no engine calls: this builder makes its rows without a model")
    else:
        console.print(dry_run_table(plan))
        console.print(
            f"Prompt tokens: the builder's real prompts for the first {ESTIMATE_SAMPLE} inputs, tokenized with each role's tokenizer, "
            "plus at most the generated text later prompts hold. Requests and generated tokens assume every completion runs to its "
            "token budget, every search to its last step and every verdict needs forcing: a real build makes fewer. "
            "Nothing was loaded or written."
        )
