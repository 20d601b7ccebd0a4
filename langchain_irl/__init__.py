"""langchain-irl: learn a reward from demonstrations, use it inside LangChain."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_irl.best_of_n import BestOfN
    from langchain_irl.card import ModelCard, ModelFolderError
    from langchain_irl.data import DataFileError, Example, Pair, read_examples, read_pairs
    from langchain_irl.few_shot import RewardExampleSelector, RewardRetriever
    from langchain_irl.reward_model import RewardModel

# Imported on first use: a process that only scores does not pay for the chat-model machinery.
_EXPORTS = {
    "BestOfN": "langchain_irl.best_of_n",
    "DataFileError": "langchain_irl.data",
    "Example": "langchain_irl.data",
    "ModelCard": "langchain_irl.card",
    "ModelFolderError": "langchain_irl.card",
    "Pair": "langchain_irl.data",
    "RewardExampleSelector": "langchain_irl.few_shot",
    "RewardModel": "langchain_irl.reward_model",
    "RewardRetriever": "langchain_irl.few_shot",
    "read_examples": "langchain_irl.data",
    "read_pairs": "langchain_irl.data",
}
__all__ = [
    "BestOfN",
    "DataFileError",
    "Example",
    "ModelCard",
    "ModelFolderError",
    "Pair",
    "RewardExampleSelector",
    "RewardModel",
    "RewardRetriever",
    "read_examples",
    "read_pairs",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'langchain_irl' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
