"""The README's "Examples that produce rows" run as written and every stage of them keeps rows.

Every fenced block marked ``bash readme-test`` is extracted from the README, its commands are run in
order (one scratch folder for all blocks, so a later chain may start from an earlier chain's model),
with ``docs/`` linked in as a fresh clone has it. After each command, every manifest it wrote must be
non-empty: a built or curated run keeps at least one row, a training run takes at least one step. The
examples themselves carry the small limits, so what runs here is exactly what a reader runs.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from judgeforge.cli import main

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = re.compile(r"^```bash readme-test\n(.*?)^```", re.MULTILINE | re.DOTALL)


def marked_commands(text: str) -> list[list[str]]:
    """Each command of the marked blocks, as argv: continuation lines joined, comments dropped."""
    commands = []
    for block in MARK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                commands.append(argv)
    return commands


def manifests(root: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime_ns for p in [*root.rglob("manifest.json"), *root.rglob("training_manifest.json")]}


def emptiness(path: Path) -> str | None:
    """Why the run whose manifest is ``path`` is empty, or None when it holds rows (or training steps)."""
    manifest = json.loads(path.read_text())
    if path.name == "training_manifest.json":
        return None if manifest["steps"] >= 1 else f"{path.parent}: trained {manifest['steps']} steps"
    return None if manifest["rows_out"] >= 1 else f"{path.parent}: {manifest['rows_out']} rows"


def test_marked_blocks_parse_into_judgeforge_commands() -> None:
    text = (
        "```bash readme-test\njudgeforge build ift --source a.jsonl \\\n    --limit 2  # two\n\n# a comment\njudgeforge curate x\n```\n```bash\nnot run\n```\n"
    )
    assert marked_commands(text) == [["judgeforge", "build", "ift", "--source", "a.jsonl", "--limit", "2"], ["judgeforge", "curate", "x"]]


def test_every_builder_has_an_example_that_produces_rows() -> None:
    commands = marked_commands(README.read_text())
    build = main.commands["build"]
    assert isinstance(build, click.Group)
    shown = {argv[2] for argv in commands if argv[:2] == ["judgeforge", "build"]}
    assert set(build.commands) <= shown, f"builders without a README example: {sorted(set(build.commands) - shown)}"
    assert {argv[2] for argv in commands if argv[:2] == ["judgeforge", "train"]} == {"sft", "dpo", "rl"}


def test_readme_examples_run_as_written_and_every_stage_keeps_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = marked_commands(README.read_text())
    assert all(argv[0] == "judgeforge" for argv in commands), [argv for argv in commands if argv[0] != "judgeforge"]
    (tmp_path / "docs").symlink_to(README.parent / "docs")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for argv in commands:
        before = manifests(tmp_path)
        result = runner.invoke(main, argv[1:], env={"COLUMNS": "200"})
        assert result.exit_code == 0, f"{shlex.join(argv)}\n{result.output}"
        written = [p for p, mtime in manifests(tmp_path).items() if before.get(p) != mtime]
        if argv[1] in {"build", "curate", "train"}:
            assert written, f"{shlex.join(argv)} wrote no manifest"
        empty = [why for why in map(emptiness, written) if why]
        assert not empty, f"{shlex.join(argv)} left empty: {empty}\n{result.output}"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_links_point_inside_the_repository_and_at_real_headings() -> None:
    text = README.read_text()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", prose, re.MULTILINE)}
    links = re.findall(r"\]\(([^)\s]+)\)", prose)
    assert links
    broken = [
        link
        for link in links
        if (link.startswith("#") and link[1:] not in anchors)
        or (not link.startswith("#") and (re.match(r"\w+://", link) or not (README.parent / link.split("#")[0]).exists()))
    ]
    assert not broken, f"README links that leave the repository or point nowhere: {broken}"
