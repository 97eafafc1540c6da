"""``judgeforge audit``: re-derive every label a run's rows can re-derive, and list the disagreements.

A label that is silently wrong costs a user GPU days before they notice, and a builder's own tests only
cover the builder as it is today. The audit trusts nothing a builder decided: from what each row stores
it re-parses the judge, analysis and verification texts with the shared parsers, re-grades final
answers against the gold answer with the shared checker, re-checks that a corrupted step's value
really changed, that a step marked final is one and ends its search, and that the training view puts
EOS after final steps only. It reads shards with pyarrow, not through the current schema, so it also
audits runs built by older versions (a field an old run lacks makes its check not applicable).

A check is a name, a one-line description and a function of one row (and the run's context) that says
whether the row agrees (True), disagrees (False) or gives the check nothing to look at (None); the
:class:`Audit` owns iteration, counting and the example row ids.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from judgeforge.builders.step_labels import corruption_changes_value
from judgeforge.errors import UserError
from judgeforge.formats.judge import VERDICT_LEAD, parse_verdict
from judgeforge.formats.rprm import parse_analysis, step_reward
from judgeforge.formats.s2r import parse_verdict as parse_verification
from judgeforge.formats.s2r import split_segments
from judgeforge.formats.step_inputs import first_wrong
from judgeforge.formats.steps import STEP_DELIMITER
from judgeforge.schemas.base import KIND_KEY
from judgeforge.schemas.step_prefs import dpo_view
from judgeforge.sources import Problem, SourceConfig, load_problems
from judgeforge.verify import answers_match, check_answer, has_final_answer

Row = dict[str, Any]


class _EosProbe:
    """The part of a tokenizer the step-wise DPO view touches, with a marker EOS that no text contains."""

    eos_token = "\x00<audit-eos>\x00"

    def apply_chat_template(self, messages: Any, tokenize: bool = False, add_generation_prompt: bool = True) -> str:
        return ""


@dataclass
class AuditContext:
    """What checks may consult beyond the row: the run's config, its problems, run-level facts."""

    config: dict[str, Any]
    problems: dict[str, Problem]
    last_step: dict[str, int] = field(default_factory=dict)
    gold_steps: dict[str, list[str]] = field(default_factory=dict)

    def grade(self, source_id: str, gold: str | None, answer: str | None) -> bool | None:
        """The shared checker on a stored final answer: the source's own problem when the run's source
        can be loaded (reasoning-gym tasks grade with their scorer), else math-verify against the gold."""
        if answer is None:
            return False if gold is not None or source_id in self.problems else None
        problem = self.problems.get(source_id)
        if problem is not None:
            return check_answer(problem, f"\\boxed{{{answer}}}")
        return None if gold is None else answers_match(gold, answer)


Test = Callable[[Row, AuditContext], "bool | None"]


@dataclass(frozen=True)
class Check:
    name: str
    what: str
    test: Test


@dataclass
class CheckResult:
    check: Check
    checked: int = 0
    disagreements: int = 0
    examples: list[str] = field(default_factory=list)


# --- step_prefs ------------------------------------------------------------------------------------


def _judgments_reparse(row: Row, ctx: AuditContext) -> bool | None:
    judgments = row.get("judgments") or []
    if not judgments:
        return None
    for j in judgments:
        if j.get("forced"):
            # A forced verdict is read from P(A) vs P(B) at the verdict slot, never from the text.
            p_first = j.get("p_first")
            if j["verdict"] is not None and p_first is not None and j["verdict"] != ("A" if p_first >= 0.5 else "B"):
                return False
        elif parse_verdict(j["raw"]) != j["verdict"]:
            return False
    return True


def _chosen_is_best(row: Row, ctx: AuditContext) -> bool | None:
    scores = row.get("candidate_scores") or []
    if not scores:
        return None
    return row["chosen_score"] == max(scores) and row["rejected_score"] == min(scores) and row["chosen_score"] > row["rejected_score"]


def _clears_tie_epsilon(row: Row, ctx: AuditContext) -> bool | None:
    """A written pair is no tie: its best-worst gap reaches the run's --tie-epsilon (runs built before it: > 0)."""
    epsilon = float(ctx.config.get("tie_epsilon", 0.0))
    gap = row["chosen_score"] - row["rejected_score"]
    return gap > 1e-9 and gap >= epsilon - 1e-9


def _answer_steps_are_final(row: Row, ctx: AuditContext) -> bool | None:
    """A step that states a final answer ends the search, so it must be marked final (chosen and rejected)."""
    return (not has_final_answer(row["chosen"]) or row["chosen_is_final"]) and (not has_final_answer(row["rejected"]) or row["rejected_is_final"])


def _final_step_ends_search(row: Row, ctx: AuditContext) -> bool | None:
    if not row["chosen_is_final"]:
        return None
    return row["step_index"] == ctx.last_step.get(row["source_id"], row["step_index"]) and row.get("solution_status") == "final_answer"


def _eos_only_on_final_steps(row: Row, ctx: AuditContext) -> bool | None:
    (record,) = dpo_view([row], _EosProbe())
    eos = _EosProbe.eos_token
    return record["chosen"].endswith(eos) == row["chosen_is_final"] and record["rejected"].endswith(eos) == row["rejected_is_final"]


def _solution_graded(row: Row, ctx: AuditContext) -> bool | None:
    if row.get("solution_status") != "final_answer" or row.get("solution_correct") is None:
        return None
    expected = ctx.grade(row["source_id"], row.get("gold_answer"), row.get("final_answer"))
    return None if expected is None else expected == row["solution_correct"]


# --- ift ---------------------------------------------------------------------------------------------


def _no_empty_steps(row: Row, ctx: AuditContext) -> bool | None:
    steps = row.get("steps") or []
    return all(step.strip() and step.split(":", 1)[-1].strip() for step in steps) if steps else None


def _solution_is_its_steps(row: Row, ctx: AuditContext) -> bool | None:
    return row["solution"] == STEP_DELIMITER.join(row["steps"])


def _last_step_states_answer(row: Row, ctx: AuditContext) -> bool | None:
    steps = row.get("steps") or []
    if not steps or row.get("gold_answer") is None:
        return None
    return has_final_answer(steps[-1]) and not any(has_final_answer(s) for s in steps[:-1])


def _ift_verified(row: Row, ctx: AuditContext) -> bool | None:
    if row.get("verified") is None:
        return None
    expected = ctx.grade(row["source_id"], row.get("gold_answer"), row.get("final_answer"))
    return None if expected is None else expected == row["verified"]


# --- eft ---------------------------------------------------------------------------------------------


def _eft_judgment_reparse(row: Row, ctx: AuditContext) -> bool | None:
    return _judge_target(row["judgment"], row["label"], bool(row.get("forced_verdict")), ctx)


def _eft_label_follows_values(row: Row, ctx: AuditContext) -> bool | None:
    better = "A" if row["value_a"] > row["value_b"] else "B" if row["value_b"] > row["value_a"] else None
    return better == row["label"]


def _eft_both_orders_agree(row: Row, ctx: AuditContext) -> bool | None:
    """The kept pair was judged consistently: the better step wins shown first (A) and shown second (B)."""
    first, second = row.get("judge_raw_better_first"), row.get("judge_raw_better_second")
    if not first or not second:
        return None
    return parse_verdict(first) in ("A", None) and parse_verdict(second) in ("B", None)


def _judge_target(text: str, label: str, forced: bool, ctx: AuditContext) -> bool:
    """A judge-data training target states exactly one verdict, the label; a forced one only when the run
    allowed forced verdicts as targets, and then as the appended verdict line."""
    if forced and not ctx.config.get("allow_forced_verdicts", False):
        return False
    return parse_verdict(text) == label and (not forced or text.rstrip().endswith(f"{VERDICT_LEAD}{label}]]"))


# --- step_labels ---------------------------------------------------------------------------------------


def _first_wrong_matches_labels(row: Row, ctx: AuditContext) -> bool | None:
    return first_wrong(row.get("labels") or []) == row.get("first_wrong")


def _corruption_changes_value(row: Row, ctx: AuditContext) -> bool | None:
    """A corrupted solution is its problem's gold solution with one step changed: that step's value must differ."""
    gold, index = ctx.gold_steps.get(row["source_id"]), row.get("first_wrong")
    if row.get("origin") != "corrupted" or gold is None or index is None or not 0 <= index < len(gold):
        return None
    return corruption_changes_value(gold[index], row["steps"][index])


def _step_labels_answer_graded(row: Row, ctx: AuditContext) -> bool | None:
    if row.get("final_answer_correct") is None:
        return None
    expected = ctx.grade(row["source_id"], row.get("gold_answer"), row.get("final_answer"))
    return None if expected is None else expected == row["final_answer_correct"]


# --- R-PRM ---------------------------------------------------------------------------------------------


def _rprm_analysis_reparse(row: Row, ctx: AuditContext) -> bool | None:
    if row.get("forced_verdict"):
        return None
    return parse_analysis(row["analysis"]).verdict == row["verdict"]


def _rprm_sft_verdict_is_label(row: Row, ctx: AuditContext) -> bool | None:
    return row["verdict"] == row["label"]


def _rprm_prefs_reparse(row: Row, ctx: AuditContext) -> bool | None:
    ok = True
    if not row.get("chosen_forced_verdict"):
        ok &= parse_analysis(row["chosen"]).verdict == row["chosen_verdict"]
    if not row.get("rejected_forced_verdict"):
        ok &= parse_analysis(row["rejected"]).verdict == (row["rejected_verdict"] or None)
    return ok


def _rprm_prefs_sides(row: Row, ctx: AuditContext) -> bool | None:
    return row["chosen_verdict"] == row["label"] and row["rejected_verdict"] != row["label"]


def _rprm_reward_rederives(row: Row, ctx: AuditContext) -> bool | None:
    """The step's reward is what its stored K evaluations give (mean P(Yes), else the Yes share of the votes)."""
    if "p_yes" not in row or "votes" not in row:
        return None
    reward, method = step_reward(row["p_yes"], row["votes"])
    stored = row.get("reward")
    same = stored is None if reward is None else stored is not None and abs(stored - reward) < 1e-9
    return same and row.get("method", method) == method


# --- Self-Taught -------------------------------------------------------------------------------------


def _ste_kept_judgment(row: Row, ctx: AuditContext) -> bool | None:
    return _judge_target(row["judgment"], row["label"], bool(row.get("judgment_forced")), ctx)


def _ste_sampled_judgments(row: Row, ctx: AuditContext) -> bool | None:
    judgments = row.get("judgments") or []
    if not judgments:
        return None
    for j in judgments:
        if not j.get("forced") and parse_verdict(j["text"]) != j["verdict"]:
            return False
        if j["verdict"] is not None and j["correct"] != (j["verdict"] == j["better_shown_as"]):
            return False
    return True


def _ste_rejected(row: Row, ctx: AuditContext) -> bool | None:
    """Every judgment the DPO view may take as rejected is of the kept order, names the worse response in its
    own text, and is forced only when the run allowed forced verdicts as targets."""
    indices = row.get("rejected_indices") or []
    if not indices:
        return None
    by_index = {j["index"]: j for j in row.get("judgments") or []}
    allow_forced = ctx.config.get("allow_forced_verdicts", False)
    for k in indices:
        j = by_index.get(k)
        if j is None or j["better_shown_as"] != row["label"] or (j["forced"] and not allow_forced):
            return False
        if j["verdict"] is None or j["verdict"] == row["label"] or parse_verdict(j["text"]) != j["verdict"]:
            return False
    return True


def _ste_counts(row: Row, ctx: AuditContext) -> bool | None:
    judgments = row.get("judgments") or []
    if not judgments:
        return None
    return (
        row["num_judgments"] == len(judgments)
        and row["num_correct"] == sum(1 for j in judgments if j["correct"])
        and row["num_forced"] == sum(1 for j in judgments if j.get("forced") and j["verdict"] is not None)
    )


# --- S2R ---------------------------------------------------------------------------------------------


def _s2r_verifications_reparse(row: Row, ctx: AuditContext) -> bool | None:
    checked = [s for s in row.get("segments") or [] if s["role"] == "verification"]
    if not checked:
        return None
    return all(s.get("forced") or parse_verification(s["text"]).verdict == s["verdict"] for s in checked)


def _s2r_verdicts_match_answers(row: Row, ctx: AuditContext) -> bool | None:
    checked = [s for s in row.get("segments") or [] if s["role"] == "verification"]
    if not checked:
        return None
    return all(s["verdict"] == ("correct" if s["answer_correct"] else "incorrect") for s in checked)


def _s2r_answers_graded(row: Row, ctx: AuditContext) -> bool | None:
    segments = [s for s in row.get("segments") or [] if s["role"] == "attempt"]
    if not segments:
        return None
    for s in segments:
        expected = ctx.grade(row["source_id"], row.get("gold_answer"), s["answer"] or None)
        if expected is not None and expected != s["answer_correct"]:
            return False
    return True


def _s2r_forced_not_trained(row: Row, ctx: AuditContext) -> bool | None:
    checked = [s for s in row.get("segments") or [] if s["role"] == "verification"]
    if not checked or ctx.config.get("allow_forced_verdicts", False):
        return None
    return not any(s.get("forced") for s in checked)


def _s2r_completion_segments(row: Row, ctx: AuditContext) -> bool | None:
    """The process reward re-cuts completions with the shared segmenter: it must give back the stored segments."""
    segments = row.get("segments") or []
    if not segments:
        return None
    return [(s.role, s.text) for s in split_segments(row["completion"])] == [(s["role"], s["text"]) for s in segments]


def _s2r_prompt_has_answer(row: Row, ctx: AuditContext) -> bool | None:
    return bool(row.get("prompt")) and row.get("answer") is not None


CHECKS: dict[str, tuple[Check, ...]] = {
    "step_prefs": (
        Check("judge verdicts re-parse", "each parsed judgment's verdict is what the shared parser reads in its text", _judgments_reparse),
        Check("chosen is best, rejected is worst", "chosen has the top score, rejected the bottom one, and they differ", _chosen_is_best),
        Check("pair is no tie", "the chosen-rejected score gap reaches the run's --tie-epsilon", _clears_tie_epsilon),
        Check("answer steps are final", "a chosen/rejected step that states a final answer is marked final", _answer_steps_are_final),
        Check("final step ends its search", "a chosen final step is the last step of its problem, which ended with a final answer", _final_step_ends_search),
        Check("EOS only after final steps", "the step-wise DPO view ends a side with EOS exactly when that step is final", _eos_only_on_final_steps),
        Check("final answer re-graded", "solution_correct equals the checker's grade of the stored final answer", _solution_graded),
    ),
    "ift": (
        Check("no empty steps", "every 'Step n:' has a body", _no_empty_steps),
        Check("solution is its steps", "the SFT target is exactly the steps joined by blank lines", _solution_is_its_steps),
        Check("only the last step answers", "the last step states the final answer, no earlier step does", _last_step_states_answer),
        Check("final answer re-graded", "verified equals the checker's grade of the stored final answer", _ift_verified),
    ),
    "eft": (
        Check("judgment re-parses to label", "the SFT target states exactly one verdict, the label, and is not forced (unless allowed)", _eft_judgment_reparse),
        Check("label follows rollout values", "the step with the higher Monte-Carlo value is the label", _eft_label_follows_values),
        Check("both orders agree", "the raw judgments prefer the better step in both presentation orders", _eft_both_orders_agree),
    ),
    "step_labels": (
        Check("first wrong matches labels", "first_wrong is the first step labelled wrong", _first_wrong_matches_labels),
        Check("corruption changes the value", "a corrupted step's arithmetic value differs from the original step's", _corruption_changes_value),
        Check("final answer re-graded", "final_answer_correct equals the checker's grade", _step_labels_answer_graded),
    ),
    "rprm_sft": (
        Check("analysis verdict re-parses", "the stored verdict is what the shared parser reads in the analysis", _rprm_analysis_reparse),
        Check("verdict is the label", "the SFT target's verdict matches the step's label", _rprm_sft_verdict_is_label),
    ),
    "rprm_prefs": (
        Check("analysis verdicts re-parse", "chosen's and rejected's verdicts are what the shared parser reads", _rprm_prefs_reparse),
        Check("chosen right, rejected wrong", "chosen's verdict is the label, rejected's is not", _rprm_prefs_sides),
    ),
    "rprm_scores": (Check("reward re-derives", "the step reward is the mean P(Yes) (else the Yes share) of its stored evaluations", _rprm_reward_rederives),),
    "ste_judgments": (
        Check(
            "kept judgment is a parsed, correct verdict",
            "the SFT target states exactly one verdict, the label, and is not forced (unless allowed)",
            _ste_kept_judgment,
        ),
        Check(
            "sampled judgments re-parse", "each sampled judgment's verdict re-parses and 'correct' means it names the better response", _ste_sampled_judgments
        ),
        Check("judgment counts", "num_judgments / num_correct / num_forced count the stored judgments", _ste_counts),
        Check(
            "rejected judgments are wrong in the kept order",
            "each judgment a DPO pair may reject is shown in the kept judgment's order and names the worse response (forced only if allowed)",
            _ste_rejected,
        ),
    ),
    "s2r_trajectories": (
        Check("verifications re-parse", "each verification's verdict is what the shared parser reads in its text", _s2r_verifications_reparse),
        Check("verdicts match answers", "a verification says correct exactly when its attempt's answer is correct", _s2r_verdicts_match_answers),
        Check("attempts re-graded", "each attempt's answer_correct equals the checker's grade", _s2r_answers_graded),
        Check("completion re-cuts into its segments", "the shared segmenter (the process reward's) gives back the stored segments", _s2r_completion_segments),
        Check("no forced verification trained", "no verification in a trajectory is forced (unless allowed)", _s2r_forced_not_trained),
    ),
    "s2r_rl_prompts": (
        Check("prompt with a gold answer", "every RL prompt has a prompt and the gold answer its reward grades against", _s2r_prompt_has_answer),
    ),
}


class Audit:
    """Runs a kind's checks over every row of a run, shard by shard."""

    def __init__(self, run: Path, examples: int = 3) -> None:
        self.run = run
        self.examples = examples
        self.shards = sorted((run / "data").glob("shard-*.parquet")) if (run / "data").is_dir() else []
        if not self.shards:
            raise UserError(f"run dir '{run}' has no data/shard-*.parquet files")
        kind = (pq.read_schema(self.shards[0]).metadata or {}).get(KIND_KEY, b"").decode()
        if kind not in CHECKS:
            raise UserError(f"{self.shards[0]}: not a judgeforge shard of a known kind (kind '{kind}')")
        self.kind = kind
        manifest_path = run / "manifest.json"
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}

    def _rows(self) -> Iterator[Row]:
        for shard in self.shards:
            yield from pq.read_table(shard).to_pylist()

    def _context(self) -> AuditContext:
        last_step: dict[str, int] = defaultdict(int)
        gold_steps: dict[str, list[str]] = {}
        for shard in self.shards:
            if self.kind == "step_prefs":
                table = pq.read_table(shard, columns=["source_id", "step_index"]).to_pydict()
                for source_id, index in zip(table["source_id"], table["step_index"], strict=True):
                    last_step[source_id] = max(last_step[source_id], index)
            elif self.kind == "step_labels":
                table = pq.read_table(shard, columns=["source_id", "origin", "steps"]).to_pydict()
                for source_id, origin, steps in zip(table["source_id"], table["origin"], table["steps"], strict=True):
                    if origin == "gold":
                        gold_steps[source_id] = steps
        config = dict(self.manifest.get("config") or {})
        return AuditContext(config=config, problems=self._problems(), last_step=dict(last_step), gold_steps=gold_steps)

    def _problems(self) -> dict[str, Problem]:
        """The run's own problems when its source is a reasoning-gym task (offline, regenerated exactly)."""
        source = self.manifest.get("source") or {}
        if not str(source.get("source", "")).startswith("gym:"):
            return {}
        fields = {k: v for k, v in source.items() if k in SourceConfig.model_fields}
        try:
            return {p.id: p for p in load_problems(SourceConfig(**fields))}
        except UserError:
            return {}

    def run_checks(self) -> list[CheckResult]:
        ctx = self._context()
        results = [CheckResult(c) for c in CHECKS[self.kind]]
        for row in self._rows():
            for result in results:
                verdict = result.check.test(row, ctx)
                if verdict is None:
                    continue
                result.checked += 1
                if not verdict:
                    result.disagreements += 1
                    if len(result.examples) < self.examples:
                        result.examples.append(str(row["id"]))
        return results


def audit_run(run: Path, examples: int = 3) -> tuple[str, list[CheckResult]]:
    """The run's kind and each check's result."""
    audit = Audit(run, examples)
    return audit.kind, audit.run_checks()
