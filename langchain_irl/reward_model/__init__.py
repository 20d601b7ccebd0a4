"""The runtime reward model: a verified folder (card, ONNX graphs, tokenizer) scored with
onnxruntime, numpy and a tokenizer. No torch."""

from langchain_irl.reward_model.card import ModelCard, ModelFolderError
from langchain_irl.reward_model.model import PromptScorer, RewardModel

__all__ = ["ModelCard", "ModelFolderError", "PromptScorer", "RewardModel"]
