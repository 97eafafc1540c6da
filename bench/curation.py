"""The default step-prefs curation over a million synthetic rows: speed, memory, and near-dup accuracy.

1. Generate a step-prefs run of ``--rows`` rows (default 1,000,000) with the real schema: problems of four
   steps each (a 40-word question, 15-word steps, three candidates, six consistent judgments), words
   drawn from a 50,000-word vocabulary with a power-law frequency. Planted in it:
   - exact duplicates (2%; half of them differ only in case and spacing);
   - near duplicates (4%): a copy of a row with words replaced to reach a Jaccard similarity of word
     5-grams spread over 0.5–1.0, measured exactly (Python sets, not the pipeline's hashing);
   - benchmark overlaps: problems whose question embeds a 12-word span of an eval question (given to
     the decontaminate filter through ``--eval``);
   - rows that the quality filters should drop (chosen = rejected, small score gap, a position-biased
     judge, a wrong final answer, an empty or looping chosen step).
2. Run ``judgeforge curate`` with the shipped step-prefs spec in a child process and time it end to end
   (process start included): rows/s of wall time, and of the child's CPU time (user + system, all
   threads) since wall time on a shared machine depends on the neighbours; peak RSS is the child's
   ``ru_maxrss``.
3. Score the near-duplicate filter on the planted pairs. Recall: the share of planted pairs with
   Jaccard ≥ 0.8 that end in one cluster. Precision: the share of joined pairs (a dropped row and the
   row it was kept for) that are planted near-duplicate pairs (Jaccard 0.5–1.0 by construction); the
   share of joined pairs with Jaccard ≥ 0.7 and ≥ 0.8, and detection by Jaccard band, show where the
   LSH threshold (≈ (1/14)^(1/8) = 0.72) falls.

    .venv/bin/python bench/curation.py [--rows 1000000] [--work DIR] [--keep]

The machine is shared: the load average before and after is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from judgeforge.files import write_json
from judgeforge.runs import RunDir
from judgeforge.schemas.base import arrow_schema
from judgeforge.schemas.step_prefs import StepPrefsRow

SCHEMA = arrow_schema(StepPrefsRow)
STEPS = 4
Q_WORDS, STEP_WORDS = 40, 15
VOCAB = 50_000
SHARD_ROWS = 20_000
EVAL_PROBLEMS = 500


class Corpus:
    """Word-index arrays for every problem, turned into strings one shard at a time."""

    def __init__(self, problems: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        lengths = self.rng.integers(3, 10, VOCAB)
        chars = letters[self.rng.integers(0, 26, (VOCAB, 10))]
        self.vocab = np.array(["".join(c[:n]) + str(i % 7 or "") for i, (c, n) in enumerate(zip(chars, lengths, strict=True))])
        weights = 1.0 / (np.arange(VOCAB) + 10.0)
        self.p = weights / weights.sum()
        self.questions = self.words((problems, Q_WORDS))
        # step bodies: [problem, step, candidate (chosen, rejected, third), word]
        self.bodies = self.words((problems, STEPS, 3, STEP_WORDS))
        self.gold = self.rng.integers(1, 10_000, problems).astype(str)
        self.evals = self.words((EVAL_PROBLEMS, Q_WORDS))

    def words(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.rng.choice(VOCAB, size=shape, p=self.p).astype(np.int32)

    def text(self, idx: np.ndarray) -> pa.Array:
        """Rows of word indices (2-D) to space-joined strings, vectorised through Arrow."""
        rows, width = idx.shape
        words = pa.array(self.vocab[idx.ravel()])
        words = words.combine_chunks() if isinstance(words, pa.ChunkedArray) else words
        lists = pa.ListArray.from_arrays(pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32)), words)
        return pc.binary_join(lists, " ")


def _lists(values: pa.Array, lengths: np.ndarray) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def base_shard(c: Corpus, rows: np.ndarray, plants: dict[str, np.ndarray]) -> pa.Table:
    """Rows ``rows`` (row r = problem r // 4, step r % 4 + 1), with quality failures where ``plants`` says."""
    n = len(rows)
    prob, step = rows // STEPS, rows % STEPS + 1
    chosen = c.text(c.bodies[prob, step - 1, 0])
    rejected = c.text(c.bodies[prob, step - 1, 1])
    third = c.text(c.bodies[prob, step - 1, 2])
    question = c.text(c.questions[prob])
    # previous steps: "Step k: <chosen body of step k>" for k < step
    prev_rows = np.repeat(np.arange(n), step - 1)
    prev_k = np.concatenate([np.arange(1, s) for s in step]) if n else np.empty(0, int)
    prev_body = c.text(c.bodies[prob[prev_rows], prev_k - 1, 0]) if len(prev_rows) else pa.array([], pa.string())
    prev_text = pc.binary_join_element_wise(pa.array([f"Step {k}:" for k in prev_k], pa.string()), prev_body, " ")
    p = {k: v[rows] for k, v in plants.items()}
    rejected = pc.if_else(pa.array(p["same"]), pc.utf8_upper(chosen), rejected)
    chosen = pc.if_else(pa.array(p["empty"]), pa.scalar(""), chosen)
    chosen = pc.if_else(pa.array(p["loop"]), pa.scalar("and then " * 8 + "we are done"), chosen)
    candidates = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32)),
        pc.take(pa.concat_arrays([chosen, rejected, third]), pa.array((np.arange(n)[:, None] + np.array([0, n, 2 * n])[None, :]).ravel())),
    )
    chosen_score = np.where(p["gap"], 1.2, 4.0)
    rejected_score = np.where(p["gap"], 1.0, 0.0)
    pairs = [(0, 1, "A"), (1, 0, "B"), (0, 2, "A"), (2, 0, "B"), (2, 1, "A"), (1, 2, "B")]
    verdict = np.tile(np.array([v for _, _, v in pairs], dtype=object), (n, 1))
    verdict[p["biased"], 1] = "A"  # shown rejected first, the judge still says A
    judgments = pa.StructArray.from_arrays(
        [
            pa.array(np.tile([a for a, _, _ in pairs], n), pa.int64()),
            pa.array(np.tile([b for _, b, _ in pairs], n), pa.int64()),
            pc.binary_join_element_wise(pa.scalar("Verdict: [["), pa.array(verdict.ravel(), pa.string()), pa.scalar("]]"), ""),
            pa.array(verdict.ravel(), pa.string()),
            pa.array(np.zeros(6 * n, bool)),
            pa.array([None] * (6 * n), pa.float64()),
        ],
        fields=list(SCHEMA.field("judgments").type.value_type),
    )
    unfinished = (prob % 10) == 3  # search stopped at max_steps: no final answer, not correct
    final = np.where(p["wrong"], "999999", np.where(unfinished, None, c.gold[prob]))
    ids = np.char.add(np.char.add("p", prob.astype(str)), np.char.add("/step-", step.astype(str)))
    meta = pa.StructArray.from_arrays([pa.array(np.full(n, v)) for v in ("bench", "0", "bench", "synthetic")], fields=list(SCHEMA.field("meta").type))
    columns: dict[str, Any] = {
        "id": pa.array(ids),
        "source_id": pa.array(np.char.add("p", prob.astype(str))),
        "meta": meta,
        "question": question,
        "previous_steps": _lists(prev_text, step - 1),
        "step_index": pa.array(step, pa.int64()),
        "chosen": chosen,
        "rejected": rejected,
        "chosen_is_final": pa.array(np.zeros(n, bool)),
        "rejected_is_final": pa.array(np.zeros(n, bool)),
        "chosen_score": pa.array(chosen_score),
        "rejected_score": pa.array(rejected_score),
        "candidates": candidates,
        "candidate_scores": _lists(pa.array(np.stack([chosen_score, rejected_score, np.full(n, 2.0)], 1).ravel()), np.full(n, 3)),
        "judgments": _lists(judgments, np.full(n, 6)),
        "judge_unparsable": pa.array(np.zeros(n, np.int64)),
        "gold_answer": pa.array(c.gold[prob]),
        "final_answer": pa.array(final, pa.string()),
        "solution_correct": pa.array(~(p["wrong"] | unfinished)),
        "solution_status": pa.array(np.where(unfinished, "max_steps", "final_answer")),
    }
    return pa.table(columns, schema=SCHEMA)


_WORD = re.compile(r"\W+")


def document(row: dict[str, Any]) -> list[str]:
    """The near-dup filter's document as normalised words (question, steps so far, chosen, rejected)."""
    text = "\n".join([row["question"], "\n\n".join(row["previous_steps"]), row["chosen"], row["rejected"]])
    return _WORD.sub(" ", text.lower()).split()


def jaccard(a: list[str], b: list[str], n: int = 5) -> float:
    x = {tuple(a[i : i + n]) for i in range(len(a) - n + 1)}
    y = {tuple(b[i : i + n]) for i in range(len(b) - n + 1)}
    return len(x & y) / len(x | y)


def near_variant(row: dict[str, Any], target: float, c: Corpus) -> dict[str, Any]:
    """A copy of ``row`` with content words replaced so the 5-gram Jaccard lands near ``target``."""
    fields = [("question", None), *[("previous_steps", i) for i in range(len(row["previous_steps"]))], ("chosen", None), ("rejected", None)]
    parts = [(row[f] if i is None else row[f][i]).split(" ") for f, i in fields]
    header = [2 if i is not None else 0 for _, i in fields]  # "Step k:" stays
    slots = [(j, w) for j, words in enumerate(parts) for w in range(header[j], len(words))]
    grams = sum(len(p) for p in parts) - 4
    swaps = max(1, round(grams * (1 - target) / (5 * (1 + target))))
    for pick in c.rng.choice(len(slots), size=min(swaps, len(slots)), replace=False):
        j, w = slots[pick]
        parts[j][w] = str(c.vocab[c.rng.integers(VOCAB)])
    out = {**row, "id": row["id"] + "/near", "previous_steps": list(row["previous_steps"])}
    for (f, i), words in zip(fields, parts, strict=True):
        if i is None:
            out[f] = " ".join(words)
        else:
            out["previous_steps"][i] = " ".join(words)
    out["candidates"] = [out["chosen"], out["rejected"], row["candidates"][2]]
    return out


def generate(root: Path, total: int, seed: int) -> dict[str, Any]:
    """Write the synthetic run; returns the ground truth of what was planted."""
    exact, near = int(total * 0.02), int(total * 0.04)
    base = (total - exact - near) // STEPS * STEPS
    exact = total - near - base
    problems = base // STEPS
    c = Corpus(problems, seed)
    rng = c.rng
    # Quality failures on whole problems (answers) or single rows; planted duplicates come from clean rows.
    plants = {k: np.zeros(base, bool) for k in ("same", "gap", "biased", "empty", "loop", "wrong")}
    order = rng.permutation(base)
    cut = 0
    for key, share in (("same", 0.01), ("gap", 0.01), ("biased", 0.01), ("empty", 0.005), ("loop", 0.005)):
        plants[key][order[cut : cut + int(base * share)]] = True
        cut += int(base * share)
    wrong_problems = rng.choice(problems, int(problems * 0.01), replace=False)
    plants["wrong"][(wrong_problems[:, None] * STEPS + np.arange(STEPS)).ravel()] = True
    dirty = np.zeros(base, bool)
    for mask in plants.values():
        dirty |= mask
    unfinished = (np.arange(base) // STEPS) % 10 == 3
    clean_problems = np.flatnonzero(~dirty.reshape(problems, STEPS).any(1))
    contaminated = rng.choice(clean_problems, min(300, len(clean_problems) // 10), replace=False)
    span = rng.integers(0, EVAL_PROBLEMS, len(contaminated))
    c.questions[contaminated, 10:22] = c.evals[span, 5:17]
    taken = np.zeros(base, bool)
    taken[(contaminated[:, None] * STEPS + np.arange(STEPS)).ravel()] = True
    candidates_rows = rng.permutation(np.flatnonzero(~dirty & ~taken & ~unfinished))
    dup_rows, near_rows = np.sort(candidates_rows[:exact]), np.sort(candidates_rows[exact : exact + near])

    run = RunDir(root, "step_prefs")
    shard = 0
    wanted = set(dup_rows.tolist()) | set(near_rows.tolist())
    picked: dict[int, dict[str, Any]] = {}
    for start in range(0, base, SHARD_ROWS):
        rows = np.arange(start, min(start + SHARD_ROWS, base))
        table = base_shard(c, rows, plants)
        local = [r - start for r in rows if r in wanted] if wanted else []
        for r, record in zip(local, table.take(pa.array(local, pa.int64())).to_pylist(), strict=True):
            picked[r + start] = record
        run.write_chunk(shard, table, {"rows": table.num_rows})
        shard += 1
    planted_rows, pairs = [], []
    for i, r in enumerate(dup_rows.tolist()):
        record = {**picked[r], "id": picked[r]["id"] + "/dup"}
        if i % 2:
            record["chosen"] = "  " + record["chosen"].upper().replace(" ", "   ")
            record["candidates"] = [record["chosen"], *record["candidates"][1:]]
        planted_rows.append(record)
    targets = rng.uniform(0.5, 1.0, len(near_rows))
    for r, target in zip(near_rows.tolist(), targets, strict=True):
        variant = near_variant(picked[r], float(target), c)
        planted_rows.append(variant)
        pairs.append((picked[r]["id"], variant["id"], jaccard(document(picked[r]), document(variant))))
    for start in range(0, len(planted_rows), SHARD_ROWS):
        run.write_chunk(shard, pa.Table.from_pylist(planted_rows[start : start + SHARD_ROWS], schema=SCHEMA), {"rows": 0})
        shard += 1
    write_json(
        run.manifest_path,
        {"kind": "step_prefs", "run_id": "bench", "fingerprint": "bench", "status": "complete", "builder": {"name": "bench-synthetic", "version": "0"}},
    )
    evals = root.parent / "eval.jsonl"
    with evals.open("w") as handle:
        for q in c.text(c.evals).to_pylist():
            handle.write(json.dumps({"question": q}) + "\n")
    contaminated_ids = {f"p{p}/step-{s}" for p in contaminated.tolist() for s in range(1, STEPS + 1)}
    return {"rows": base + len(planted_rows), "pairs": pairs, "dups": len(dup_rows), "contaminated": contaminated_ids, "eval": evals}


def score(out: Path, truth: dict[str, Any]) -> dict[str, Any]:
    log = pq.read_table(out / "curation_log.parquet").to_pylist()
    by_filter: dict[str, dict[str, str]] = {}
    for entry in log:
        by_filter.setdefault(entry["filter"], {})[entry["id"]] = entry["reason"]
    near = {i: reason.removeprefix("near duplicate of ") for i, reason in by_filter.get("near_dedup", {}).items()}
    removed_before = {i for f, rows in by_filter.items() if f not in ("near_dedup", "decontaminate", "length_bias") for i in rows}

    def cluster(i: str) -> str:
        return near.get(i, i)

    planted = {(a, b): j for a, b, j in truth["pairs"] if a not in removed_before and b not in removed_before}
    hits = {pair: cluster(pair[0]) == cluster(pair[1]) for pair in planted}
    strong = [pair for pair, j in planted.items() if j >= 0.8]
    partners = {b: a for a, b in planted} | {a: b for a, b in planted}
    correct = sum(1 for i, kept in near.items() if partners.get(i) == kept or partners.get(kept) == i)
    similar = {frozenset(pair): j for pair, j in planted.items()}
    joined_j = [similar.get(frozenset((i, kept)), 0.0) for i, kept in near.items()]
    curve = {}
    for low in (0.5, 0.6, 0.7, 0.8, 0.9):
        band = [p for p, j in planted.items() if low <= j < low + 0.1 or (low == 0.9 and j == 1.0)]
        curve[f"{low:.1f}-{low + 0.1:.1f}"] = f"{sum(hits[p] for p in band) / len(band):.3f} of {len(band)}" if band else "-"
    decon = set(by_filter.get("decontaminate", {}))
    reached = {i for i in truth["contaminated"] if i not in removed_before and i not in near}
    exact_dropped = sum(1 for i in by_filter.get("exact_dedup", {}) if i.endswith("/dup"))
    return {
        "near_dup_recall_jaccard_ge_0.8": round(sum(hits[p] for p in strong) / len(strong), 4) if strong else None,
        "near_dup_pairs_jaccard_ge_0.8": len(strong),
        "near_dup_precision": round(correct / len(near), 4) if near else None,
        "near_dup_rows_dropped": len(near),
        "near_dup_joined_pairs_with_jaccard_ge_0.7": round(sum(j >= 0.7 for j in joined_j) / len(joined_j), 4) if joined_j else None,
        "near_dup_joined_pairs_with_jaccard_ge_0.8": round(sum(j >= 0.8 for j in joined_j) / len(joined_j), 4) if joined_j else None,
        "near_dup_detection_by_jaccard": curve,
        "exact_dup_recall": round(exact_dropped / truth["dups"], 4),
        "exact_dup_false_drops": len(by_filter.get("exact_dedup", {})) - exact_dropped,
        "decontamination_recall": round(len(decon & reached) / len(reached), 4) if reached else None,
        "decontamination_unplanted_drops": len(decon - truth["contaminated"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic rows to curate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--work", type=Path, default=None, help="working directory (default: a temp dir, removed after)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="jf-bench-curation-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        truth = generate(work / "run" / "step_prefs", args.rows, args.seed)
        print(f"generated {truth['rows']:,} rows in {time.perf_counter() - start:.0f}s under {work}", flush=True)
        out = work / "run" / "step_prefs-curated"
        shutil.rmtree(out, ignore_errors=True)
        load_before = os.getloadavg()
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "judgeforge.cli", "curate", str(work / "run" / "step_prefs"), "--eval", str(truth["eval"]), "--out", str(out)]
        subprocess.run(cmd, check=True, env={**os.environ, "COLUMNS": "160"})
        seconds = time.perf_counter() - start
        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_after = os.getloadavg()
        figures = {
            "command": " ".join(cmd[1:]),
            "rows": truth["rows"],
            "seconds": round(seconds, 1),
            "rows_per_s": round(truth["rows"] / seconds),
            "cpu_seconds": round(child.ru_utime + child.ru_stime, 1),
            "rows_per_cpu_s": round(truth["rows"] / (child.ru_utime + child.ru_stime)),
            "peak_rss_gb": round(child.ru_maxrss / 1024**2, 2),
            "cores": os.cpu_count(),
            "load_avg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
            **score(out, truth),
        }
        print(json.dumps(figures, indent=2))
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
