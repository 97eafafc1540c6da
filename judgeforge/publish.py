"""Publish a run dir to the Hugging Face Hub as a dataset repo a user can load and reproduce.

``judgeforge publish RUN_DIR --repo-id ORG/NAME`` lays out a Hub-layout folder — the Parquet shards
under ``data/``, the rendered card (README.md) with its PNG plots, and the run's ``manifest.json`` with a
``reproduce`` list of the exact ``judgeforge`` commands that built (and curated, and reviewed) it, as
distilabel ships its ``pipeline.yaml`` beside the data — and uploads it in one commit with
``huggingface_hub``. ``--to-dir DIR`` writes the folder and stops; ``--dry-run`` lays it out in a
temporary folder and prints what would be uploaded. The token comes from ``HF_TOKEN`` or the user's
``hf auth login``; it is handed to the Hub client and never written anywhere. The commit also deletes
the shards and plots an earlier publish left in the repo, so the card's ``configs`` never mix two runs.
Review answers (``review.parquet``, which names reviewers) and the request cache stay out of the folder.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pyarrow.parquet as pq
from rich.table import Table

from judgeforge.console import make_console
from judgeforge.data_cards.card import PLOT_PREFIX, render_card
from judgeforge.errors import UserError
from judgeforge.files import write_json
from judgeforge.runs import MANIFEST, TEST_SPLIT, Run, open_run, reproduce_commands, write_parquet

_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def check_repo_id(repo_id: str) -> str:
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or repo_id.endswith((".git", ".")):
        raise UserError(f"--repo-id '{repo_id}': expected ORG/NAME (letters, digits, '-', '_', '.')")
    return repo_id


def stage(info: Run, folder: Path, repo_id: str | None, license_id: str | None) -> list[Path]:
    """Write the Hub-layout folder for the run into ``folder`` (new or empty); return its files."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"'{folder}' exists and is not an empty folder: choose a new --to-dir")
    try:
        (folder / "data").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to '{folder}': {exc.strerror or exc}") from exc
    _copy_shards(info, folder / "data")
    test = info.test_split()
    if test is not None:  # the held-out split: the Hub's test split, its manifest beside it
        _copy_shards(test, folder / TEST_SPLIT / "data")
        test_manifest = test.require_manifest()
        write_json(folder / TEST_SPLIT / MANIFEST, {**test_manifest.dump(), "reproduce": reproduce_commands(test_manifest)})
    manifest = info.require_manifest()
    write_json(folder / MANIFEST, {**manifest.dump(), "reproduce": reproduce_commands(manifest)})
    render_card(open_run(folder), folder, repo_id, license_id)  # the card describes the files beside it
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _copy_shards(run: Run, data: Path) -> None:
    """The run's shards into ``data``; an empty one rewritten without a row group, which ``datasets`` could not read
    (shards written before judgeforge wrote empty ones that way)."""
    data.mkdir(parents=True, exist_ok=True)
    for shard in run.shards:
        if pq.read_metadata(shard).num_rows:
            shutil.copy2(shard, data / shard.name)
        else:
            write_parquet(pq.read_table(shard), data / shard.name)


def _token() -> str:
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise UserError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (or use --dry-run / --to-dir)")
    return token


@contextmanager
def _hub_errors(repo_id: str) -> Iterator[None]:
    from huggingface_hub.errors import HFValidationError, HTTPError

    try:
        yield
    except HFValidationError as exc:
        raise UserError(f"--repo-id '{repo_id}': {' '.join(str(exc).split())}") from exc
    except (HTTPError, OSError) as exc:
        raise UserError(f"upload to {repo_id} failed: {' '.join(str(exc).split()) or type(exc).__name__}") from exc


def commit_operations(folder: Path, existing: list[str]) -> list[Any]:
    """Add every file of the folder; delete the repo's old shards and plots this folder does not have."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    adds = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p)) for p in files]
    keep = {op.path_in_repo for op in adds}
    stale = [f for f in existing if f not in keep and (f.startswith(("data/", f"{TEST_SPLIT}/")) or re.fullmatch(rf"{PLOT_PREFIX}.*\.png", f))]
    return [*adds, *(CommitOperationDelete(path_in_repo=f) for f in sorted(stale))]


def upload(folder: Path, repo_id: str, private: bool, revision: str | None, message: str) -> str:
    """Create the dataset repo (and branch) if needed and replace its data with ``folder`` in one commit."""
    from huggingface_hub import HfApi

    api = HfApi(token=_token())
    with _hub_errors(repo_id):
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
        existing = api.list_repo_files(repo_id, repo_type="dataset", revision=revision)
        commit = api.create_commit(repo_id, operations=commit_operations(folder, existing), commit_message=message, repo_type="dataset", revision=revision)
    return str(getattr(commit, "commit_url", commit))


def _files_table(folder: Path, files: list[Path], title: str) -> Table:
    table = Table(title=title)
    table.add_column("file")
    table.add_column("bytes", justify="right")
    for path in files:
        table.add_row(str(path.relative_to(folder)), f"{path.stat().st_size:,}")
    return table


@click.command("publish")
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--repo-id", default=None, help="Hub dataset repo, ORG/NAME (required unless --to-dir).")
@click.option("--private", is_flag=True, default=False, help="Create the repo as private (an existing repo keeps its visibility).")
@click.option("--revision", default=None, help="Branch to commit to (created if missing) [default: main].")
@click.option("--license", "license_id", default=None, help="License id for the card, e.g. apache-2.0 [default: other, with a note].")
@click.option("--dry-run", is_flag=True, default=False, help="Lay the folder out in a temporary directory and print what would be uploaded; upload nothing.")
@click.option(
    "--to-dir", type=click.Path(path_type=Path, file_okay=False), default=None, help="Write the Hub-layout folder here (new or empty) and upload nothing."
)
def publish(run_dir: Path, repo_id: str | None, private: bool, revision: str | None, license_id: str | None, dry_run: bool, to_dir: Path | None) -> None:
    """Publish RUN_DIR as a Hugging Face Hub dataset: Parquet under data/, README.md card, plots, manifest.json.

    The folder loads with datasets.load_dataset and holds the exact judgeforge commands that produced the
    data (manifest.json, key "reproduce"). It is uploaded in one commit; the token comes from HF_TOKEN or
    `hf auth login` and is never written anywhere.
    """
    if repo_id is None and to_dir is None:
        raise UserError("--repo-id is required (or write the folder only with --to-dir DIR)")
    if repo_id is not None:
        check_repo_id(repo_id)
    info = open_run(run_dir)
    manifest = info.require_manifest()
    console = make_console()
    if to_dir is not None:
        files = stage(info, to_dir, repo_id, license_id)
        console.print(_files_table(to_dir, files, f"wrote {to_dir} (nothing uploaded)"))
        return
    assert repo_id is not None
    with tempfile.TemporaryDirectory(prefix="judgeforge-publish-") as tmp:
        folder = Path(tmp) / "dataset"
        files = stage(info, folder, repo_id, license_id)
        target = f"{repo_id}{'@' + revision if revision else ''}{' (private)' if private else ''}"
        if dry_run:
            console.print(_files_table(folder, files, f"dry run: would upload to {target} in one commit"))
            return
        url = upload(folder, repo_id, private, revision, f"judgeforge: publish {info.kind.name} run {manifest.run_id or ''}".strip())
        console.print(_files_table(folder, files, f"uploaded to {target}"))
    console.print(url)
