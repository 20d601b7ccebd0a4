"""Agent middleware for `langchain.agents.create_agent` (needs the `[agents]` extra).

- `BestOfNMiddleware`: every model call sampled n times, the best response kept.
- `FewShotMiddleware`: the demonstrations most worth showing, added to each model call.
"""

from langchain_irl.middleware.best_of_n import BestOfNMiddleware
from langchain_irl.middleware.few_shot import FewShotMiddleware

__all__ = ["BestOfNMiddleware", "FewShotMiddleware"]
