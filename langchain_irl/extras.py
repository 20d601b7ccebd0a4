"""Optional dependencies: one clear line that says what to install when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

# What each extra is for, as the error message says it.
EXTRAS = {
    "cli": "the command line's plots and model endpoints (matplotlib, langchain-openai, langchain)",
    "agents": "agent middleware (langchain)",
    "train": "training (torch, transformers, onnx); install the CPU build of torch first, see "
    "the README",
    "policy": "policy training (trl, peft, accelerate, gguf) beside [train]; install the CPU "
    "build of torch first, see the README",
    "ray": "Ray Data jobs (ray[data])",
    "dspy": "the reward as a DSPy metric (dspy)",
}


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message names the extra that brings it."""

    def __init__(self, purpose: str, extra: str) -> None:
        super().__init__(
            f"{purpose} needs the [{extra}] extra ({EXTRAS[extra]}): "
            f"pip install 'langchain-irl[{extra}]'"
        )


def require(module: str, purpose: str, extra: str) -> ModuleType:
    """Import `module`, or raise `MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(purpose, extra) from exc
