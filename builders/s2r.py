"""S2R self-verification trajectories, stratified by difficulty, with per-segment SFT loss masks.

Ma et al., "S2R: Teaching LLMs to Self-verify and Self-correct via Reinforcement Learning", ACL 2025,
arXiv 2502.12853 (repository NineAbyss/S2R). Before RL, the policy learns by SFT to write an attempt,
verify it, and try again when its own verification rejects it. This builder makes that SFT data from
the policy's own outputs, in three batched stages.

Stage 0 sampling: K responses per question (the paper's collection script: K = 5, T = 0.7, top_p = 1.0,
final answer in \\boxed{}), graded against the gold answer with judgeforge.verify.check_answer. The
question's accuracy picks its difficulty level in --difficulty-table (easiest level first; the hardest
level holds the lowest accuracies).

Verifications: the model verifies every distinct final answer in two styles, with our own prompts:
problem-solving (solve the problem again and compare) and confirmative (put the answer back into the
problem and check it); each ends in a "Verdict: correct|incorrect" line. A verification without one
gets a forced verdict: the model continues its text with "Verdict:" and the likelier of " correct" and
" incorrect" is taken (judgeforge.formats.verdicts). Parsed, forced and unparsable verdicts are counted
apart; a sample or verification whose engine call failed is dropped and counted, never read as text. A verification is valid
only when its verdict matches the real correctness of the answer it checks. A forced verdict is a
measurement, not something the model wrote: by default a trajectory uses only verifications with a
parsed verdict (the stored text is cut after its first verdict line, so it carries exactly one), and
valid verifications with a forced verdict are left out and counted (verifications_forced_excluded);
--allow-forced-verdicts lets them in (trajectories_with_forced_verdicts counts the rows using one).

Trajectories r = {s1, v1, ..., sk, vk}: the question's level sets the number of attempts k (default, as
the paper's script for K = 5: no wrong sample -> 1 attempt, 1 -> 2, 2-3 -> 3, 4 -> 4). k-1 wrong samples
(with distinct answers, as in the paper's script) and one correct sample are drawn, seeded, from the
question's own samples, each followed by one of its valid verifications. The loss mask is 0 on wrong
attempts and 1 on verifications and on the final correct attempt. A sample or verification whose text
holds a connector of the layout at the start of a line (judgeforge.formats.s2r.fits_layout) is
not used, so the S2R rewards cut every trajectory back into exactly its segments (counted:
samples_with_connector, verifications_with_connector). A question with no correct sample, no valid
confirming verification, or too few validly rejected wrong samples yields no trajectory; when it would
have one with forced verdicts allowed, the reason is only_forced_verdicts. The manifest counts each
reason (no_trajectory_<reason>), and questions and trajectories per level
(difficulty_level_<n>, trajectory_level_<n>), which write_difficulty_plot draws as
<run>/plots/difficulty.png.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, Field, field_validator

from judgeforge.builders.base import MAP_ANSWERS, RETRY, Builder, BuilderStats, Calls, Loss, Need, Stat, StatFamily, first_inputs
from judgeforge.engines.base import Request, SamplingParams, derive_seed
from judgeforge.errors import UserError
from judgeforge.formats.s2r import (
    STYLES,
    VERDICT_LEAD,
    VERIFICATION,
    Style,
    Verdict,
    attempt_segment,
    fits_layout,
    policy_user_message,
    verification_segment,
    verify_user_message,
)
from judgeforge.formats.verdicts import settle
from judgeforge.schemas.base import BaseRow
from judgeforge.schemas.s2r import S2RTrajectoryRow, Sample, Segment, Verification
from judgeforge.sources import Problem
from judgeforge.verify import check_answer, extract_answer

_EPS = 1e-9
REASONS = ("no_gold_answer", "generation_failed", "no_correct_sample", "no_valid_confirmation", "too_few_rejected_wrong_attempts", "only_forced_verdicts")


class S2RStats(BuilderStats):
    QUESTIONS = Stat("questions")
    NO_TRAJECTORY = StatFamily("no_trajectory", REASONS)
    SAMPLES = Stat("samples")
    SAMPLES_FAILED = Stat("samples_failed")
    SAMPLES_CORRECT = Stat("samples_correct")
    SAMPLES_WITHOUT_ANSWER = Stat("samples_without_answer")
    SAMPLES_WITH_CONNECTOR = Stat("samples_with_connector")
    VERIFICATIONS = Stat("verifications")
    VERIFICATIONS_FAILED = Stat("verifications_failed")
    VERDICTS_PARSED = Stat("verdicts_parsed")
    VERDICTS_FORCED = Stat("verdicts_forced")
    VERDICTS_UNPARSABLE = Stat("verdicts_unparsable")
    VERDICT_SLOTS_FAILED = Stat("verdict_slots_failed")
    VERIFICATIONS_VALID = Stat("verifications_valid")
    VERIFICATIONS_INVALID = Stat("verifications_invalid")
    VALID_BY_STYLE = StatFamily("verifications_valid", (s.replace("-", "_") for s in STYLES))
    VERIFICATIONS_FORCED_EXCLUDED = Stat("verifications_forced_excluded")
    VERIFICATIONS_WITH_CONNECTOR = Stat("verifications_with_connector")
    DIFFICULTY_LEVEL = StatFamily("difficulty_level")
    TRAJECTORIES = Stat("trajectories")
    TRAJECTORY_LEVEL = StatFamily("trajectory_level")
    TRAJECTORIES_WITH_FORCED_VERDICTS = Stat("trajectories_with_forced_verdicts")

    LOSSES = (
        Loss(
            NO_TRAJECTORY["no_gold_answer"],
            QUESTIONS,
            "questions",
            "have no gold answer (nor a reasoning-gym scorer)",
            MAP_ANSWERS,
        ),
        Loss(
            NO_TRAJECTORY["generation_failed"],
            QUESTIONS,
            "questions",
            "lost every Stage-0 sample to a failed engine call",
            RETRY,
        ),
        Loss(
            NO_TRAJECTORY["no_correct_sample"],
            QUESTIONS,
            "questions",
            "had no correct Stage-0 sample ({s[samples_correct]:g} of {s[samples]:g} samples correct; {s[samples_without_answer]:g} stated no final answer)",
            "raise --num-samples (now {c[num_samples]}) or --max-tokens (now {c[max_tokens]}: a response cut before its answer is never "
            "correct), or use problems the model solves sometimes",
        ),
        Loss(
            NO_TRAJECTORY["no_valid_confirmation"],
            QUESTIONS,
            "questions",
            "had no verification with a parsed verdict confirming a correct sample ({s[verifications_valid]:g} of {s[verifications]:g} "
            "verifications valid; verdicts {s[verdicts_parsed]:g} parsed, {s[verdicts_forced]:g} forced)",
            "raise --verify-max-tokens (now {c[verify_max_tokens]}) or --verifications-per-style",
        ),
        Loss(
            NO_TRAJECTORY["too_few_rejected_wrong_attempts"],
            QUESTIONS,
            "questions",
            "had too few wrong attempts that a valid verification rejects for their difficulty level",
            "--no-distinct-wrong-answers, or a --difficulty-table asking fewer attempts",
        ),
        Loss(
            NO_TRAJECTORY["only_forced_verdicts"],
            QUESTIONS,
            "questions",
            "would have a trajectory only with forced verdicts ({s[verifications_forced_excluded]:g} valid verifications were forced)",
            "--allow-forced-verdicts lets them in (counted), or raise --verify-max-tokens (now {c[verify_max_tokens]})",
        ),
    )


class DifficultyLevel(NamedTuple):
    min_accuracy: float
    attempts: int


def parse_difficulty_table(text: str) -> tuple[DifficultyLevel, ...]:
    """``"0.9:1,0.7:2,..."`` → levels, easiest first; raises a one-line UserError naming the option."""
    where = f"--difficulty-table '{text}'"
    levels = []
    for entry in text.split(","):
        acc_text, sep, attempts_text = entry.partition(":")
        try:
            level = DifficultyLevel(float(acc_text), int(attempts_text))
        except ValueError:
            raise UserError(f"{where}: expected MIN_ACCURACY:ATTEMPTS pairs separated by commas, got '{entry.strip()}'") from None
        if not sep or not 0.0 <= level.min_accuracy <= 1.0 or level.attempts < 1:
            raise UserError(f"{where}: '{entry.strip()}' needs a minimum accuracy in [0, 1] and at least 1 attempt")
        levels.append(level)
    if any(b.min_accuracy >= a.min_accuracy for a, b in itertools.pairwise(levels)):
        raise UserError(f"{where}: minimum accuracies must decrease from the easiest level to the hardest")
    if levels[-1].min_accuracy != 0.0:
        raise UserError(f"{where}: the hardest level must start at accuracy 0 so every question has a level")
    return tuple(levels)


def difficulty_level(levels: tuple[DifficultyLevel, ...], accuracy: float) -> int:
    """The 1-based level of a Stage-0 accuracy: the first (easiest) level whose minimum it reaches."""
    return next(i for i, level in enumerate(levels, 1) if accuracy + _EPS >= level.min_accuracy)


class S2RTrajectoriesConfig(BaseModel):
    num_samples: int = Field(5, ge=1, description="Stage-0 responses sampled per question (paper: 5)")
    temperature: float = Field(0.7, ge=0.0, description="Stage-0 sampling temperature (paper: 0.7)")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Stage-0 nucleus sampling (paper: 1.0)")
    max_tokens: int = Field(2048, ge=1, description="token budget of one Stage-0 response (paper: 2048)")
    styles: Literal["both", "problem-solving", "confirmative"] = Field(
        "both",
        description="verification styles generated for every distinct answer: problem-solving (re-solve and compare), "
        "confirmative (substitute back and check), or both",
    )
    verifications_per_style: int = Field(1, ge=1, description="verifications sampled per distinct answer and style")
    verify_temperature: float = Field(0.1, ge=0.0, description="verification sampling temperature (paper's collection script: 0.1)")
    verify_max_tokens: int = Field(512, ge=1, description="token budget of one verification")
    force_verdict: bool = Field(
        True, description=f"when a verification has no '{VERDICT_LEAD} correct|incorrect' line, continue it with '{VERDICT_LEAD}' and take the likelier verdict"
    )
    allow_forced_verdicts: bool = Field(
        False,
        description="let verifications whose verdict was forced (not written by the model) into trajectories as training targets; "
        "by default they are only measured, and the valid ones left out are counted",
    )
    difficulty_table: str = Field(
        "0.9:1,0.7:2,0.5:3,0.3:3,0:4",
        description="difficulty levels, easiest first, as MIN_ACCURACY:ATTEMPTS pairs: a question's level is the first whose minimum "
        "its Stage-0 accuracy reaches; ATTEMPTS counts the wrong attempts plus the final correct one (default: the paper's script for K=5)",
    )
    distinct_wrong_answers: bool = Field(True, description="the wrong attempts of one trajectory must give different final answers (as the paper's script)")

    @field_validator("difficulty_table")
    @classmethod
    def _check_table(cls, value: str) -> str:
        parse_difficulty_table(value)
        return value

    @property
    def levels(self) -> tuple[DifficultyLevel, ...]:
        return parse_difficulty_table(self.difficulty_table)

    @property
    def style_list(self) -> tuple[Style, ...]:
        return STYLES if self.styles == "both" else (self.styles,)


@dataclass
class _Question:
    problem: Problem
    samples: list[Sample]
    verifications: list[Verification] = field(default_factory=list)


class S2RTrajectoriesBuilder(Builder[S2RTrajectoriesConfig]):
    name = "s2r-trajectories"
    version = "0.2.0"
    summary = "S2R self-verification trajectories (attempt, verify, retry) stratified by difficulty, with SFT loss masks"
    row_model = S2RTrajectoryRow
    Config = S2RTrajectoriesConfig
    Stats = S2RStats

    @classmethod
    def needs(cls, config: S2RTrajectoriesConfig) -> tuple[Need, ...]:
        return (Need("answer", "", "every attempt and verification is graded against the gold answer"),)

    @classmethod
    def estimate(cls, config: S2RTrajectoriesConfig, inputs: Sequence[Problem]) -> list[Calls]:
        cfg = config
        graded = [p for p in inputs if p.gradable]
        first = first_inputs(graded)
        responses = Calls(
            role="policy",
            stage="responses",
            requests=len(graded),
            samples=cfg.num_samples,
            max_tokens=cfg.max_tokens,
            prompts=tuple(Request.chat(policy_user_message(p.question)) for p in first),
        )
        verify = Calls(
            role="policy",
            stage="verifications (one per distinct answer and style)",
            requests=len(graded) * cfg.num_samples * len(cfg.style_list),
            samples=cfg.verifications_per_style,
            max_tokens=cfg.verify_max_tokens,
            prompts=tuple(Request.chat(verify_user_message(style, p.question, "")) for p in first for style in cfg.style_list),
        )
        return [responses, verify, *([verify.forced()] if cfg.force_verdict else [])]

    def build(self, problems: list[Problem]) -> list[BaseRow]:
        graded = [p for p in problems if p.gradable]
        self.stats.add(S2RStats.QUESTIONS, len(problems))
        self.stats.add(S2RStats.NO_TRAJECTORY["no_gold_answer"], len(problems) - len(graded))
        self.ctx.on_inputs_done(len(problems) - len(graded))
        questions = self._sample(graded)
        self._verify(questions)
        rows: list[BaseRow] = [row for q in questions if (row := self._trajectory(q)) is not None]
        self.ctx.on_inputs_done(len(questions))
        return rows

    def _sample(self, problems: list[Problem]) -> list[_Question]:
        """Stage 0: K responses per question, one batched call, each graded against the gold answer."""
        cfg = self.config
        params = SamplingParams(n=cfg.num_samples, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=self.ctx.seed)
        requests = [Request.chat(policy_user_message(p.question), seed=derive_seed(self.ctx.seed, p.id, "sample")) for p in problems]
        questions = []
        for problem, completions in zip(problems, self.ctx.engines["policy"].generate(requests, params), strict=True):
            samples, failed = [], 0
            for index, c in enumerate(completions):
                if not c.ok:
                    failed += 1
                    continue
                answer = extract_answer(c.text)
                samples.append(Sample(index=index, text=c.text, answer=answer, correct=bool(check_answer(problem, c.text)), finish_reason=c.finish_reason))
                self.stats.add(S2RStats.SAMPLES_WITHOUT_ANSWER, answer is None)
                self.stats.add(S2RStats.SAMPLES_WITH_CONNECTOR, not fits_layout("attempt", c.text))
            self.stats.add(S2RStats.SAMPLES, len(completions))
            self.stats.add(S2RStats.SAMPLES_FAILED, failed)
            self.stats.add(S2RStats.SAMPLES_CORRECT, sum(s.correct for s in samples))
            questions.append(_Question(problem, samples))
        return questions

    def _verify(self, questions: list[_Question]) -> None:
        """Verify every distinct answer in every style (one batched call), then force missing verdicts."""
        cfg = self.config
        params = SamplingParams(n=cfg.verifications_per_style, temperature=cfg.verify_temperature, max_tokens=cfg.verify_max_tokens, seed=self.ctx.seed)
        slots: list[tuple[int, str, Style, Request]] = []
        for qi, q in enumerate(questions):
            for answer in dict.fromkeys(s.answer for s in q.samples if s.answer is not None):
                for style in cfg.style_list:
                    seed = derive_seed(self.ctx.seed, q.problem.id, "verify", style, answer)
                    slots.append((qi, answer, style, Request.chat(verify_user_message(style, q.problem.question, answer), seed=seed)))
        engine = self.ctx.engines["policy"]
        outputs = [
            (slot, completion) for slot, completions in zip(slots, engine.generate([r for *_, r in slots], params), strict=True) for completion in completions
        ]
        settled = settle(engine, VERIFICATION, [(slot[3], completion) for slot, completion in outputs], self.ctx.seed, cfg.force_verdict)
        for ((qi, answer, style, _), _), check in zip(outputs, settled, strict=True):
            if check is None:
                self.stats.add(S2RStats.VERIFICATIONS_FAILED)
                continue
            q = questions[qi]
            correct = next(s.correct for s in q.samples if s.answer == answer)
            valid = check.verdict == ("correct" if correct else "incorrect")
            forced = check.forced is not None
            q.verifications.append(Verification(answer=answer, style=style, text=check.text.strip(), verdict=check.verdict, forced=forced, valid=valid))
            self.stats.add(S2RStats.VERIFICATIONS)
            self.stats.add({"parsed": S2RStats.VERDICTS_PARSED, "forced": S2RStats.VERDICTS_FORCED, "unparsable": S2RStats.VERDICTS_UNPARSABLE}[check.how])
            self.stats.add(S2RStats.VERDICT_SLOTS_FAILED, check.slot_failed)
            self.stats.add(S2RStats.VERIFICATIONS_VALID if valid else S2RStats.VERIFICATIONS_INVALID)
            self.stats.add(S2RStats.VALID_BY_STYLE[style.replace("-", "_")], valid)
            self.stats.add(S2RStats.VERIFICATIONS_FORCED_EXCLUDED, valid and forced and not cfg.allow_forced_verdicts)
            self.stats.add(S2RStats.VERIFICATIONS_WITH_CONNECTOR, not fits_layout("verification", check.text))

    def _trajectory(self, q: _Question) -> S2RTrajectoryRow | None:
        """Draw the trajectory of one question, or count why it has none."""
        cfg, levels = self.config, self.config.levels
        if not q.samples:
            return self._none("generation_failed")
        num_correct = sum(s.correct for s in q.samples)
        accuracy = num_correct / len(q.samples)
        level = difficulty_level(levels, accuracy)
        self.stats.add(S2RStats.DIFFICULTY_LEVEL[level])
        if not num_correct:
            return self._none("no_correct_sample")
        needed = levels[level - 1].attempts - 1
        samples = [s for s in q.samples if fits_layout("attempt", s.text)]
        checks = _usable_verifications(q.verifications, cfg.allow_forced_verdicts)
        finals, groups = _candidates(samples, checks, cfg.distinct_wrong_answers)
        reason = _shortfall(finals, groups, needed)
        if reason is not None:
            return self._none("only_forced_verdicts" if not cfg.allow_forced_verdicts and self._buildable_with_forced(q, samples, needed) else reason)
        rng = random.Random(derive_seed(self.ctx.seed, q.problem.id, "trajectory"))
        wrong = [rng.choice(group) for group in groups]
        attempts = [*rng.sample(wrong, needed), rng.choice(finals)]
        segments: list[Segment] = []
        for i, sample in enumerate(attempts):
            answer = sample.answer or ""
            check = rng.choice(checks[answer])
            verdict: Verdict = "correct" if sample.correct else "incorrect"
            shared = dict(sample_index=sample.index, answer=answer, answer_correct=sample.correct)
            segments.append(Segment(role="attempt", text=attempt_segment(sample.text, first=i == 0), style=None, verdict=None, forced=False, **shared))
            segments.append(
                Segment(role="verification", text=verification_segment(check.text, verdict), style=check.style, verdict=verdict, forced=check.forced, **shared)
            )
        mask = [int(s.role == "verification" or s.answer_correct) for s in segments]
        self.stats.add(S2RStats.TRAJECTORIES)
        self.stats.add(S2RStats.TRAJECTORY_LEVEL[level])
        self.stats.add(S2RStats.TRAJECTORIES_WITH_FORCED_VERDICTS, any(s.forced for s in segments))
        return S2RTrajectoryRow(
            id=q.problem.id,
            source_id=q.problem.id,
            meta=self.row_meta(),
            question=q.problem.question,
            policy_prompt=policy_user_message(q.problem.question),
            gold_answer=q.problem.answer,
            accuracy=accuracy,
            num_samples=len(q.samples),
            num_correct=num_correct,
            difficulty_level=level,
            num_attempts=len(attempts),
            segments=segments,
            loss_mask=mask,
            completion="".join(s.text for s in segments),
            samples=q.samples,
            verifications=q.verifications,
        )

    def _buildable_with_forced(self, q: _Question, samples: list[Sample], needed: int) -> bool:
        """Whether the question would have a trajectory if verifications with forced verdicts were allowed."""
        checks = _usable_verifications(q.verifications, allow_forced=True)
        return _shortfall(*_candidates(samples, checks, self.config.distinct_wrong_answers), needed) is None

    def _none(self, reason: str) -> S2RTrajectoryRow | None:
        """Count why a question has no trajectory; the trajectory it gives is none."""
        self.stats.add(S2RStats.NO_TRAJECTORY[reason])
        return None

    @classmethod
    def finish(cls, run: Path) -> None:
        write_difficulty_plot(run)

    @classmethod
    def report(cls, stats: Mapping[str, float]) -> list[tuple[str, str]]:
        S = S2RStats

        def n(stat: Stat) -> str:
            return f"{stat.read(stats):g}"

        samples = S.SAMPLES.read(stats) - S.SAMPLES_FAILED.read(stats)
        questions, built, missing = S.DIFFICULTY_LEVEL.read(stats), S.TRAJECTORY_LEVEL.read(stats), S.NO_TRAJECTORY.read(stats)
        levels = sorted(questions, key=int)
        return [
            ("trajectories", f"{n(S.TRAJECTORIES)} of {n(S.QUESTIONS)} questions"),
            ("Stage-0 accuracy", f"{S.SAMPLES_CORRECT.read(stats) / samples:.1%} of {samples:g} samples" if samples else "-"),
            ("questions / trajectories per level", ", ".join(f"L{k} {questions[k]:g}/{built.get(k, 0):g}" for k in levels) or "-"),
            ("verifications valid / invalid", f"{n(S.VERIFICATIONS_VALID)} / {n(S.VERIFICATIONS_INVALID)} of {n(S.VERIFICATIONS)}"),
            ("  verdicts parsed / forced / unparsable", f"{n(S.VERDICTS_PARSED)} / {n(S.VERDICTS_FORCED)} / {n(S.VERDICTS_UNPARSABLE)}"),
            ("failed, dropped: samples / verifications / verdict slots", f"{n(S.SAMPLES_FAILED)} / {n(S.VERIFICATIONS_FAILED)} / {n(S.VERDICT_SLOTS_FAILED)}"),
            (
                "  forced verdicts as training targets",
                (
                    f"{n(S.VERIFICATIONS_FORCED_EXCLUDED)} valid verifications excluded, "
                    f"{n(S.NO_TRAJECTORY['only_forced_verdicts'])} questions lost their trajectory; "
                    f"{n(S.TRAJECTORIES_WITH_FORCED_VERDICTS)} trajectories use one (--allow-forced-verdicts)"
                ),
            ),
            ("no trajectory because", ", ".join(f"{r.replace('_', ' ')} {missing[r]:g}" for r in REASONS if missing.get(r)) or "-"),
        ]


def _usable_verifications(verifications: list[Verification], allow_forced: bool) -> dict[str, list[Verification]]:
    """The verifications a trajectory may use, by the answer they check: valid ones that fit the layout,
    and only those with a parsed verdict unless forced verdicts are allowed."""
    usable: dict[str, list[Verification]] = defaultdict(list)
    for v in verifications:
        if v.valid and (allow_forced or not v.forced) and fits_layout("verification", v.text):
            usable[v.answer].append(v)
    return usable


def _candidates(samples: list[Sample], checks: dict[str, list[Verification]], distinct_wrong: bool) -> tuple[list[Sample], list[list[Sample]]]:
    """The samples a trajectory can use: correct ones to end on, and the wrong ones in groups — one group
    per wrong answer when the wrong attempts must give different answers (one sample is drawn from each),
    else one group per sample. Only samples whose answer has a usable verification count."""
    finals = [s for s in samples if s.correct and s.answer in checks]
    wrong = [s for s in samples if not s.correct and s.answer in checks]
    if not distinct_wrong:
        return finals, [[s] for s in wrong]
    by_answer: dict[str, list[Sample]] = defaultdict(list)
    for s in wrong:
        by_answer[s.answer or ""].append(s)
    return finals, list(by_answer.values())


def _shortfall(finals: list[Sample], wrong_groups: list[list[Sample]], needed: int) -> str | None:
    """Why these candidates cannot make a trajectory with ``needed`` wrong attempts (None when they can)."""
    if not finals:
        return "no_valid_confirmation"
    return "too_few_rejected_wrong_attempts" if len(wrong_groups) < needed else None


def write_difficulty_plot(run: Path, path: Path | None = None) -> Path:
    """Draw a run's questions per difficulty level (trajectories built, in the labels) from its manifest.

    Writes ``<run>/plots/difficulty.png`` unless ``path`` says otherwise; returns the file.
    """
    from judgeforge import plots

    manifest = json.loads((run / "manifest.json").read_text())
    stats, levels = manifest["builder_stats"], parse_difficulty_table(manifest["config"]["difficulty_table"])
    labels, counts = [], []
    for n, level in enumerate(levels, 1):
        built = S2RStats.TRAJECTORY_LEVEL[n].read(stats)
        labels.append(f"L{n} acc ≥ {level.min_accuracy:g}: {built:g} traj.")
        counts.append(S2RStats.DIFFICULTY_LEVEL[n].read(stats))
    out = path or run / "plots" / "difficulty.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    xlabel = f"questions (level by accuracy over {manifest['config']['num_samples']} samples)"
    return plots.bars(labels, counts, "S2R questions per difficulty level", out, xlabel=xlabel)
