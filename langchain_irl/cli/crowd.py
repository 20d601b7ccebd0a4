"""`CrowdChatModel`: an offline base policy made of real caption-contest entries. Not an LLM.

Asked for a caption for a cartoon description it knows, it answers with a random real entry of
that contest (from the bundled sample of its top-, middle- and bottom-rated 150 entries). The crowd
of entrants is a real base policy: this is what lets the demo run offline and still report what
humans thought of every pick.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from langchain_irl.data.converters import Contest
from langchain_irl.reward_model.rendering import last_user_text


class CrowdChatModel(BaseChatModel):
    """Answers a cartoon description (the last human message) with real entries of its contest."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    contests: list[Contest] = Field(exclude=True)
    n: int = 1
    """Entries per call, like ChatOpenAI's `n` (BestOfN samples natively with it)."""
    seed: int | None = None

    _by_description: dict[str, Contest] = PrivateAttr()
    _rng: np.random.Generator = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        self._by_description = {c.description.strip(): c for c in self.contests}
        self._rng = np.random.default_rng(self.seed)

    @property
    def _llm_type(self) -> str:
        return "caption-contest-crowd"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        description = last_user_text(messages).strip()
        contest = self._by_description.get(description)
        if contest is None:
            raise ValueError(
                f"the crowd only captions the {len(self.contests)} bundled cartoons; "
                f"no contest is described as {description[:80]!r}"
            )
        picks = self._rng.choice(len(contest.captions), size=self.n, replace=False)
        return ChatResult(
            generations=[
                ChatGeneration(
                    message=AIMessage(
                        contest.captions[i],
                        response_metadata={"contest": contest.number, "model_name": "crowd"},
                    )
                )
                for i in picks
            ]
        )
