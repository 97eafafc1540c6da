"""Publishing, tested up to the network boundary (there is no Hub here).

Real: the folder layout, the card, ``huggingface_hub``'s ``HfApi`` construction and token lookup, and our
commit operations. Replaced: the four ``HfApi`` methods that would talk to the Hub (``create_repo``,
``create_branch``, ``list_repo_files``, ``create_commit``), by recorders that check what would be sent.
Not exercised: the HTTP requests themselves, LFS/xet upload of the Parquet files, and the Hub's
server-side validation of the card's YAML.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from judgeforge.cli import main
from tests.test_cards import step_prefs_rows, synthetic_run


class FakeHub:
    """Records the calls ``judgeforge publish`` makes on ``HfApi`` and what the commit would upload."""

    def __init__(self, existing: list[str]) -> None:
        self.existing = existing
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.uploaded: dict[str, bytes] = {}
        self.deleted: list[str] = []
        self.tokens: set[str | None] = set()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from huggingface_hub import HfApi

        hub = self

        def create_repo(api: HfApi, repo_id: str, **kwargs: Any) -> str:
            hub.tokens.add(api.token)
            hub.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
            return f"https://huggingface.co/datasets/{repo_id}"

        def create_branch(api: HfApi, repo_id: str, **kwargs: Any) -> None:
            hub.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

        def list_repo_files(api: HfApi, repo_id: str, **kwargs: Any) -> list[str]:
            hub.calls.append(("list_repo_files", {"repo_id": repo_id, **kwargs}))
            return list(hub.existing)

        def create_commit(api: HfApi, repo_id: str, operations: Any, **kwargs: Any) -> Any:
            from huggingface_hub import CommitOperationAdd, CommitOperationDelete

            hub.tokens.add(api.token)
            hub.calls.append(("create_commit", {"repo_id": repo_id, **kwargs}))
            for op in operations:
                if isinstance(op, CommitOperationAdd):
                    hub.uploaded[op.path_in_repo] = Path(op.path_or_fileobj).read_bytes()
                else:
                    assert isinstance(op, CommitOperationDelete)
                    hub.deleted.append(op.path_in_repo)

            class Info:
                commit_url = f"https://huggingface.co/datasets/{repo_id}/commit/abc123"

            return Info()

        for name, func in (
            ("create_repo", create_repo),
            ("create_branch", create_branch),
            ("list_repo_files", list_repo_files),
            ("create_commit", create_commit),
        ):
            monkeypatch.setattr(HfApi, name, func)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    value = "hf_" + secrets.token_hex(16)
    monkeypatch.setenv("HF_TOKEN", value)
    _no_stored_login(monkeypatch, tmp_path)
    return value


def _no_stored_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))


def _one_line(result: Any) -> str:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def _no_token_under(root: Path, token: str) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_upload_is_one_commit_of_the_hub_folder(step_prefs_run: Path, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = FakeHub(existing=[".gitattributes", "README.md", "data/shard-00000.parquet", "data/shard-00007.parquet", "plot-old.png", "notes.md"])
    hub.install(monkeypatch)
    result = CliRunner().invoke(
        main, ["publish", str(step_prefs_run), "--repo-id", "my-org/step-prefs", "--private", "--revision", "v1", "--license", "apache-2.0"]
    )
    assert result.exit_code == 0, result.output
    assert [name for name, _ in hub.calls] == ["create_repo", "create_branch", "list_repo_files", "create_commit"]  # one commit
    assert hub.calls[0][1] == {"repo_id": "my-org/step-prefs", "repo_type": "dataset", "private": True, "exist_ok": True}
    assert hub.calls[1][1]["branch"] == "v1" and hub.calls[3][1]["revision"] == "v1" and hub.calls[3][1]["repo_type"] == "dataset"
    assert hub.tokens == {token}  # the Hub client got HF_TOKEN ...

    shards = sorted(f"data/{p.name}" for p in (step_prefs_run / "data").glob("shard-*.parquet"))
    assert sorted(hub.uploaded) == sorted([*shards, "README.md", "manifest.json", "plot-score-margin.png", "plot-step-index.png", "plot-solution-status.png"])
    for shard in shards:
        assert hub.uploaded[shard] == (step_prefs_run / shard).read_bytes()
    assert hub.deleted == (["data/shard-00007.parquet"] if "data/shard-00007.parquet" not in shards else []) + ["plot-old.png"]
    manifest = json.loads(hub.uploaded["manifest.json"])
    assert manifest["reproduce"] == [json.loads((step_prefs_run / "manifest.json").read_text())["command"]]
    assert b'load_dataset("my-org/step-prefs"' in hub.uploaded["README.md"]
    for name, content in hub.uploaded.items():  # ... and it is in nothing that was sent or written
        assert token.encode() not in content, name
    assert token not in result.output
    _no_token_under(step_prefs_run, token)
    assert "commit/abc123" in result.output


def test_dry_run_and_to_dir_send_nothing(tmp_path: Path, token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = FakeHub(existing=[])
    hub.install(monkeypatch)
    run = synthetic_run(tmp_path / "run", step_prefs_rows(["final_answer", "max_steps"]))
    dry = CliRunner().invoke(main, ["publish", str(run), "--repo-id", "my-org/x", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would upload to my-org/x" in dry.output and "data/shard-00000.parquet" in dry.output and "README.md" in dry.output
    folder = tmp_path / "folder"
    to_dir = CliRunner().invoke(main, ["publish", str(run), "--to-dir", str(folder)])
    assert to_dir.exit_code == 0, to_dir.output
    assert hub.calls == []
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "README.md",
        "data/shard-00000.parquet",
        "manifest.json",
        "plot-score-margin.png",
        "plot-solution-status.png",
        "plot-step-index.png",
    ]
    _no_token_under(folder, token)
    assert "nothing uploaded" in to_dir.output


def test_publish_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    run = synthetic_run(tmp_path / "run", step_prefs_rows(["final_answer"]))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    _no_stored_login(monkeypatch, tmp_path)
    assert "no Hugging Face token" in _one_line(CliRunner().invoke(main, ["publish", str(run), "--repo-id", "my-org/x"]))
    assert "expected ORG/NAME" in _one_line(CliRunner().invoke(main, ["publish", str(run), "--repo-id", "no-slash", "--dry-run"]))
    assert "--repo-id is required" in _one_line(CliRunner().invoke(main, ["publish", str(run)]))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    assert "not an empty folder" in _one_line(CliRunner().invoke(main, ["publish", str(run), "--to-dir", str(busy)]))
    assert (busy / "keep.txt").read_text() == "x" and len(list(busy.iterdir())) == 1

    def refuse(api: HfApi, repo_id: str, **kwargs: Any) -> None:
        import httpx2  # the HTTP client huggingface_hub raises its errors with

        url = "https://huggingface.co/api/repos/create"
        response = httpx2.Response(401, request=httpx2.Request("POST", url))
        raise HfHubHTTPError(f"401 Client Error: Unauthorized for url: {url}", response=response)

    monkeypatch.setenv("HF_TOKEN", "hf_" + secrets.token_hex(8))
    monkeypatch.setattr(HfApi, "create_repo", refuse)
    line = _one_line(CliRunner().invoke(main, ["publish", str(run), "--repo-id", "my-org/x"]))
    assert line.startswith("Error: upload to my-org/x failed: 401")


def test_help_documents_every_option_of_review_card_and_publish() -> None:
    import click

    review = main.commands["review"]
    assert isinstance(review, click.Group)
    commands = [(["review", name], cmd) for name, cmd in review.commands.items()] + [([name], main.commands[name]) for name in ("card", "publish")]
    assert sorted(review.commands) == ["apply", "pull", "push"]
    for path, command in commands:
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, result.output
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.opts[0] in result.output and param.help, f"{' '.join(path)} {param.opts[0]}"
