"""Load problems (question, gold answer, gold solution) from every kind of source through one interface.

Every builder reads its problems through :func:`load_problems`, so a reasoning-gym task, a local
JSONL/JSON/Parquet/CSV file and a ``datasets`` dataset (Hub id, local data directory or a
``save_to_disk`` directory) all come out as the same :class:`Problem` records, in a deterministic
order, with the same validation and the same one-line :class:`~judgeforge.errors.UserError` messages
naming the file, row and field at fault. :func:`resolve_source` says what a source named, as a manifest
records it (a file's absolute path and the sha256 of its bytes, a reasoning-gym task's seed and size), and
:func:`missing_gold` why a source gives no gold answer or solution, naming the option that maps one.

Gold answers written GSM8K-style (a worked solution whose last line is ``#### <answer>``) are split
into the final answer and the solution steps, for files and for reasoning-gym chains alike.

The heavy libraries (reasoning-gym, datasets, polars) are imported on first use so that the CLI starts
quickly when a command does not need them.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer

from judgeforge.errors import UserError

GYM_PREFIX = "gym:"
GYM_SIZE = 1000
"""The smallest reasoning-gym dataset a ``gym:`` source draws from: ``--limit N`` takes the first N problems of a
dataset of max(N, 1000), so the first problems do not depend on ``--limit`` up to 1000 (reasoning-gym itself
does not promise that: acre and list_functions draw other first problems for another dataset size)."""
_GOLD_ANSWER_LINE = re.compile(r"^\s*####\s*(.*?)\s*$")
# A Hub dataset id: ``name`` or ``owner/name``.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
# A suffix that marks a file name (``notes.txt``) rather than a versioned Hub name (``Math-1.5``).
_FILE_SUFFIX = re.compile(r"\.[A-Za-z]{2,5}")

Row = dict[str, Any]
Gold = Literal["answer", "solution"]
"""What a problem may carry besides its question: a gold final answer, a gold step-by-step solution."""


class Problem(BaseModel):
    """One problem: a question, optionally its gold final answer and gold step-by-step solution.

    ``solution`` holds one step per line where the source provides steps. ``meta`` is JSON-serialisable;
    for reasoning-gym problems it holds what the task's scorer needs (``gym_task``, ``gym_entry`` and
    the ``gym_seed``/``gym_size``/``gym_index`` that regenerate the exact entry).
    """

    id: str
    question: str
    answer: str | None = None
    solution: str | None = None
    meta: dict[str, Any] = {}

    @property
    def gradable(self) -> bool:
        """Whether answers to this problem can be graded: it has a gold answer, or a reasoning-gym scorer."""
        return self.answer is not None or "gym_task" in self.meta

    def has_gold(self, what: Gold) -> bool:
        """Whether the problem gives a gold ``answer`` (one to grade against, :attr:`gradable`) or a gold ``solution``."""
        return self.gradable if what == "answer" else bool(self.solution and self.solution.strip())


class SourceConfig(BaseModel):
    """Where the problems come from and which columns hold what.

    ``source`` is ``gym:<task>``, a ``.jsonl``/``.json``/``.parquet``/``.csv`` file, or a ``datasets``
    id or path. ``answer_col=None`` means the source has no gold answers. ``offset`` skips the first N
    rows of a file or ``datasets`` source (a reasoning-gym task draws new problems with another
    ``seed`` instead), then ``limit`` keeps the next N problems (of a reasoning-gym task: of a dataset of
    max(N, :data:`GYM_SIZE`), so a larger limit keeps the same first problems); default ids stay the rows'
    own numbers, so a problem keeps its id whatever the offset. ``seed`` only matters for reasoning-gym
    tasks; ``split`` only for ``datasets`` sources.
    """

    source: str
    question_col: str = "question"
    answer_col: str | None = "answer"
    solution_col: str | None = None
    id_col: str | None = None
    split: str = "train"
    limit: int | None = None
    offset: int = 0
    seed: int = 0

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without an offset, the config a manifest records is what it was before offsets existed (earlier runs resume)."""
        dumped: dict[str, Any] = handler(self)
        if not self.offset:
            dumped.pop("offset", None)
        return dumped


def load_problems(cfg: SourceConfig) -> list[Problem]:
    """Load the problems ``cfg`` describes, in a deterministic order (``cfg.limit``: the first N).

    Row numbers in error messages are 0-based, the same index the default ids (``<stem>:<row>``) use;
    JSON line numbers are 1-based, as in an editor.
    """
    if cfg.limit is not None and cfg.limit < 1:
        raise UserError(f"source '{cfg.source}': limit must be at least 1 (got {cfg.limit})")
    if cfg.source.startswith(GYM_PREFIX):
        if cfg.offset:
            raise UserError(f"source '{cfg.source}': --offset applies to files and datasets; a gym: task draws new problems with another --seed")
        return _load_gym(cfg)
    path = Path(cfg.source).expanduser()
    reader = FILE_READERS.get(path.suffix.lower())
    if reader is not None:
        if not path.is_file():
            raise UserError(f"source file '{cfg.source}' not found")
        rows, columns = reader(path, cfg.source)
        id_prefix = path.stem
    elif path.is_dir() or (not path.exists() and _HUB_ID.fullmatch(cfg.source) is not None and _FILE_SUFFIX.fullmatch(path.suffix) is None):
        rows, columns = _read_datasets(cfg)
        id_prefix = path.name
    else:
        raise UserError(f"unknown source '{cfg.source}': expected gym:<task>, a .jsonl/.json/.parquet/.csv file, or a datasets id or path")
    if cfg.offset and cfg.offset >= len(rows):
        raise UserError(f"source '{cfg.source}' has {len(rows)} rows: --offset {cfg.offset} leaves none")
    end = None if cfg.limit is None else cfg.offset + cfg.limit
    return _rows_to_problems(rows[cfg.offset : end], columns, cfg, id_prefix)


class ResolvedSource(BaseModel):
    """What a source named when it was read: a file's absolute path and the sha256 of its bytes, a folder's
    absolute path, a reasoning-gym task with the seed and size that regenerate it, or a ``datasets`` id."""

    type: Literal["file", "folder", "gym", "datasets"]
    path: str | None = None
    sha256: str | None = None
    task: str | None = None
    seed: int | None = None
    size: int | None = None


def resolve_source(source: str, cfg: SourceConfig | None = None) -> ResolvedSource:
    """What ``source`` (a ``--source`` as given) names now; ``cfg`` gives a reasoning-gym source its seed and size."""
    if source.startswith(GYM_PREFIX):
        size = max((cfg.limit if cfg else None) or 0, GYM_SIZE)  # the dataset reasoning-gym draws the problems from
        return ResolvedSource(type="gym", task=source[len(GYM_PREFIX) :], seed=cfg.seed if cfg else None, size=size)
    path = Path(source).expanduser()
    if path.is_file():
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        return ResolvedSource(type="file", path=str(path.resolve()), sha256=digest)
    if path.is_dir():
        return ResolvedSource(type="folder", path=str(path.resolve()))
    return ResolvedSource(type="datasets")


def missing_gold(cfg: SourceConfig, what: Gold) -> tuple[str, str]:
    """Why no problem of ``cfg``'s source carries a gold ``what``, and how to give it one (the option that maps it)."""
    if cfg.source.startswith(GYM_PREFIX):
        task = cfg.source[len(GYM_PREFIX) :]
        if what == "solution":
            return f"reasoning-gym task '{task}' writes no worked solution (metadata answer_cot)", "use a task that does, such as gym:gsm_symbolic"
        return f"reasoning-gym task '{task}' has neither answers nor a scorer", "use another task"
    option, column = ("--solution-col", cfg.solution_col) if what == "solution" else ("--answer-col", cfg.answer_col)
    remedy = f"name the column that holds them with {option}"
    if what == "solution":
        remedy += " (or an --answer-col of GSM8K-style chains ending in '#### <answer>')"
    if column is None:
        return ("no --solution-col was given" if what == "solution" else "--answer-col is none"), remedy
    return f"its column '{column}' is empty in every row", remedy


def split_gold_chain(text: str) -> tuple[list[str], str | None]:
    """Split a GSM8K-style worked solution into its non-empty step lines and its ``#### <answer>``.

    Returns ``(steps, answer)``; ``answer`` is None when the text has no ``####`` line, and then every
    non-empty line is a step.
    """
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    if lines:
        match = _GOLD_ANSWER_LINE.match(lines[-1])
        if match and match.group(1):
            return lines[:-1], match.group(1)
    return lines, None


# --- reasoning-gym ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _gym_dataset(task: str, seed: int, size: int) -> Any:
    import reasoning_gym
    from reasoning_gym.factory import DATASETS

    if task not in DATASETS:
        close = difflib.get_close_matches(task, list(DATASETS), n=5, cutoff=0.5)
        hint = f"close matches: {', '.join(close)}" if close else f"none of the {len(DATASETS)} tasks is close"
        raise UserError(f"unknown reasoning-gym task '{task}' in source 'gym:{task}' ({hint})")
    try:
        return reasoning_gym.create_dataset(task, size=size, seed=seed)
    except Exception as exc:  # reasoning-gym raises assorted errors for configs it cannot build
        raise UserError(f"source 'gym:{task}': reasoning-gym cannot build the task: {_one_line(exc)}") from exc


@functools.lru_cache(maxsize=65536)
def gym_entry(task: str, seed: int, size: int, index: int) -> dict[str, Any]:
    """The original (not JSON-normalised) reasoning-gym entry, regenerated deterministically and cached.

    Some scorers compare against non-JSON metadata (arc_agi/rearc compare tuple grids), so scoring must
    use this entry rather than the JSON-safe copy kept in ``Problem.meta``.
    """
    entry: dict[str, Any] = _gym_dataset(task, seed, size)[index]
    return entry


def _load_gym(cfg: SourceConfig) -> list[Problem]:
    task = cfg.source[len(GYM_PREFIX) :]
    size = max(cfg.limit or 0, GYM_SIZE)
    problems = []
    for index in range(cfg.limit or GYM_SIZE):
        entry = gym_entry(task, cfg.seed, size, index)
        metadata = entry.get("metadata") or {}
        chain = metadata.get("answer_cot")
        steps = split_gold_chain(chain)[0] if isinstance(chain, str) else []
        answer = entry.get("answer")
        safe_entry = json.loads(
            json.dumps(
                {"question": entry["question"], "answer": answer, "metadata": metadata},
                default=str,
            )
        )
        problems.append(
            Problem(
                id=f"gym:{task}:{cfg.seed}:{index}",
                question=entry["question"],
                answer=None if answer is None else str(answer),
                solution="\n".join(steps) or None,
                meta={
                    "gym_task": task,
                    "gym_seed": cfg.seed,
                    "gym_size": size,
                    "gym_index": index,
                    "gym_entry": safe_entry,
                },
            )
        )
    return problems


# --- local files -----------------------------------------------------------------------------------


def _read_jsonl(path: Path, source: str) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{source} line {line_no}: invalid JSON") from exc
            if not isinstance(row, dict):
                raise UserError(f"{source} line {line_no}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows, _union_keys(rows)


def _read_json(path: Path, source: str) -> tuple[list[Row], list[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{source} line {exc.lineno}: invalid JSON") from exc
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise UserError(f"source '{source}': expected a JSON list of objects or {{\"data\": [...]}}")
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise UserError(f"{source} row {index}: expected a JSON object, got {type(row).__name__}")
    return data, _union_keys(data)


def _read_parquet(path: Path, source: str) -> tuple[list[Row], list[str]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for unreadable files
        raise UserError(f"source '{source}': cannot read Parquet: {_one_line(exc)}") from exc
    return table.to_pylist(), list(table.column_names)


def _read_csv(path: Path, source: str) -> tuple[list[Row], list[str]]:
    import polars as pl

    try:
        # Every column as text: a gold answer like "007" or "1.50" must stay exactly as written.
        frame = pl.read_csv(path, infer_schema=False)
    except pl.exceptions.NoDataError:
        return [], []
    except pl.exceptions.PolarsError as exc:
        raise UserError(f"source '{source}': cannot read CSV: {_one_line(exc)}") from exc
    return frame.to_dicts(), list(frame.columns)


FILE_READERS: dict[str, Callable[[Path, str], tuple[list[Row], list[str]]]] = {
    ".jsonl": _read_jsonl,
    ".json": _read_json,
    ".parquet": _read_parquet,
    ".csv": _read_csv,
}


def _union_keys(rows: list[Row]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


# --- datasets --------------------------------------------------------------------------------------


def _read_datasets(cfg: SourceConfig) -> tuple[list[Row], list[str]]:
    import datasets

    path = Path(cfg.source).expanduser()
    try:
        if (path / "dataset_dict.json").is_file():
            splits = datasets.load_from_disk(str(path))
            if cfg.split not in splits:
                raise UserError(f"source '{cfg.source}' has no split '{cfg.split}' (splits: {', '.join(splits)})")
            dataset = splits[cfg.split]
        elif (path / "state.json").is_file():
            dataset = datasets.load_from_disk(str(path))
        else:
            dataset = datasets.load_dataset(cfg.source, split=cfg.split)
    except UserError:
        raise
    except Exception as exc:  # datasets raises many types (ConnectionError, ValueError, FileNotFoundError…)
        raise UserError(f"source '{cfg.source}': datasets cannot load split '{cfg.split}': {_one_line(exc)}") from exc
    if cfg.limit is not None:
        dataset = dataset.select(range(min(cfg.limit, len(dataset))))
    return dataset.to_list(), list(dataset.column_names)


# --- rows to problems ------------------------------------------------------------------------------


def _rows_to_problems(rows: list[Row], columns: list[str], cfg: SourceConfig, id_prefix: str) -> list[Problem]:
    if not rows:
        raise UserError(f"source '{cfg.source}' has no rows")
    named = (("--question-col", cfg.question_col), ("--answer-col", cfg.answer_col), ("--solution-col", cfg.solution_col), ("--id-col", cfg.id_col))
    for option, col in named:
        if col is not None and col not in columns:
            other = " (or 'none' if it has no gold answers)" if option == "--answer-col" else ""
            raise UserError(f"source '{cfg.source}' has no column '{col}' (columns: {', '.join(columns)}); name the right one with {option}{other}")
    problems = []
    seen_ids: set[str] = set()
    for index, row in enumerate(rows, start=cfg.offset):
        question = _required_text(row, cfg.question_col, cfg.source, index)
        if cfg.id_col is not None:
            problem_id = _required_text(row, cfg.id_col, cfg.source, index)
        else:
            problem_id = f"{id_prefix}:{index}"
        if problem_id in seen_ids:
            raise UserError(f"{cfg.source} row {index}: field '{cfg.id_col}' repeats id '{problem_id}'")
        seen_ids.add(problem_id)
        answer = _as_text(row.get(cfg.answer_col)) if cfg.answer_col is not None else None
        solution = _as_text(row.get(cfg.solution_col)) if cfg.solution_col is not None else None
        if answer is not None:
            steps, final = split_gold_chain(answer)
            if final is not None:
                answer = final
                solution = solution or ("\n".join(steps) or None)
        problems.append(
            Problem(
                id=problem_id,
                question=question,
                answer=answer,
                solution=solution,
                meta={"source": cfg.source, "row": index},
            )
        )
    return problems


def _required_text(row: Row, field: str, source: str, index: int) -> str:
    value = _as_text(row.get(field))
    if value is None:
        raise UserError(f"{source} row {index}: field '{field}' is empty")
    return value


def _as_text(value: Any) -> str | None:
    """A cell as stripped text (numbers become their decimal text); None for null or blank cells."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (bool, list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
