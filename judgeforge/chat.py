"""Render a chat plus an assistant prefix into the exact text the model sees.

Step-wise search continues an assistant turn that already holds the previous steps. Every engine that
works on raw text (transformers, vLLM, the completions endpoint of a server) and every TRL view that
must reproduce the generation-time context (the step-wise DPO prompt) renders through this one
function, so training data and generation can never drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def render_prompt(tokenizer: Any, messages: Sequence[dict[str, str]], prefix: str = "") -> str:
    """The chat template applied with a generation prompt, followed verbatim by ``prefix``."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return str(text) + prefix
