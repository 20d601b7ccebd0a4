"""Example selectors: `RewardExampleSelector`, few-shot demonstrations chosen by learned reward."""

from langchain_irl.example_selectors.reward import RewardExampleSelector

__all__ = ["RewardExampleSelector"]
