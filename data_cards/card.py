"""Render a run dir's dataset card: README.md with Hub front matter, the story of the data, and its plots.

A dataset without a card is a file of unknown provenance. ``judgeforge card RUN_DIR`` writes README.md
(and PNG plots beside it) from what the run already records: the YAML front matter the Hub validates
(license, language, task categories, size category, ``configs`` pointing at the Parquet shards,
``dataset_info`` features derived from the shards' own Arrow schema, so ``datasets.load_dataset`` and the
Hub viewer agree with the files), and a body that says how the data was built — the builder's own
description of its method and paper, its name and version, the models, every builder option with its
meaning (sampling parameters included), the source, the seed — then the curation funnel and the human
review agreement when the run has them, the columns, how to train on it with TRL, and the exact
commands that rebuild it.

What a card says per kind (the paper, Hub task categories and tags, plots, the trainer and view of the
TRL snippet, the review questions' titles) comes from the kind's declaration in ``schemas/``
(:class:`judgeforge.schemas.kind.Kind`); nothing here is per kind.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.parquet as pq
from jinja2 import Environment, PackageLoader, StrictUndefined

from judgeforge import plots
from judgeforge.builders import builder_names, diagnose_run, load_builder
from judgeforge.builders.base import Builder
from judgeforge.console import make_console
from judgeforge.errors import UserError
from judgeforge.files import write_text
from judgeforge.runs import TEST_SPLIT, Manifest, Run, SourceRef, open_run, reproduce_commands
from judgeforge.schemas.kind import CardExtras, Kind, Plot, View

DATA_FILES = "data/shard-*.parquet"
TEST_DATA_FILES = f"{TEST_SPLIT}/{DATA_FILES}"
PLOT_PREFIX = "plot-"


BASE_TAGS = ("judgeforge", "synthetic")

_SIZES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)


def size_category(rows: int) -> str:
    return next((label for limit, label in _SIZES if rows < limit), "n>1B")


def _markdown(docstring: str) -> str:
    """A module docstring as markdown: ``code`` → `code`, Sphinx roles dropped to their target."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", docstring)
    return text.replace("``", "`")


def _type_name(dtype: pa.DataType) -> str:
    if pa.types.is_list(dtype):
        return f"list<{_type_name(dtype.value_type)}>"
    if pa.types.is_struct(dtype):
        return "struct{" + ", ".join(f"{f.name}: {_type_name(f.type)}" for f in dtype) + "}"
    return str(dtype)


def _row_groups(path: Path) -> list[Any]:
    meta = pq.ParquetFile(path).metadata
    return [meta.row_group(i) for i in range(meta.num_row_groups)]


def run_builder(manifest: Manifest) -> type[Builder[Any]] | None:
    """The builder class that made the rows, when it is still registered under the manifest's name."""
    name = manifest.builder.name if manifest.builder else None
    return load_builder(name) if name in builder_names() else None


def _module_doc(obj: Any) -> str:
    return (sys.modules[obj.__module__].__doc__ or "").strip()


def dataset_info(info: Run) -> dict[str, Any]:
    """``dataset_info`` for the front matter, with features derived from the shards' Arrow schema; a held-out test split is a split of its own."""
    from datasets import DatasetInfo, Features, SplitDict, SplitInfo

    schema = info.dataset().schema.remove_metadata()
    parts = {"train": info, **({TEST_SPLIT: test} if (test := info.test_split()) is not None else {})}
    splits, size, total = {}, 0, 0
    for name, part in parts.items():
        num_bytes = sum(rg.total_byte_size for p in part.shards for rg in _row_groups(p))
        splits[name] = SplitInfo(name=name, num_bytes=num_bytes, num_examples=part.num_rows())
        size += sum(p.stat().st_size for p in part.shards)
        total += num_bytes
    result: dict[str, Any] = DatasetInfo(
        features=Features.from_arrow_schema(schema), splits=SplitDict(splits), download_size=size, dataset_size=total
    )._to_yaml_dict()
    return {"config_name": "default", **result}


def front_matter(info: Run, kind_card: CardExtras, license_id: str, pretty_name: str) -> str:
    from huggingface_hub import DatasetCardData

    test = info.test_split()
    files = [{"split": "train", "path": DATA_FILES}, *([{"split": TEST_SPLIT, "path": TEST_DATA_FILES}] if test is not None else [])]
    data = DatasetCardData(
        license=license_id,
        language=["en"],
        pretty_name=pretty_name,
        size_categories=[size_category(info.num_rows() + (test.num_rows() if test is not None else 0))],
        task_categories=list(kind_card.task_categories),
        tags=[*BASE_TAGS, *kind_card.tags],
        configs=[{"config_name": "default", "data_files": files}],
        dataset_info=dataset_info(info),
    )
    return data.to_yaml()


def usage_snippet(manifest: Manifest, kind: Kind, repo_id: str) -> str:
    """Python that loads the dataset and trains on it with the kind's TRL view (or just loads it)."""
    policy = manifest.models.get("policy")
    model = policy.model if policy else "YOUR_MODEL"
    context: dict[str, Any] = {"repo_id": repo_id, "model": model, "view": None}
    views = [v for m in kind.trained_by() if isinstance(v := kind.view(m), View)]
    if views:
        view = views[0]
        trainer_module, trainer, config = view.trainer
        view_module, _, view_name = view.name.partition(":")
        context.update(
            view=view_name,
            view_module=view_module,
            needs_tokenizer=view.needs_tokenizer,
            trainer=trainer,
            trainer_module=trainer_module,
            config=config,
        )
    return _env().get_template("usage.py.j2").render(**context).strip()


def funnel_of(manifest: Manifest) -> Any:
    """A curated run's funnel: ``curation.funnel`` as ``judgeforge curate`` writes it, or a top-level ``funnel``."""
    if manifest.curation and manifest.curation.funnel:
        return [step.model_dump(mode="json", exclude_unset=True) for step in manifest.curation.funnel]
    return (manifest.model_extra or {}).get("funnel")


def _funnel(funnel: Any) -> list[dict[str, Any]] | None:
    """The funnel as table rows (step, filter, action, rows in, rows out, an example drop), or None if unreadable."""
    if not funnel:
        return None
    steps = [{"name": k, **v} for k, v in funnel.items()] if isinstance(funnel, dict) else list(funnel)
    if not all(isinstance(step, dict) for step in steps):
        return None
    out = []
    for step in steps:
        examples = step.get("examples") or []
        example = f"`{examples[0].get('id')}`: {examples[0].get('reason')}" if examples and isinstance(examples[0], dict) else ""
        out.append(
            {
                "name": str(step.get("name", step.get("filter", "?"))),
                "filter": str(step.get("filter", "")),
                "action": str(step.get("action", "drop")),
                "rows_in": step.get("rows_in"),
                "rows_out": step.get("rows_out"),
                "example": example.replace("|", "\\|").replace("\n", " "),
            }
        )
    return out


def _draw(plot: Plot, info: Run, out: Path) -> tuple[Path, str]:
    data = plot.data(info.dataset().to_table(columns=list(plot.columns)))
    path = out / f"{PLOT_PREFIX}{plot.name}.png"
    if plot.draw == "histogram":
        return plots.histogram(data, plot.title, plot.xlabel, path), plot.caption
    labels, counts = data
    return plots.bars(labels, counts, plot.title, path, xlabel=plot.xlabel or "rows"), plot.caption


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("judgeforge.data_cards", "templates"), undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["pct"] = lambda v: "–" if v is None else f"{v:.1%}"
    return env


def _config_rows(manifest: Manifest, builder: type[Builder[Any]] | None) -> list[tuple[str, str, str]]:
    fields = builder.Config.model_fields if builder else {}
    return [(f"--{name.replace('_', '-')}", f"{value}", (fields[name].description or "") if name in fields else "") for name, value in manifest.config.items()]


def _build_rows(m: Manifest) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if m.builder:
        rows.append(("builder", f"`{m.builder.name}` {m.builder.version}"))
    for role, model in m.models.items():
        engine = m.engines.get(role, {})
        where = ", ".join(f"{k} {v}" for k, v in engine.items() if k in ("engine", "device"))
        rows.append((f"{role} model", f"`{model.model}` (weights sha256 `{(model.weights_hash or '')[:12]}…`; {where})"))
    if m.source:
        rows.append(("source", _source(m.source)))
    test = m.splits.get(TEST_SPLIT)
    if test is not None:
        train = m.splits.get("train")
        of = f" of {train.inputs + test.inputs}" if train is not None else ""
        fraction = f"--test-fraction {test.fraction:g}, " if test.fraction is not None else ""
        rows.append(
            (
                "held-out test split",
                f"{test.rows:,} rows from {test.inputs:,}{of} problems ({fraction}by problem id: no problem is in both splits); "
                f"`{TEST_SPLIT}/`, the `{TEST_SPLIT}` split on the Hub; never trained on by `judgeforge train`",
            )
        )
    if m.seed is not None:
        rows.append(("seed", str(m.seed)))
    if m.tokens:
        rows.append(("tokens", f"{m.tokens.prompt:,} prompt, {m.tokens.completion:,} generated"))
    for stage in m.stages():
        if stage.started_at:
            rows.append((_STAGE_WORDS[stage.stage], f"{stage.started_at} → {stage.finished_at or '?'} (judgeforge {stage.judgeforge_version or '?'})"))
    return rows


_STAGE_WORDS = {"build": "built", "curate": "curated", "review": "reviewed"}


def _source(source: SourceRef) -> str:
    """The source as given, what it named (absolute path and file sha256, or the reasoning-gym task and seed), and the inputs read."""
    named = source.resolved
    where = ""
    if named is not None and named.type == "file":
        where = f" → `{named.path}` (file sha256 `{named.sha256}`)"
    elif named is not None and named.type == "folder":
        where = f" → `{named.path}`"
    elif named is not None and named.type == "gym":
        where = f" (reasoning-gym task `{named.task}`, seed {named.seed}, {named.size} entries)"
    limit = f", limit {source.limit}" if source.limit else ""
    inputs = "?" if source.inputs is None else source.inputs
    return f"`{source.source}`{where}; split {source.split}{limit}; {inputs} inputs read (sha256 of the inputs as loaded `{(source.fingerprint or '')[:12]}…`)"


def verdict_summary(info: Run) -> str:
    """The card's plain-words account of the rows' verdicts (parsed vs forced, position consistency), for kinds that carry them."""
    count = info.kind.verdicts
    if count is None:
        return ""
    manifest = info.require_manifest()
    return count.count(info.dataset().to_table(columns=list(count.columns)), manifest.config).sentence()


def render_card(info: Run, out: Path, repo_id: str | None = None, license_id: str | None = None, pretty_name: str | None = None) -> list[Path]:
    """Write README.md and its plots into ``out``; return the files written."""
    kind = info.kind
    kind_card = kind.card
    manifest = info.require_manifest()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write the card to '{out}': {exc.strerror or exc}") from exc
    for stale in out.glob(f"{PLOT_PREFIX}*.png"):
        stale.unlink()
    builder = run_builder(manifest)
    pretty = pretty_name or f"{kind_card.pretty} ({kind.name})"
    figures = [_draw(plot, info, out) for plot in kind_card.plots]
    raw_funnel = funnel_of(manifest)
    funnel = _funnel(raw_funnel)
    if funnel and all(isinstance(s["rows_out"], (int, float)) for s in funnel):
        first_in = funnel[0]["rows_in"]
        labels = (["input"] if isinstance(first_in, (int, float)) else []) + [s["name"] for s in funnel]
        counts = ([first_in] if isinstance(first_in, (int, float)) else []) + [s["rows_out"] for s in funnel]
        figures.append(
            (plots.bars(labels, counts, "Curation funnel: rows left after each step", out / f"{PLOT_PREFIX}funnel.png"), "Rows left after each curation step.")
        )
    repo = repo_id or f"YOUR_ORG/{kind.name.replace('_', '-')}"
    schema = info.dataset().schema
    text = (
        _env()
        .get_template("card.md.j2")
        .render(
            front_matter=front_matter(info, kind_card, license_id or "other", pretty).strip(),
            license_set=license_id is not None,
            license_id=license_id or "other",
            pretty=pretty,
            kind=kind.name,
            rows=info.num_rows(),
            repo_id=repo,
            summary=builder.summary if builder else "",
            verdicts=verdict_summary(info),
            diagnosis=diagnose_run(manifest),
            builder_doc=_markdown(_module_doc(builder) if builder else ""),
            schema_doc=_markdown(_module_doc(builder.row_model) if builder else ""),
            paper=kind.paper,
            build_rows=_build_rows(manifest),
            config_rows=_config_rows(manifest, builder),
            report_rows=builder.report(manifest.builder_stats) if builder else [],
            funnel=funnel,
            raw_funnel=raw_funnel if raw_funnel and not funnel else None,
            review=manifest.review,
            review_titles={q.name: q.title for q in kind.review.questions},
            figures=[(p.name, caption) for p, caption in figures],
            columns=[(f.name, _type_name(f.type)) for f in schema],
            usage=usage_snippet(manifest, kind, repo),
            commands=[shlex.join(c) for c in reproduce_commands(manifest)],
        )
    )
    readme = write_text(out / "README.md", text)
    return [readme, *(p for p, _ in figures)]


@click.command("card")
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None, help="Folder for README.md and its plots [default: RUN_DIR].")
@click.option("--repo-id", default=None, help="Hub id the card's snippets load from, e.g. my-org/step-prefs [default: a placeholder].")
@click.option("--license", "license_id", default=None, help="License id for the front matter, e.g. apache-2.0 [default: other, with a note to set it].")
@click.option("--pretty-name", default=None, help="Human-readable dataset name [default: from the kind].")
def card(run_dir: Path, out: Path | None, repo_id: str | None, license_id: str | None, pretty_name: str | None) -> None:
    """Render RUN_DIR's dataset card: README.md with Hub front matter and a body, plus PNG plots beside it.

    The front matter (license, language, task categories, size category, configs pointing at the Parquet
    shards, dataset_info features) is what the Hub validates; the body says how the data was built
    (method and paper, builder and version, models, every option, source, seed), the curation funnel and
    the review agreement when the run has them, its columns, how to train on it with TRL, and the
    commands that rebuild it.
    """
    run = open_run(run_dir)
    written = render_card(run, out or run_dir, repo_id, license_id, pretty_name)
    console = make_console()
    for path in written:
        console.print(str(path))
