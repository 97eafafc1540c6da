"""A builder for the Ray executor's failure test: the real step-prefs builder, failing on one problem as bad input would.

It lives in an importable module (not in the test) because Ray's workers import the builder class by name.
"""

from __future__ import annotations

import os
from pathlib import Path

from judgeforge.builders.step_prefs import StepPrefsBuilder, StepPrefsConfig
from judgeforge.errors import UserError
from judgeforge.schemas.base import BaseRow
from judgeforge.sources import Problem


class FailingConfig(StepPrefsConfig):
    fail_on: str
    attempts_dir: str


class FailingStepPrefs(StepPrefsBuilder):
    """Step-prefs that raises a :class:`UserError` for the problem ``fail_on``, leaving a file per attempt in ``attempts_dir``."""

    Config = FailingConfig  # type: ignore[assignment]
    config: FailingConfig  # type: ignore[assignment]

    def build(self, problems: list[Problem]) -> list[BaseRow]:
        if any(p.id == self.config.fail_on for p in problems):
            Path(self.config.attempts_dir, f"attempt-{os.getpid()}-{len(os.listdir(self.config.attempts_dir))}").touch()
            raise UserError(f"bad input {self.config.fail_on}")
        return super().build(problems)
