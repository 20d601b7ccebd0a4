"""`FewShotMiddleware`: the demonstrations most worth showing, added to each agent model call.

The k demonstrations the reward-aware selector picks for the latest user input go into the system
message of the call; the agent's stored conversation is not touched. Needs the `[agents]` extra.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from langchain.agents.middleware.types import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import SystemMessage

from langchain_irl.example_selectors.reward import RewardExampleSelector
from langchain_irl.reward_model.rendering import last_user_text

Handler = Callable[[ModelRequest], ModelResponse]
AsyncHandler = Callable[[ModelRequest], Awaitable[ModelResponse]]


class FewShotMiddleware(AgentMiddleware):
    """Show the model the k demonstrations most worth showing for the latest user input."""

    def __init__(
        self,
        selector: RewardExampleSelector,
        k: int = 3,
        *,
        header: str = "Examples of good answers:",
        example_template: str = "Input: {input}\nOutput: {output}",
    ) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.selector = selector
        self.k = k
        self.header = header
        self.example_template = example_template

    def wrap_model_call(self, request: ModelRequest, handler: Handler) -> ModelResponse:
        return handler(self._with_examples(request))

    async def awrap_model_call(self, request: ModelRequest, handler: AsyncHandler) -> ModelResponse:
        return await handler(await asyncio.to_thread(self._with_examples, request))

    def _with_examples(self, request: ModelRequest) -> ModelRequest:
        query = last_user_text(request.messages)
        if not query:
            return request
        selector = self.selector
        blocks = [
            self.example_template.format(
                input=selector.input_text(example), output=example[selector.output_key]
            )
            for example, _ in selector.pick(query, self.k)
        ]
        examples_text = self.header + "\n\n" + "\n\n".join(blocks)
        current = request.system_message.text if request.system_message else ""
        system = f"{current}\n\n{examples_text}" if current else examples_text
        # override() returns a new request: the agent's stored messages are not touched
        return request.override(system_message=SystemMessage(system))
