"""Step-labelled solutions read from the public layouts and from step_labels run dirs, for R-PRM.

R-PRM's builders (``rprm-sft``, ``rprm-prefs``, ``rprm-score``) consume step-labelled solutions. Such
labels are published in a handful of layouts; this module reads each of them into one
:class:`~judgeforge.formats.step_inputs.LabelledSolution` record (a problem, its steps in the ``Step n:``
format, one label per step — ``None`` where the source gives none), which
:mod:`judgeforge.formats.step_inputs` cuts into evaluation inputs:

* **PRM800K** (``question.problem``, ``question.ground_truth_answer``, ``label.steps[].completions[]``
  with ratings -1/0/1 and ``chosen_completion``): the labelled path is the chosen completion of every
  step; a step with no chosen completion ends the path, with its first -1 completion as the wrong step
  when it has one. Rating -1 is No, 0 and 1 are Yes (a neutral step is not an error). Alternative
  completions and human-written completions are not read.
* **Math-Shepherd** (``label``: the question, then ``Step n: ...`` steps each ending in a ``+`` or ``-``
  tag; ``input`` is ignored).
* **ProcessBench** (``problem``, ``steps``, ``label`` = 0-based index of the first wrong step, -1 if
  none): steps before the index are Yes, the indexed step No, later steps unlabelled.
* **TRL stepwise supervision** (``prompt``, ``completions``, ``labels``).
* a **step_labels run dir** built by ``judgeforge build step-labels`` (its Parquet shards).

Files are ``.jsonl``, ``.json`` or ``.parquet`` (read with :mod:`judgeforge.sources`' readers); the
layout is recognised from the first row's fields, and a row that lacks what its layout needs fails with
one line naming the file, row and field. Evaluation inputs stop at a solution's first wrong step: the
steps after it build on an error, and the ProcessBench metric never looks past it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from judgeforge.builders.base import Calls, first_inputs
from judgeforge.errors import UserError
from judgeforge.formats.rprm import analysis_request
from judgeforge.formats.step_inputs import LabelledSolution, StepInput, step_text
from judgeforge.runs import open_run
from judgeforge.sources import FILE_READERS

Layout = Literal["prm800k", "math-shepherd", "processbench", "trl-stepwise", "step-labels"]
STEP_LABELS_KIND = "step_labels"

_SHEPHERD_STEP = re.compile(r"Step\s+\d+\s*:")
_SHEPHERD_TAG = re.compile(r"\s*([+-])\s*$")
_STEP_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


def read_step_solutions(source: str | Path, limit: int | None = None) -> list[LabelledSolution]:
    """Every labelled solution of a step-label file, a step_labels run dir, or a folder of step-label
    files read in name order, one subset each (``limit``: the first N over all). A solution's ``subset``
    is its row's ``subset`` field, else the name of its file or run dir."""
    path = Path(source).expanduser()
    run = _run_dir(path)
    if run is not None:
        return [s.model_copy(update={"subset": path.stem}) for s in _read_run(run, limit)]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _STEP_FILE_SUFFIXES)
        if not files:
            raise UserError(f"step labels '{source}': a folder with no .jsonl/.json/.parquet files and no step_labels run")
        solutions: list[LabelledSolution] = []
        for part in files:
            if limit is not None and len(solutions) >= limit:
                break
            solutions += _read_file(part, None if limit is None else limit - len(solutions))
        _check_unique(solutions, str(source))
        return solutions
    return _read_file(path, limit)


def _read_file(path: Path, limit: int | None) -> list[LabelledSolution]:
    source = str(path)
    if path.suffix.lower() not in _STEP_FILE_SUFFIXES:
        raise UserError(
            f"step labels '{source}': expected a .jsonl/.json/.parquet file, a folder of them or a step_labels run dir "
            "(built by `judgeforge build step-labels`)"
        )
    if not path.is_file():
        raise UserError(f"step-label file '{source}' not found")
    rows, columns = FILE_READERS[path.suffix.lower()](path, str(source))
    if not rows:
        raise UserError(f"step-label file '{source}' has no rows")
    layout = detect_layout(rows[0], str(source))
    reader = _READERS[layout]
    solutions = []
    for index, row in enumerate(rows[:limit] if limit else rows):
        where = f"{source} row {index}"
        solution_id = str(row["id"]) if row.get("id") is not None else f"{path.stem}:{index}"
        subset = str(row["subset"]) if isinstance(row, dict) and row.get("subset") is not None else path.stem
        solutions.append(reader(row, where, solution_id).model_copy(update={"subset": subset}))
    _check_unique(solutions, source)
    return solutions


def load_step_inputs(source: str | Path, limit: int | None = None, seed: int = 0) -> list[StepInput]:
    """The evaluation inputs of a step-label file or run (``limit``: the first N inputs), with a seeded
    Yes/No-balanced subset marked: every input of the rarer label, and as many of the other, drawn."""
    inputs = [i for s in read_step_solutions(source) for i in s.inputs()]
    if limit:
        inputs = inputs[:limit]
    if not inputs:
        raise UserError(f"step labels '{source}' hold no labelled steps")
    by_label = {label: [i for i in inputs if i.label == label] for label in ("Yes", "No")}
    keep = min(len(v) for v in by_label.values())
    rng = random.Random(seed)
    chosen = {i.id for group in by_label.values() for i in rng.sample(group, keep)}
    return [i.model_copy(update={"in_balanced_subset": i.id in chosen}) for i in inputs]


def analysis_calls(inputs: Sequence[StepInput], k: int, max_tokens: int, stage: str = "analyses") -> Calls:
    """K sampled R-PRM analyses of each step input, as both R-PRM builders declare them for ``--dry-run``."""
    return Calls(
        role="policy",
        stage=stage,
        requests=len(inputs),
        samples=k,
        max_tokens=max_tokens,
        prompts=tuple(analysis_request(item, 0) for item in first_inputs(inputs)),
    )


def detect_layout(row: dict[str, Any], source: str) -> Layout:
    """Which public layout a row is in, from its fields."""
    label = row.get("label")
    if isinstance(label, dict) or isinstance(row.get("question"), dict):
        return "prm800k"
    if "completions" in row and "labels" in row:
        return "trl-stepwise"
    if "steps" in row:
        return "processbench"
    if isinstance(label, str):
        return "math-shepherd"
    raise UserError(
        f"{source}: no known step-label layout in fields ({', '.join(row)}); expected PRM800K (question, "
        "label.steps), Math-Shepherd (label: steps tagged +/-), ProcessBench (problem, steps, label) or "
        "TRL stepwise supervision (prompt, completions, labels)"
    )


# --- layouts -----------------------------------------------------------------------------------------


def _field(row: Any, name: str, where: str, kind: type | tuple[type, ...], layout: str) -> Any:
    if not isinstance(row, dict):
        raise UserError(f"{where}: {layout} layout needs an object with field '{name}', got {type(row).__name__}")
    value = row.get(name)
    if value is None:
        raise UserError(f"{where}: {layout} layout needs field '{name}'")
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UserError(f"{where}: field '{name}' must be a {expected}, got {type(value).__name__}")
    return value


def _text(value: str, where: str, name: str) -> str:
    if not value.strip():
        raise UserError(f"{where}: field '{name}' is empty")
    return value.strip()


def _steps(values: list[Any], where: str, name: str) -> list[str]:
    """A list of step texts in the ``Step n:`` format; every entry must be a string."""
    for n, value in enumerate(values):
        if not isinstance(value, str):
            raise UserError(f"{where}: {name}[{n}] must be a string, got {type(value).__name__}")
    return [step_text(n + 1, value) for n, value in enumerate(values)]


def _prm800k(row: dict[str, Any], where: str, solution_id: str) -> LabelledSolution:
    question = _field(row, "question", where, dict, "PRM800K")
    problem = _text(_field(question, "problem", where, str, "PRM800K"), where, "question.problem")
    label = _field(row, "label", where, dict, "PRM800K")
    steps_in = _field(label, "steps", where, list, "PRM800K")
    steps: list[str] = []
    labels: list[bool | None] = []
    for n, step in enumerate(steps_in):
        at = f"{where} label.steps[{n}]"
        if not isinstance(step, dict):
            raise UserError(f"{at}: expected an object with 'completions', got {type(step).__name__}")
        completions = _field(step, "completions", at, list, "PRM800K")
        chosen = step.get("chosen_completion")
        if chosen is None:
            wrong = next((c for c in completions if isinstance(c, dict) and c.get("rating") == -1), None)
            if wrong is not None:
                steps.append(step_text(len(steps) + 1, _field(wrong, "text", at, str, "PRM800K")))
                labels.append(False)
            break
        if not isinstance(chosen, int) or not 0 <= chosen < len(completions):
            raise UserError(f"{at}: 'chosen_completion' {chosen!r} is not an index into its {len(completions)} completions")
        completion = completions[chosen]
        steps.append(step_text(len(steps) + 1, _field(completion, "text", f"{at}.completions[{chosen}]", str, "PRM800K")))
        rating = completion.get("rating")
        labels.append(None if rating is None else rating >= 0)
    answer = question.get("ground_truth_answer")
    return LabelledSolution(id=solution_id, question=problem, steps=steps, labels=labels, gold_answer=None if answer is None else str(answer), layout="prm800k")


def _math_shepherd(row: dict[str, Any], where: str, solution_id: str) -> LabelledSolution:
    text = _field(row, "label", where, str, "Math-Shepherd")
    headers = list(_SHEPHERD_STEP.finditer(text))
    if not headers:
        raise UserError(f"{where}: field 'label' has no 'Step n:' steps")
    question = _text(text[: headers[0].start()], where, "label (question before 'Step 1:')")
    steps: list[str] = []
    labels: list[bool | None] = []
    for n, header in enumerate(headers):
        end = headers[n + 1].start() if n + 1 < len(headers) else len(text)
        body = text[header.end() : end]
        tag = _SHEPHERD_TAG.search(body)
        if tag is None:
            raise UserError(f"{where}: field 'label' step {n + 1} does not end in a '+' or '-' tag")
        steps.append(step_text(n + 1, body[: tag.start()]))
        labels.append(tag.group(1) == "+")
    return LabelledSolution(id=solution_id, question=question, steps=steps, labels=labels, layout="math-shepherd")


def _processbench(row: dict[str, Any], where: str, solution_id: str) -> LabelledSolution:
    problem = _text(_field(row, "problem", where, str, "ProcessBench"), where, "problem")
    raw_steps = _field(row, "steps", where, list, "ProcessBench")
    label = _field(row, "label", where, int, "ProcessBench")
    if isinstance(label, bool) or not -1 <= label < len(raw_steps):
        raise UserError(f"{where}: field 'label' is {label} but must be -1 or a step index below {len(raw_steps)}")
    steps = _steps(raw_steps, where, "steps")
    if label == -1:
        labels: list[bool | None] = [True] * len(steps)
    else:
        labels = [True] * label + [False] + [None] * (len(steps) - label - 1)
    return LabelledSolution(id=solution_id, question=problem, steps=steps, labels=labels, layout="processbench")


def _trl_stepwise(row: dict[str, Any], where: str, solution_id: str) -> LabelledSolution:
    prompt = _text(_field(row, "prompt", where, str, "TRL stepwise"), where, "prompt")
    completions = _field(row, "completions", where, list, "TRL stepwise")
    labels = _field(row, "labels", where, list, "TRL stepwise")
    if len(completions) != len(labels):
        raise UserError(f"{where}: {len(completions)} completions but {len(labels)} labels")
    for n, value in enumerate(labels):
        if not isinstance(value, bool):
            raise UserError(f"{where}: labels[{n}] must be true or false, got {value!r}")
    steps = _steps(completions, where, "completions")
    return LabelledSolution(id=solution_id, question=prompt, steps=steps, labels=list(labels), layout="trl-stepwise")


_READERS: dict[str, Callable[[dict[str, Any], str, str], LabelledSolution]] = {
    "prm800k": _prm800k,
    "math-shepherd": _math_shepherd,
    "processbench": _processbench,
    "trl-stepwise": _trl_stepwise,
}


# --- step_labels run dirs ----------------------------------------------------------------------------


def _run_dir(path: Path) -> Path | None:
    """The step_labels run dir at ``path`` (the run itself, or the --out folder holding it), if any."""
    for candidate in (path, path / STEP_LABELS_KIND):
        if (candidate / "data").is_dir():
            return candidate
    return None


def _read_run(root: Path, limit: int | None) -> list[LabelledSolution]:
    run = open_run(root, STEP_LABELS_KIND)
    solutions = [
        LabelledSolution(id=row["id"], question=row["question"], steps=row["steps"], labels=row["labels"], gold_answer=row["gold_answer"], layout="step-labels")
        for table in run.tables(["id", "question", "steps", "labels", "gold_answer"])
        for row in table.to_pylist()
    ]
    return solutions[:limit] if limit else solutions


def _check_unique(solutions: list[LabelledSolution], source: str) -> None:
    seen: set[str] = set()
    for index, solution in enumerate(solutions):
        if solution.id in seen:
            raise UserError(f"{source} row {index}: field 'id' repeats id '{solution.id}'")
        seen.add(solution.id)
