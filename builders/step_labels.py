"""Step-labelled solutions built offline: Monte-Carlo labels on sampled solutions, exact labels on corrupted gold.

R-PRM (She et al., EMNLP 2025, arXiv 2503.21295) learns from PRM800K's human step labels; offline we
make step labels two ways, for problems with gold answers.

Sampled (Math-Shepherd, Wang et al., ACL 2024, arXiv 2312.08935): the policy (--model) writes
--samples solutions per problem in the Step n: format (one batched call); a solution cut by its token
budget loses its unfinished last step. Every step is then completed --rollouts times from the steps up
to it with the shared rollout estimator (builders/rollouts.py; one batched call for all steps of all
solutions); a step that already states a final answer is graded by that answer, and a step none of
whose rollouts finished is left unlabelled (counted). With --rule any (the paper's hard estimate) a
step is correct when at least one rollout reaches the gold answer, with --rule most when more than
half do.

Corrupted (exact): the gold step-by-step solution (reasoning-gym gsm_symbolic has one, one step per
line) with one step changed on purpose — a changed number (a result after "=" when there is one) or a
wrong operation (+ - * / swapped; in "a op b = c" the result is recomputed, so the arithmetic is right
and the operation wrong). A change that leaves the step's value as it was (2*2=4 -> 2+2=4, 12+0 ->
12-0, 10/1 -> 10*1, 0/5 -> 0*5) would label a correct step wrong, so it is rejected and the step's
next change tried (:func:`corruption_changes_value`); a drawn step with no value-changing change is
skipped and counted. The steps before it are correct, it is the first wrong step, the steps after
it are left unlabelled. With --include-gold the gold solution itself is emitted too, every step correct.
Both need gold solutions (--solution-col, or GSM8K-style answer chains): a source without any is
refused before a model loads, unless --corruptions 0 --no-include-gold asks for sampled solutions only.

Rows carry ProcessBench's first-wrong index, so a run is at once R-PRM evaluation inputs (read back by
judgeforge.builders.step_inputs: build rprm-sft / rprm-prefs --source OUT/step_labels) and a ProcessBench-style
test set for score rprm. The summary reports the Yes/No balance of the evaluation inputs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, Field

from judgeforge.builders.base import MAP_ANSWERS, RETRY, Builder, Calls, Loss, Need, Stat, StatFamily, first_inputs
from judgeforge.builders.rollouts import RolloutStats, rollout_values
from judgeforge.engines.base import Completion, SamplingParams, derive_seed
from judgeforge.formats.step_inputs import LabelledSolution, first_wrong
from judgeforge.formats.steps import gold_steps, next_step_request, normalise_steps, solution_text, split_steps
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.step_labels import Origin, StepLabelRow
from judgeforge.sources import Problem
from judgeforge.verify import check_answer, extract_answer, has_final_answer

CorruptionKind = Literal["number", "operation"]
ORIGINS: tuple[Origin, ...] = ("sampled", "corrupted", "gold")


class StepLabelsStats(RolloutStats):
    PROBLEMS = Stat("problems")
    NO_GOLD_ANSWER = Stat("no_gold_answer")
    NO_GOLD_SOLUTION = Stat("no_gold_solution")
    INPUTS = StatFamily("inputs", ("yes", "no"))
    STEPS_NO_FINISHED_ROLLOUT = Stat("steps_no_finished_rollout")
    SAMPLES_DRAWN = Stat("samples_drawn")
    SOLUTIONS_FAILED = Stat("solutions_failed")
    UNFINISHED_LAST_STEPS_DROPPED = Stat("unfinished_last_steps_dropped")
    SOLUTIONS_EMPTY = Stat("solutions_empty")
    CORRUPTION_DRAWS_SKIPPED = Stat("corruption_draws_skipped")
    CORRUPTED = StatFamily("corrupted", ("number", "operation"))
    CORRUPTIONS_MISSING = Stat("corruptions_missing")
    SOLUTIONS = StatFamily("solutions", ORIGINS)

    LOSSES = (
        Loss(NO_GOLD_ANSWER, PROBLEMS, "problems", "have no gold answer to grade steps against", MAP_ANSWERS),
        Loss(
            NO_GOLD_SOLUTION,
            PROBLEMS,
            "problems",
            "have no gold solution to corrupt or emit",
            "name the column of worked solutions with --solution-col",
        ),
        Loss(SOLUTIONS_FAILED, SAMPLES_DRAWN, "sampled solutions", "failed (engine errors)", RETRY),
        Loss(
            SOLUTIONS_EMPTY,
            SAMPLES_DRAWN,
            "sampled solutions",
            "had no complete step within --max-solution-tokens {c[max_solution_tokens]}",
            "raise --max-solution-tokens",
        ),
        Loss(
            CORRUPTIONS_MISSING,
            None,
            "corruptions",
            "could not be made: no drawn step had a value-changing change ({s[corruption_draws_skipped]:g} draws skipped)",
            "use problems whose gold steps state numbers, or --corruption-kinds both",
        ),
    )


_HEADER = re.compile(r"Step \d+:")
_NUMBER = re.compile(r"(?<![\d.,])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d.,]*\d)")
_OPERATOR = r"[+\-−*/×÷]"
_OPERATION = re.compile(rf"(\d+(?:\.\d+)?)(\s*)({_OPERATOR})(\s*)(\d+(?:\.\d+)?)(?:(\s*=\s*)(\d+(?:\.\d+)?)(?![\d.]*\d))?")
_WRONG_OPERATION = {"+": "-", "-": "+", "−": "+", "*": "+", "/": "*", "×": "+", "÷": "×"}
_EXPRESSION = re.compile(rf"{_NUMBER.pattern}(?:\s*{_OPERATOR}\s*{_NUMBER.pattern})*")
_OPERATOR_SPLIT = re.compile(rf"\s*({_OPERATOR})\s*")


class StepLabelsConfig(BaseModel):
    samples: int = Field(4, ge=0, description="solutions sampled from --model per problem and labelled by rollouts (0: none)")
    rollouts: int = Field(8, ge=1, description="Monte-Carlo completions per step of a sampled solution (Math-Shepherd: 8)")
    rule: Literal["any", "most"] = Field(
        "any", description="a sampled step is correct when any (Math-Shepherd's hard estimate) / more than half of its rollouts reach the gold answer"
    )
    corruptions: int = Field(2, ge=0, description="corrupted copies of the gold solution per problem, each with one wrong step")
    corruption_kinds: Literal["both", "number", "operation"] = Field(
        "both", description="how a gold step is corrupted: a changed number, a wrong operation, or either (seeded choice)"
    )
    include_gold: bool = Field(True, description="also emit the gold solution itself, every step labelled correct")
    temperature: float = Field(0.7, ge=0.0, description="sampling temperature for solutions and rollouts")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling for solutions and rollouts")
    max_solution_tokens: int = Field(384, ge=1, description="token budget of one sampled solution")
    rollout_max_tokens: int = Field(256, ge=1, description="token budget of one rollout (the rest of a solution)")


def corruption_changes_value(original: str, corrupted: str) -> bool:
    """Whether ``corrupted`` states different values than ``original`` (two versions of one step).

    A step's values are its arithmetic expressions and lone numbers, in order, each evaluated exactly
    (``*`` and ``/`` before ``+`` and ``-``; parentheses are not read, each group counts on its own).
    A corruption that keeps them (2*2=4 -> 2+2=4, 12+0 -> 12-0, 10/1 -> 10*1, 0/5 -> 0*5) leaves a
    correct step, so it must not be labelled wrong.
    """
    return step_values(original) != step_values(corrupted)


def step_values(step: str) -> list[Fraction | None]:
    """The values a step states: every arithmetic expression (a lone number is one) of its body, evaluated."""
    header = _HEADER.match(step)
    body = step[header.end() :] if header else step
    return [_evaluate(match.group(0)) for match in _EXPRESSION.finditer(body)]


def _evaluate(expression: str) -> Fraction | None:
    """The exact value of ``a op b op c ...``; None on a division by zero."""
    parts = _OPERATOR_SPLIT.split(expression)
    numbers = [Fraction(number.replace(",", "")) for number in parts[0::2]]
    terms = [numbers[0]]
    for op, number in zip(parts[1::2], numbers[1:], strict=True):
        if op in "*×":
            terms[-1] *= number
        elif op in "/÷":
            if not number:
                return None
            terms[-1] /= number
        else:
            terms.append(number if op == "+" else -number)
    return sum(terms, Fraction(0))


def corrupt_step(step: str, kind: CorruptionKind, rng: random.Random) -> tuple[str, str] | None:
    """``step`` (``Step n: ...``) with one controlled error that changes its value, and a note of what
    changed; None if it has no number (or no operation) whose change alters the step's value.

    The seeded draw picks what to change (for a number, the result after the last "=" when there is
    one); a change that keeps the step's value (:func:`corruption_changes_value`) is rejected and the
    step's other numbers (operations) are tried in order, each drawn with the same ``rng``.
    """
    match_header = _HEADER.match(step)
    header = match_header.group(0) if match_header else ""
    body = step[len(header) :]
    changes = _number_changes(body, rng) if kind == "number" else _operation_changes(body, rng)
    return next(((header + changed, note) for changed, note in changes if corruption_changes_value(body, changed)), None)


def _number_changes(body: str, rng: random.Random) -> Iterator[tuple[str, str]]:
    """``body`` with one number shifted, the drawn number first, then every other number in order."""
    numbers = list(_NUMBER.finditer(body))
    if not numbers:
        return
    equals = body.rfind("=")
    results = [m for m in numbers if m.start() > equals >= 0]
    drawn = (results or [rng.choice(numbers)])[0]
    for match in [drawn, *(m for m in numbers if m is not drawn)]:
        old = match.group(0)
        new = _shifted(old, rng)
        yield body[: match.start()] + new + body[match.end() :], f"number {old} -> {new}"


def _operation_changes(body: str, rng: random.Random) -> Iterator[tuple[str, str]]:
    """``body`` with one operation swapped (result after "=" recomputed), the drawn one first, then the others."""
    matches = list(_OPERATION.finditer(body))
    if not matches:
        return
    drawn = rng.choice(matches)
    for match in [drawn, *(m for m in matches if m is not drawn)]:
        a, space1, op, space2, b, equals_sign, result = match.groups()
        wrong = _WRONG_OPERATION[op]
        text = f"{a}{space1}{wrong}{space2}{b}"
        if equals_sign is not None:
            value = _evaluate(f"{a}{wrong}{b}")
            text += equals_sign + (_format(float(value), result) if value is not None else result)
        yield body[: match.start()] + text + body[match.end() :], f"operation {match.group(0).strip()} -> {text.strip()}"


def _shifted(number: str, rng: random.Random) -> str:
    value = float(number.replace(",", ""))
    delta = rng.choice((1, 2, 3, 5, 10))
    new = value - delta if value - delta > 0 and rng.random() < 0.5 else value + delta
    return _format(new, number)


def _format(value: float, like: str) -> str:
    """``value`` written like ``like``: an integer when ``like`` is one and the value is whole, with
    thousands separators when ``like`` has them."""
    if value == int(value) and ("." not in like or like.endswith(".0")):
        return f"{int(value):,}" if "," in like else str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


class StepLabelsBuilder(Builder[StepLabelsConfig]):
    name = "step-labels"
    version = "0.2.0"
    summary = "step-labelled solutions: rollout labels on sampled solutions, exact labels on corrupted gold (R-PRM inputs)"
    row_model = StepLabelRow
    Config = StepLabelsConfig
    Stats = StepLabelsStats

    @classmethod
    def needs(cls, config: StepLabelsConfig) -> tuple[Need, ...]:
        answer = Need("answer", "", "every label is graded against the gold answer")
        if not config.corruptions and not config.include_gold:
            return (answer,)
        option = f"--corruptions {config.corruptions}" if config.corruptions else "--include-gold"
        instead = "--corruptions 0 --no-include-gold to label sampled solutions only" if config.samples else ""
        return (answer, Need("solution", option, "corrupted and gold rows are made from the gold solution", instead))

    @classmethod
    def estimate(cls, config: StepLabelsConfig, inputs: Sequence[Problem]) -> list[Calls]:
        cfg = config
        problems = [p for p in inputs if p.answer is not None]
        if not cfg.samples or not problems:
            return []  # gold solutions and their corruptions need no engine call
        first = first_inputs(problems)
        gold = [len(gold_steps(p)) for p in first if gold_steps(p)]
        steps = max(1, round(sum(gold) / len(gold))) if gold else 4
        solutions = Calls(
            role="policy",
            stage="sampled solutions",
            requests=len(problems),
            samples=cfg.samples,
            max_tokens=cfg.max_solution_tokens,
            prompts=tuple(next_step_request(p.question, [], 0) for p in first),
        )
        rollouts = Calls(
            role="policy",
            stage=f"rollouts (one per step; {steps} steps a solution, as the gold solutions of the first problems)",
            requests=len(problems) * cfg.samples * steps,
            samples=cfg.rollouts,
            max_tokens=cfg.rollout_max_tokens,
            prompts=solutions.prompts,
            added_tokens=cfg.max_solution_tokens // 2,
        )
        return [solutions, rollouts]

    def build(self, items: list[Problem]) -> list[BaseRow]:
        problems = [p for p in items if p.answer is not None]
        self.stats.add(StepLabelsStats.PROBLEMS, len(items))
        self.stats.add(StepLabelsStats.NO_GOLD_ANSWER, len(items) - len(problems))
        sampled = self._sampled(problems)
        rows: list[StepLabelRow] = []
        for problem in problems:
            gold = gold_steps(problem)
            if gold:
                if self.config.include_gold:
                    rows.append(self._row(problem, "gold", "gold", gold, [True] * len(gold)))
                rows += self._corrupted(problem, gold)
            else:
                self.stats.add(StepLabelsStats.NO_GOLD_SOLUTION)
            rows += sampled.get(problem.id, [])
        for row in rows:
            solution = LabelledSolution(id=row.id, question=row.question, steps=row.steps, labels=row.labels, layout="step-labels")
            for step in solution.inputs():
                self.stats.add(StepLabelsStats.INPUTS[step.label.lower()])
        self.ctx.on_inputs_done(len(items))
        return list(rows)

    def _sampled(self, problems: list[Problem]) -> dict[str, list[StepLabelRow]]:
        """Sample solutions, then label every step by rollouts (two batched engine calls); rows by problem id."""
        cfg, seed = self.config, self.ctx.seed
        if not cfg.samples or not problems:
            return {}
        policy = self.ctx.engines["policy"]
        params = SamplingParams(n=cfg.samples, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_solution_tokens, seed=seed)
        requests = [next_step_request(p.question, [], derive_seed(seed, p.id, "solution")) for p in problems]
        solutions: list[tuple[Problem, int, list[str]]] = []
        for problem, request, completions in zip(problems, requests, policy.generate(requests, params), strict=True):
            for index, completion in enumerate(completions):
                steps = self._steps(request.prefix, completion)
                if steps:
                    solutions.append((problem, index, steps))
        jobs = [(p, steps[: i + 1]) for p, _, steps in solutions for i in range(len(steps)) if not has_final_answer(steps[i])]
        rollout_params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.rollout_max_tokens, seed=seed)
        results = iter(rollout_values(policy, jobs, cfg.rollouts, rollout_params, seed))
        rows: dict[str, list[StepLabelRow]] = {}
        for problem, index, steps in solutions:
            values: list[float | None] = []
            for i, step in enumerate(steps):
                if has_final_answer(step):
                    values.append(1.0 if check_answer(problem, solution_text(steps[: i + 1])) else 0.0)
                    continue
                result = next(results)
                result.count(self.stats)
                self.stats.add(StepLabelsStats.STEPS_NO_FINISHED_ROLLOUT, result.value is None)
                values.append(result.value)
            labels = [None if v is None else (v > 0 if cfg.rule == "any" else v > 0.5) for v in values]
            rows.setdefault(problem.id, []).append(self._row(problem, f"sample-{index}", "sampled", steps, labels, values=values))
        return rows

    def _steps(self, prefix: str, completion: Completion) -> list[str]:
        """A sampled solution's steps; an unfinished last step (cut by the token budget) is dropped."""
        self.stats.add(StepLabelsStats.SAMPLES_DRAWN)
        if not completion.ok:
            self.stats.add(StepLabelsStats.SOLUTIONS_FAILED)
            return []
        bodies = split_steps(prefix + completion.text)
        if bodies and completion.finish_reason == "length" and not has_final_answer(bodies[-1]):
            bodies.pop()
            self.stats.add(StepLabelsStats.UNFINISHED_LAST_STEPS_DROPPED)
        if not bodies:
            self.stats.add(StepLabelsStats.SOLUTIONS_EMPTY)
        return normalise_steps(bodies, None)

    def _corrupted(self, problem: Problem, gold: list[str]) -> list[StepLabelRow]:
        """Up to ``corruptions`` distinct copies of the gold solution, each with one wrong step; a drawn step
        with no value-changing corruption of the drawn kind is skipped (counted) and another drawn."""
        cfg = self.config
        kinds: Sequence[CorruptionKind] = ("number", "operation") if cfg.corruption_kinds == "both" else (cfg.corruption_kinds,)
        rows: list[StepLabelRow] = []
        seen: set[tuple[str, ...]] = set()
        for attempt in range(cfg.corruptions * 4):
            if len(rows) == cfg.corruptions:
                break
            rng = random.Random(derive_seed(self.ctx.seed, problem.id, "corrupt", attempt))
            index, kind = rng.randrange(len(gold)), rng.choice(kinds)
            changed = corrupt_step(gold[index], kind, rng)
            if changed is None:
                self.stats.add(StepLabelsStats.CORRUPTION_DRAWS_SKIPPED)
                continue
            steps = [*gold[:index], changed[0], *gold[index + 1 :]]
            if tuple(steps) in seen:
                continue
            seen.add(tuple(steps))
            labels: list[bool | None] = [True] * index + [False] + [None] * (len(gold) - index - 1)
            rows.append(self._row(problem, f"corrupt-{len(rows)}", "corrupted", steps, labels, corruption=(f"step {index + 1}: {changed[1]}", kind)))
            self.stats.add(StepLabelsStats.CORRUPTED[kind])
        self.stats.add(StepLabelsStats.CORRUPTIONS_MISSING, cfg.corruptions - len(rows))
        return rows

    def _row(
        self,
        problem: Problem,
        suffix: str,
        origin: Origin,
        steps: list[str],
        labels: list[bool | None],
        values: list[float | None] | None = None,
        corruption: tuple[str, str] | None = None,
    ) -> StepLabelRow:
        text = solution_text(steps)
        self.stats.add(StepLabelsStats.SOLUTIONS[origin])
        return StepLabelRow(
            id=f"{problem.id}/{suffix}",
            source_id=problem.id,
            meta=self.row_meta(),
            question=problem.question,
            steps=steps,
            labels=labels,
            first_wrong=first_wrong(labels),
            origin=origin,
            gold_answer=problem.answer,
            final_answer=extract_answer(text),
            final_answer_correct=check_answer(problem, text),
            step_values=values or [],
            rollouts=self.config.rollouts if values is not None else 0,
            corruption=corruption[0] if corruption else None,
            corruption_kind=corruption[1] if corruption else None,
        )

    @classmethod
    def report(cls, stats: Mapping[str, float]) -> list[tuple[str, str]]:
        S = StepLabelsStats

        def n(stat: Stat) -> str:
            return f"{stat.read(stats):g}"

        inputs, solutions, corrupted = S.INPUTS.read(stats), S.SOLUTIONS.read(stats), S.CORRUPTED.read(stats)
        yes, no = inputs.get("yes", 0), inputs.get("no", 0)
        return [
            ("solutions sampled / corrupted / gold", " / ".join(f"{solutions.get(o, 0):g}" for o in ORIGINS)),
            ("sampled solutions failed, dropped", n(S.SOLUTIONS_FAILED)),
            ("evaluation inputs Yes / No", f"{yes:g} / {no:g} ({yes / (yes + no):.0%} Yes)" if yes + no else "0 / 0"),
            ("rollouts (unfinished / failed)", f"{n(S.ROLLOUTS)} ({n(S.ROLLOUTS_UNFINISHED)} / {n(S.ROLLOUTS_FAILED)})"),
            ("sampled steps unlabelled: no finished rollout", n(S.STEPS_NO_FINISHED_ROLLOUT)),
            ("unfinished last steps dropped", n(S.UNFINISHED_LAST_STEPS_DROPPED)),
            ("corruptions number / operation / missing", f"{corrupted.get('number', 0):g} / {corrupted.get('operation', 0):g} / {n(S.CORRUPTIONS_MISSING)}"),
            ("drawn steps skipped: no value-changing corruption", n(S.CORRUPTION_DRAWS_SKIPPED)),
            ("problems without gold answer / solution", f"{n(S.NO_GOLD_ANSWER)} / {n(S.NO_GOLD_SOLUTION)}"),
        ]
