"""langchain-irl: learn a reward from demonstrations, use it inside LangChain."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_irl.chat_models.best_of_n import BestOfN
    from langchain_irl.data.formats import DataFileError, Example, Pair, read_examples, read_pairs
    from langchain_irl.engine.options import SpeculativeRejection
    from langchain_irl.example_selectors.reward import RewardExampleSelector
    from langchain_irl.retrievers.reward import RewardRetriever
    from langchain_irl.reward_model.card import ModelCard, ModelFolderError
    from langchain_irl.reward_model.model import RewardModel

# Imported on first use: a process that only scores does not pay for the chat-model machinery.
_EXPORTS = {
    "BestOfN": "langchain_irl.chat_models.best_of_n",
    "DataFileError": "langchain_irl.data.formats",
    "Example": "langchain_irl.data.formats",
    "ModelCard": "langchain_irl.reward_model.card",
    "ModelFolderError": "langchain_irl.reward_model.card",
    "Pair": "langchain_irl.data.formats",
    "RewardExampleSelector": "langchain_irl.example_selectors.reward",
    "RewardModel": "langchain_irl.reward_model.model",
    "RewardRetriever": "langchain_irl.retrievers.reward",
    "SpeculativeRejection": "langchain_irl.engine.options",
    "read_examples": "langchain_irl.data.formats",
    "read_pairs": "langchain_irl.data.formats",
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
    "SpeculativeRejection",
    "read_examples",
    "read_pairs",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'langchain_irl' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
