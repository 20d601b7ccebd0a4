"""Retrievers: `RewardRetriever`, demonstrations ranked by relevance and learned reward."""

from langchain_irl.retrievers.reward import RewardRetriever

__all__ = ["RewardRetriever"]
