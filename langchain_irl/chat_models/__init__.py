"""Chat models: `BestOfN`, best-of-n sampling from any chat model ranked by a learned reward."""

from langchain_irl.chat_models.best_of_n import BestOfN

__all__ = ["BestOfN"]
