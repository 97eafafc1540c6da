"""Pairwise judge accuracy on held-out pairs: the figure the judge papers report (``judgeforge eval judge``).

Process-based self-rewarding reports its judge's accuracy on held-out step pairs (57.2 → 92.8 after
IFT+EFT); the Self-Taught Evaluator its RewardBench accuracy (75.4 → 88.3). Both come from one
procedure here: every pair is judged greedily in both presentation orders (the better answer shown as
A, then as B) with the shared judge prompt of :mod:`judgeforge.formats.judge` — the step prompt for
step pairs, the response prompt for whole responses — and every output's verdict is settled by
:func:`judgeforge.formats.verdicts.settle`: parsed from the text, or forced at the verdict slot when
the text has none.

What is reported, overall and per subset (:class:`JudgeFigures`):

- ``accuracy``: judgments whose *parsed* verdict picks the better answer, over all judgments. A forced
  or unparsable verdict is never counted as correct here; forced verdicts have their own
  ``forced_accuracy``, and ``parsed`` / ``forced`` / ``unparsable`` / ``failed`` say how each judgment's
  verdict came (failed: the engine call failed; no verdict, never forced).
- ``pair_accuracy``: pairs whose two parsed verdicts both pick the better answer (RewardBench-style,
  position bias cancelled).
- ``position_consistency``: of the pairs with a verdict in both orders (parsed or forced), those whose
  two verdicts name the same answer. A judge that always writes ``[[A]]`` has accuracy 50% and
  consistency 0%.

Inputs (:func:`read_pairs`): an EFT run (the better step is the rollouts' label; the step prompt), a
Self-Taught run (y^w over y^l; the response prompt) — each pair once, whichever of its rows come first;
a run built with ``--test-fraction`` is read at its held-out test split (``RUN/test``), and a run without
one is read whole, with a warning that a judge trained on it has seen its pairs —
and files (.jsonl/.json/.parquet) in the RewardBench layout (``prompt``, ``chosen``,
``rejected``, optional ``subset``) or the conversation layout (``chosen`` / ``rejected`` lists of
messages ending in the assistant's reply).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from judgeforge.engines import EngineSpec
from judgeforge.engines.base import Engine, Request, SamplingParams, derive_seed
from judgeforge.errors import UserError
from judgeforge.formats.judge import JUDGMENT, judge_user_message, response_judge_message
from judgeforge.formats.verdicts import settle
from judgeforge.runs import MANIFEST, TEST_SPLIT, open_run, read_manifest, redact_urls
from judgeforge.sources import FILE_READERS

How = Literal["parsed", "forced", "unparsable", "failed"]
_PAIR_KINDS = ("eft", "ste_judgments")
_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


class JudgePair(BaseModel):
    """One held-out pair: the better and the worse answer to one prompt (a next step or a whole response)."""

    id: str
    subset: str
    prompt: str
    previous_steps: list[str] | None = None
    """The steps so far, for a step pair (judged with the step prompt); None for whole responses."""
    chosen: str
    rejected: str


class OrderVerdict(BaseModel):
    """One judgment of a pair: the better answer shown as ``better_shown_as``; what the judge picked."""

    better_shown_as: Literal["A", "B"]
    how: How
    verdict: Literal["A", "B"] | None
    text: str

    @property
    def picked_better(self) -> bool | None:
        return None if self.verdict is None else self.verdict == self.better_shown_as


class PairResult(BaseModel):
    id: str
    subset: str
    orders: list[OrderVerdict]


class JudgeFigures(BaseModel):
    """The judge's figures on a set of pairs (see the module docstring for each definition)."""

    pairs: int
    judgments: int
    parsed: int
    forced: int
    unparsable: int
    failed: int
    accuracy: float | None
    pair_accuracy: float | None
    position_consistency: float | None
    forced_accuracy: float | None


class JudgeEvalResult(BaseModel):
    """A judge's figures on one pair set, with what is needed to trust and repeat them."""

    model: str
    weights_hash: str
    engine: dict[str, Any]
    pairs_source: str
    pairs_fingerprint: str
    max_tokens: int
    force_verdicts: bool
    seconds: float
    overall: JudgeFigures
    subsets: dict[str, JudgeFigures]
    results: list[PairResult]


# --- readers -----------------------------------------------------------------------------------------


def read_pairs(source: str | Path, limit: int | None = None) -> tuple[list[JudgePair], str]:
    """The pairs of an EFT or Self-Taught run dir (its held-out test split when it has one) or of a pair file, and the data's fingerprint."""
    path = Path(source).expanduser()
    if path.is_dir():
        pairs, fingerprint = _read_run(held_out_root(path))
    elif path.suffix.lower() in _FILE_SUFFIXES and path.is_file():
        rows, _ = FILE_READERS[path.suffix.lower()](path, str(source))
        pairs = [_file_pair(row, f"{source} row {i}", f"{path.stem}:{i}", path.stem) for i, row in enumerate(rows)]
        fingerprint = hashlib.sha256(path.read_bytes()).hexdigest()
    elif path.suffix.lower() in _FILE_SUFFIXES:
        raise UserError(f"pair file '{source}' not found")
    else:
        raise UserError(f"pairs '{source}': expected an EFT or Self-Taught run dir, or a .jsonl/.json/.parquet pair file")
    if limit is not None:
        pairs = pairs[:limit]
    if not pairs:
        raise UserError(f"pairs '{source}' hold no pairs")
    return pairs, fingerprint


def held_out_root(path: Path) -> Path:
    """The run dir whose pairs are judged: a run's held-out test split (``RUN/test``) when it was built with one, else the run itself."""
    split = path / TEST_SPLIT
    return split if (split / "data").is_dir() else path


def trained_on_risk(source: str | Path) -> bool:
    """Whether ``source`` is a whole run dir with no held-out split: a judge trained on that run has seen its pairs."""
    path = Path(source).expanduser()
    if not path.is_dir() or held_out_root(path) != path:
        return False
    manifest = read_manifest(path / MANIFEST)
    return manifest is None or manifest.split != TEST_SPLIT


def _read_run(root: Path) -> tuple[list[JudgePair], str]:
    run = open_run(root)
    if run.kind.name not in _PAIR_KINDS:
        raise UserError(f"run dir '{root}' holds '{run.kind.name}' rows; judge pairs come from an EFT or a Self-Taught run (kinds {', '.join(_PAIR_KINDS)})")
    columns = (
        ("pair_id", "question", "previous_steps", "step_a", "step_b", "label")
        if run.kind.name == "eft"
        else ("source_id", "instruction", "better_response", "worse_response")
    )
    rows = [row for table in run.tables(columns) for row in table.to_pylist()]
    pairs: dict[str, JudgePair] = {}
    for row in rows:
        if run.kind.name == "eft":
            key = row["pair_id"]
            better, worse = (row["step_a"], row["step_b"]) if row["label"] == "A" else (row["step_b"], row["step_a"])
            pair = JudgePair(id=key, subset=root.name, prompt=row["question"], previous_steps=list(row["previous_steps"]), chosen=better, rejected=worse)
        else:
            key = row["source_id"]
            pair = JudgePair(id=key, subset=root.name, prompt=row["instruction"], chosen=row["better_response"], rejected=row["worse_response"])
        pairs.setdefault(key, pair)
    manifest = run.manifest
    fingerprint = (
        manifest.fingerprint if manifest is not None and manifest.fingerprint else hashlib.sha256(b"".join(p.read_bytes() for p in run.shards)).hexdigest()
    )
    return list(pairs.values()), fingerprint


def _file_pair(row: dict[str, Any], where: str, default_id: str, default_subset: str) -> JudgePair:
    for name in ("chosen", "rejected"):
        if name not in row or row[name] is None:
            raise UserError(f"{where}: missing field '{name}' (pair layouts: RewardBench prompt, chosen, rejected[, subset]; or chosen/rejected conversations)")
    pair_id = str(row["id"]) if row.get("id") is not None else default_id
    subset = str(row["subset"]) if row.get("subset") is not None else default_subset
    chosen, rejected = row["chosen"], row["rejected"]
    if isinstance(chosen, str) and isinstance(rejected, str):
        if not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise UserError(f"{where}: missing field 'prompt' (RewardBench layout: prompt, chosen, rejected[, subset])")
        return JudgePair(id=pair_id, subset=subset, prompt=row["prompt"], chosen=chosen, rejected=rejected)
    if isinstance(chosen, list) and isinstance(rejected, list):
        prompt_turns, better = _split_reply(chosen, f"{where} field 'chosen'")
        other_turns, worse = _split_reply(rejected, f"{where} field 'rejected'")
        if isinstance(row.get("prompt"), list):
            prompt_turns = [*_turns(row["prompt"], f"{where} field 'prompt'"), *prompt_turns]
        elif not prompt_turns:
            prompt_turns = other_turns
        if not prompt_turns:
            raise UserError(f"{where}: no user turn before the replies in 'chosen', 'rejected' or 'prompt'")
        return JudgePair(id=pair_id, subset=subset, prompt=_render(prompt_turns), chosen=better, rejected=worse)
    raise UserError(f"{where}: fields 'chosen' and 'rejected' must both be texts (RewardBench layout) or both lists of messages (conversation layout)")


def _turns(messages: list[Any], where: str) -> list[tuple[str, str]]:
    turns = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            raise UserError(f"{where} message {i}: expected {{'role': ..., 'content': ...}}")
        turns.append((message["role"], message["content"]))
    return turns


def _split_reply(messages: list[Any], where: str) -> tuple[list[tuple[str, str]], str]:
    turns = _turns(messages, where)
    if not turns or turns[-1][0] != "assistant":
        raise UserError(f"{where}: the last message must be the assistant's reply")
    return turns[:-1], turns[-1][1]


def _render(turns: list[tuple[str, str]]) -> str:
    """One user turn is the instruction itself; a longer conversation is written out turn by turn."""
    if len(turns) == 1:
        return turns[0][1]
    return "\n\n".join(f"{role.capitalize()}: {content}" for role, content in turns)


# --- judging -----------------------------------------------------------------------------------------


def _message(pair: JudgePair, a: str, b: str) -> str:
    if pair.previous_steps is not None:
        return judge_user_message(pair.prompt, pair.previous_steps, a, b)
    return response_judge_message(pair.prompt, a, b)


def judge_pairs(engine: Engine, pairs: Sequence[JudgePair], max_tokens: int, force_verdicts: bool = True) -> list[PairResult]:
    """Judge every pair greedily in both orders in one batched call (plus one for forced verdicts)."""
    requests: list[Request] = []
    shown: list[Literal["A", "B"]] = []
    for pair in pairs:
        requests.append(Request.chat(_message(pair, pair.chosen, pair.rejected), seed=derive_seed("eval-judge", pair.id, "A")))
        requests.append(Request.chat(_message(pair, pair.rejected, pair.chosen), seed=derive_seed("eval-judge", pair.id, "B")))
        shown += ["A", "B"]
    params = SamplingParams(n=1, temperature=0.0, max_tokens=max_tokens)
    outputs = [c[0] for c in engine.generate(requests, params)]
    settled = settle(engine, JUDGMENT, list(zip(requests, outputs, strict=True)), params.seed, force_verdicts)
    verdicts = [
        OrderVerdict(better_shown_as=side, how="failed", verdict=None, text="")
        if s is None
        else OrderVerdict(better_shown_as=side, how=s.how, verdict=s.verdict, text=s.text)
        for side, s in zip(shown, settled, strict=True)
    ]
    return [PairResult(id=p.id, subset=p.subset, orders=verdicts[2 * i : 2 * i + 2]) for i, p in enumerate(pairs)]


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def figures(results: Sequence[PairResult]) -> JudgeFigures:
    """The figures of a set of judged pairs (definitions in the module docstring)."""
    orders = [o for r in results for o in r.orders]
    count = {how: sum(o.how == how for o in orders) for how in ("parsed", "forced", "unparsable", "failed")}
    forced = [o for o in orders if o.how == "forced"]
    both = [r for r in results if all(o.verdict is not None for o in r.orders)]
    return JudgeFigures(
        pairs=len(results),
        judgments=len(orders),
        **count,
        accuracy=_rate(sum(o.how == "parsed" and bool(o.picked_better) for o in orders), len(orders)),
        pair_accuracy=_rate(sum(all(o.how == "parsed" and o.picked_better for o in r.orders) for r in results), len(results)),
        position_consistency=_rate(sum(r.orders[0].picked_better == r.orders[1].picked_better for r in both), len(both)),
        forced_accuracy=_rate(sum(bool(o.picked_better) for o in forced), len(forced)),
    )


def evaluate_judge(spec: EngineSpec, source: str | Path, limit: int | None = None, max_tokens: int = 256, force_verdicts: bool = True) -> JudgeEvalResult:
    """The figures of the judge ``spec`` runs on the pairs of ``source``, overall and per subset."""
    from judgeforge.console import make_console
    from judgeforge.engines import make_engine

    pairs, fingerprint = read_pairs(source, limit)
    console = make_console(stderr=True)
    if trained_on_risk(source):
        console.print(
            f"[yellow]warning:[/] {source} has no held-out test split: a judge trained on this run has seen these pairs "
            "(build with --test-fraction to hold some out, or give held-out pairs)"
        )
    clock = time.perf_counter()
    engine = make_engine(spec)
    try:
        with console.status(f"eval judge {spec.model} on {len(pairs)} pairs × 2 orders"):
            results = judge_pairs(engine, pairs, max_tokens, force_verdicts)
        weights_hash = engine.weights_hash
    finally:
        engine.close()
    subsets = sorted({r.subset for r in results})
    return JudgeEvalResult(
        model=spec.model,
        weights_hash=weights_hash,
        engine=redact_urls(spec.model_dump(mode="json")),
        pairs_source=str(held_out_root(Path(source).expanduser())) if Path(source).expanduser().is_dir() else str(source),
        pairs_fingerprint=fingerprint,
        max_tokens=max_tokens,
        force_verdicts=force_verdicts,
        seconds=round(time.perf_counter() - clock, 3),
        overall=figures(results),
        subsets={name: figures([r for r in results if r.subset == name]) for name in subsets} if len(subsets) > 1 else {},
        results=results,
    )
