"""Best-of-n as training data: the best of n samples for SFT, best against worst for DPO.

Rejection-sampling fine-tuning trains the model on its own best-of-n picks, after which it no
longer needs n calls; DPO trains it on (chosen, rejected) pairs. The records are in the formats
TRL reads: `SFTTrainer`'s prompt-completion rows (`prompt`, `completion`) and `DPOTrainer`'s
preference rows (`prompt`, `chosen`, `rejected`), with string prompts, or the conversational form
(lists of `{"role", "content"}` messages) when the input is a conversation. Rewards ride along.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from langchain_irl.data.collect import Sampler
from langchain_irl.data.formats import InputValue, input_messages, parse_input_cell
from langchain_irl.reward_model.model import RewardModel

logger = logging.getLogger(__name__)


class BestOfNRecords:
    """For each prompt of a batch: sample n, score them, keep the best (and the worst).

    Returns the batch's rows with `completion` (the best sample), `rejected` (the worst),
    `chosen_reward`, `rejected_reward` and `margin`; `sft_record` and `pair_record` turn a row
    into TRL's formats. Prompts whose samples all failed get empty strings and NaN rewards (and
    are left out of both files).
    """

    def __init__(
        self,
        sampler_factory: Callable[[], Sampler],
        model: str | Path,
        n: int,
        *,
        concurrency: int = 8,
        input_column: str = "input",
    ) -> None:
        if n < 2:
            raise ValueError(f"best-of-n needs n >= 2 samples to compare, got {n}")
        self.sampler = sampler_factory()
        self.model = RewardModel.load(model)
        self.n, self.concurrency, self.input_column = n, concurrency, input_column
        self._loop = asyncio.new_event_loop()

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
        values = [parse_input_cell(v) for v in batch[self.input_column]]
        samples = self._loop.run_until_complete(self._sample(values))
        best, worst = [""] * len(values), [""] * len(values)
        chosen, rejected = np.full(len(values), np.nan), np.full(len(values), np.nan)
        for row, (value, texts) in enumerate(zip(values, samples, strict=True)):
            if texts:
                rewards = self.model.score(input_messages(value), texts)
                top, bottom = int(np.argmax(rewards)), int(np.argmin(rewards))
                best[row], worst[row] = texts[top], texts[bottom]
                chosen[row], rejected[row] = rewards[top], rewards[bottom]
        return {
            self.input_column: [input_messages(v) for v in values],
            "completion": best,
            "rejected": worst,
            "chosen_reward": chosen,
            "rejected_reward": rejected,
            "margin": chosen - rejected,
        }

    async def _sample(self, values: list[InputValue]) -> list[list[str]]:
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(value: InputValue) -> list[str]:
            async with semaphore:
                try:
                    return list(await self.sampler(value, self.n))
                except Exception as error:  # the prompt is skipped; the others go on
                    logger.warning("a prompt got no samples (it is left out): %s", error)
                    return []

        return list(await asyncio.gather(*(one(v) for v in values)))


def sft_record(row: Mapping[str, Any], input_column: str = "input") -> dict[str, Any] | None:
    """TRL prompt-completion row of a `BestOfNRecords` row (None if it has no samples)."""
    if not row["completion"]:
        return None
    prompt, reply = _trl_form(row[input_column])
    return {
        "prompt": prompt,
        "completion": reply(row["completion"]),
        "reward": float(row["chosen_reward"]),
    }


def pair_record(
    row: Mapping[str, Any], margin: float, input_column: str = "input"
) -> dict[str, Any] | None:
    """TRL preference row (best as chosen, worst as rejected) if its reward margin is at least
    `margin`; None otherwise."""
    if not row["completion"] or not float(row["margin"]) >= margin:
        return None
    prompt, reply = _trl_form(row[input_column])
    return {
        "prompt": prompt,
        "chosen": reply(row["completion"]),
        "rejected": reply(row["rejected"]),
        "chosen_reward": float(row["chosen_reward"]),
        "rejected_reward": float(row["rejected_reward"]),
    }


def _trl_form(prompt: Any) -> tuple[Any, Callable[[str], Any]]:
    """TRL's standard form (a string prompt, string replies) or its conversational form (lists
    of role/content messages), as the input is."""
    if isinstance(prompt, str):
        return prompt, lambda text: text
    messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
    return messages, lambda text: [{"role": "assistant", "content": text}]
