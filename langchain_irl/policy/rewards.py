"""The learned reward as a TRL reward function, for online trainers (`GRPOTrainer`, `RLOOTrainer`).

TRL calls each entry of `reward_funcs` as `f(prompts=..., completions=..., completion_ids=...,
**dataset_columns_and_trainer_state)` and wants one float per completion. Prompts and completions
come in TRL's standard form (strings) or its conversational form (lists of role/content messages;
a completion is the assistant's reply). Either form works here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_irl.reward_model.model import RewardModel


class TRLReward:
    """A `RewardModel` as one of TRL's `reward_funcs` (GRPO, RLOO): one reward per completion.

    ```python
    trainer = GRPOTrainer(model=..., reward_funcs=TRLReward("caption-humor"), ...)
    ```

    A conversational prompt is rendered by the reward's card (`last_user` by default: the last
    user message; system instructions are not scored), a string prompt is used verbatim, as
    `RewardModel.score` does. The completions of one prompt (TRL's `num_generations` group) are
    scored together, so the prompt is encoded once per group. Rewards do not depend on the batch:
    each text is encoded on its own. TRL logs the rewards under the reward model's name.
    """

    def __init__(self, reward_model: RewardModel | str | Path) -> None:
        self.reward_model = RewardModel.of(reward_model)
        self.__name__ = self.reward_model.name  # what TRL's logs call this reward

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        groups: dict[str, list[int]] = {}
        for index, prompt in enumerate(prompts):
            groups.setdefault(self.reward_model.render(_messages(prompt)), []).append(index)
        rewards = [0.0] * len(completions)
        for rendered, indices in groups.items():
            texts = [completion_text(completions[i]) for i in indices]
            for index, reward in zip(
                indices, self.reward_model.score(rendered, texts), strict=True
            ):
                rewards[index] = float(reward)
        return rewards


def completion_text(completion: Any) -> str:
    """A completion's text: the string, or the content of the last message of a conversational
    completion (text parts joined when the content is a list of parts)."""
    if isinstance(completion, str):
        return completion
    if not completion:
        return ""
    content = completion[-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _messages(prompt: Any) -> Any:
    """A conversational prompt as role/content messages with text content, as rendering takes
    them; a string as it is."""
    if isinstance(prompt, str):
        return prompt
    return [{"role": m["role"], "content": completion_text([m])} for m in prompt]
