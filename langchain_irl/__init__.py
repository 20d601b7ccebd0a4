"""langchain-irl: learn a reward from demonstrations, use it inside LangChain."""

from langchain_irl.best_of_n import BestOfN
from langchain_irl.card import ModelCard, ModelFolderError
from langchain_irl.data import DataFileError, Example, Pair, read_examples, read_pairs
from langchain_irl.few_shot import RewardExampleSelector, RewardRetriever
from langchain_irl.reward_model import RewardModel

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
