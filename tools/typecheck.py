"""Type-check the installed layout: mypy over the ``judgeforge`` package, strict on ``formats`` and ``schemas``.

The sub-packages live in top-level folders mapped by pyproject's ``package-dir`` (``builders/`` is
``judgeforge.builders``), which mypy cannot follow from an editable install. This script links the
folders into the import layout under ``build/typecheck/`` and runs mypy there, twice: the whole package
with the project's settings, then ``judgeforge.formats`` and ``judgeforge.schemas`` with ``--strict``.
Run by ``make lint`` (and so by ``make test``); exits non-zero on any error.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"
STRICT = ("judgeforge.formats", "judgeforge.schemas")


def link_tree() -> None:
    package_dir: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(TREE, ignore_errors=True)
    (TREE / "judgeforge").mkdir(parents=True)
    for entry in (ROOT / "judgeforge").iterdir():
        if entry.name != "__pycache__":
            (TREE / "judgeforge" / entry.name).symlink_to(entry)
    for package, folder in package_dir.items():
        if package != "judgeforge":
            (TREE / Path(*package.split("."))).symlink_to(ROOT / folder)


def mypy(*args: str) -> int:
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / "build" / "mypy-cache"), *args]
    return subprocess.run(command, cwd=TREE, check=False).returncode


def main() -> int:
    link_tree()
    whole = mypy("-p", "judgeforge")
    strict = mypy("--strict", "--follow-imports=silent", *(a for p in STRICT for a in ("-p", p)))
    return 1 if whole or strict else 0


if __name__ == "__main__":
    sys.exit(main())
