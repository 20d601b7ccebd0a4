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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from langchain_irl.data.collect import Sampler
from langchain_irl.data.formats import InputValue, input_messages, parse_input_cell
from langchain_irl.engine import BestOfNOptions, CandidatePool, ConcurrencyLimit, arun
from langchain_irl.engine.runner import on_engine_loop
from langchain_irl.engine.selection import Selection
from langchain_irl.reward_model.model import RewardModel

logger = logging.getLogger(__name__)


class BestOfNRecords:
    """For each prompt of a batch: best-of-n through the engine, keeping the best and the worst.

    The same path as every best-of-n call (`engine.arun`): n samples in one request per prompt,
    identical texts scored once, retry waves for failures that can succeed, a failure that cannot
    (a 400, a 401) ends that prompt at once. Returns the batch's rows with `completion` (the
    sample the `selection` rule picks: the best by default; `conservative` weighs the reward's
    ensemble spread), `rejected` (the worst distinct one, empty when all n were the same),
    `chosen_reward`, `rejected_reward`, `margin` and `error` (why a prompt got no samples);
    `sft_record` and `pair_record` turn a row into TRL's formats.
    """

    def __init__(
        self,
        sampler_factory: Callable[[], Sampler],
        model: str | Path,
        n: int,
        *,
        concurrency: int = 8,
        input_column: str = "input",
        selection: Selection = "argmax",
        risk_weight: float = 1.0,
    ) -> None:
        if n < 2:
            raise ValueError(f"best-of-n needs n >= 2 samples to compare, got {n}")
        self.sampler = sampler_factory()
        self.options = BestOfNOptions(
            reward_model=RewardModel.load(model),
            n=n,
            max_concurrency=concurrency,
            selection=selection,
            risk_weight=risk_weight,
        )
        self.input_column = input_column
        self._limit = ConcurrencyLimit()  # `concurrency` requests in flight, across batches

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
        values = [parse_input_cell(v) for v in batch[self.input_column]]
        outcomes = on_engine_loop(self._best_of_n(values))
        rows = [_row(outcome) for outcome in outcomes]
        return {
            self.input_column: [input_messages(v) for v in values],
            **{key: [row[key] for row in rows] for key in _COLUMNS},
        }

    async def _best_of_n(self, values: list[InputValue]) -> list[Outcome]:
        async def one(value: InputValue) -> Outcome:
            sampler = _TextSampler(self.sampler, value)
            try:
                pool, choice = await arun(
                    self.options, sampler, [], self._limit, prompt=input_messages(value)
                )
            except Exception as error:  # the prompt is left out; the others go on
                logger.warning("a prompt got no samples (it is left out): %s", error)
                return error
            return pool, choice.index

        return list(await asyncio.gather(*(one(v) for v in values)))


# A prompt's candidates and the index the selection rule chose, or why it has none.
Outcome = tuple[CandidatePool, int] | Exception
_COLUMNS = ("completion", "rejected", "chosen_reward", "rejected_reward", "margin", "error")


def _row(outcome: Outcome) -> dict[str, Any]:
    """The best and the worst distinct sample of a prompt, or why it has none."""
    if isinstance(outcome, Exception):
        return {
            "completion": "",
            "rejected": "",
            "chosen_reward": float("nan"),
            "rejected_reward": float("nan"),
            "margin": float("nan"),
            "error": f"{type(outcome).__name__}: {outcome}",
        }
    pool, chosen = outcome
    return best_of_n_row(pool.texts, pool.rewards, chosen)


def best_of_n_row(texts: Sequence[str], rewards: Sequence[float], chosen: int) -> dict[str, Any]:
    """The columns of a prompt's row: the chosen sample, and the worst sample whose text differs
    from it (the first of equal rewards; empty when every sample is the chosen text)."""
    distinct = [i for i, text in enumerate(texts) if text != texts[chosen]]
    worst = min(distinct, key=lambda i: rewards[i]) if distinct else None
    return {
        "completion": texts[chosen],
        "rejected": "" if worst is None else texts[worst],
        "chosen_reward": rewards[chosen],
        "rejected_reward": float("nan") if worst is None else rewards[worst],
        "margin": float("nan") if worst is None else rewards[chosen] - rewards[worst],
        "error": "",
    }


@dataclass
class _TextSampler:
    """The engine's sampler over a batch sampler: one request returns `count` texts."""

    sample_texts: Sampler
    value: InputValue
    native_n = True
    control_flow: tuple[type[BaseException], ...] = ()
    token_counter = None

    def sample(self, count: int) -> tuple[list[BaseMessage], list[BaseMessage]]:
        raise NotImplementedError("batch best-of-n runs on the engine's event loop")

    async def asample(self, count: int) -> tuple[list[BaseMessage], list[BaseMessage]]:
        messages: list[BaseMessage] = [
            AIMessage(text) for text in await self.sample_texts(self.value, count)
        ]
        return messages, messages


def sft_record(row: Mapping[str, Any], input_column: str = "input") -> dict[str, Any] | None:
    """TRL prompt-completion row of a `BestOfNRecords` row (None if it has no samples)."""
    if row.get("error") or not row["completion"]:
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
    """TRL preference row (best as chosen, worst as rejected) when the two differ and the reward
    margin is above 0 and at least `margin`; None otherwise."""
    if not row["rejected"] or row["rejected"] == row["completion"]:
        return None
    gap = float(row["margin"])
    if not (gap > 0 and gap >= margin):
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
