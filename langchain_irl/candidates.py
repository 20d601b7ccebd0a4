"""The candidates of one best-of-n call: rewards as they arrive, failures, usage, the choice.

Shared by the `BestOfN` chat model and the agent middleware: each adds candidates (with whatever
payload it returns in the end: a ChatGeneration, a ModelResponse) and their messages.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata

from langchain_irl.rendering import render_output
from langchain_irl.reward_model import PromptScorer, RewardModel
from langchain_irl.selection import Selection, choose
from langchain_irl.usage import estimated_usage, total_usage


class SamplingPolicy(Protocol):
    """The options of best-of-n sampling (fields of `BestOfN` and `BestOfNMiddleware`)."""

    reward_model: RewardModel
    n: int
    selection: Selection
    softmax_temperature: float
    proximity_weight: float
    threshold: float | None
    wave_size: int | None
    return_all: bool

    @property
    def rng(self) -> np.random.Generator: ...


@dataclass(frozen=True)
class Choice:
    index: int
    metadata: dict[str, Any]
    usage: UsageMetadata


@dataclass
class CandidatePool:
    policy: SamplingPolicy
    prompt: str
    payloads: list[Any] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    usages: list[UsageMetadata] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    responses: int = 0
    failed_requests: int = 0
    attempted: int = 0
    usage_counter: str = "inner model"

    def waves(self) -> Iterator[int]:
        """Candidates to request per wave: all n at once, or (with a threshold) in waves."""
        n = self.policy.n
        wave = n
        if self.policy.threshold is not None:
            wave = self.policy.wave_size or max(1, n // 4)
        while self.attempted < n:
            size = min(wave, n - self.attempted)
            self.attempted += size
            yield size

    def add(
        self, payloads: Sequence[Any], messages: Sequence[BaseMessage], scorer: PromptScorer
    ) -> None:
        """One successful response carrying one or more candidates (native n)."""
        self.responses += 1
        texts = [render_output(message) for message in messages]
        rewards, embeddings = scorer.score(texts)
        first = messages[0] if messages else None
        usage = first.usage_metadata if isinstance(first, AIMessage) else None
        if usage:  # with native n each choice carries the whole request's usage: count it once
            self.usages.append(usage)
        self.payloads += payloads
        self.texts += texts
        self.rewards += rewards.tolist()
        self.embeddings += list(embeddings)

    def add_failure(self, error: BaseException, candidates: int = 1) -> None:
        self.failed_requests += 1
        self.failures += [error] * candidates

    def reached_threshold(self) -> bool:
        threshold = self.policy.threshold
        if threshold is None or not self.rewards:
            return False
        return bool(self.policy.reward_model.percentile(max(self.rewards)) >= threshold)

    def select(self) -> Choice:
        """The chosen candidate; raises the first failure when every candidate failed."""
        if not self.payloads:
            raise self.failures[0]  # every candidate failed: the caller gets the real error
        unique = self._deduplicated()
        policy = self.policy
        chosen = unique[
            choose(
                np.array([self.rewards[i] for i in unique], dtype=np.float64),
                np.stack([self.embeddings[i] for i in unique]),
                policy.selection,
                temperature=policy.softmax_temperature,
                proximity_weight=policy.proximity_weight,
                rng=policy.rng,
            )
        ]
        usage = self._usage()
        return Choice(chosen, self._metadata(chosen, len(self.payloads) - len(unique)), usage)

    def _deduplicated(self) -> list[int]:
        first: dict[str, int] = {}
        for index, text in enumerate(self.texts):
            first.setdefault(text, index)
        if len(first) < len(self.texts):
            warnings.warn(
                f"best-of-n: {len(self.texts) - len(first)} of {len(self.texts)} candidates were "
                "identical (temperature 0?); they were scored once",
                stacklevel=4,
            )
        return sorted(first.values())

    def _metadata(self, chosen: int, duplicates: int) -> dict[str, Any]:
        reward_model = self.policy.reward_model
        metadata: dict[str, Any] = {
            "reward_model": reward_model.name,
            "selection": self.policy.selection,
            "rewards": [round(r, 6) for r in self.rewards],
            "chosen_index": chosen,
            "chosen_reward": self.rewards[chosen],
            "n_requested": self.policy.n,
            "n_attempted": self.attempted,
            "n_succeeded": len(self.payloads),
            "n_duplicates": duplicates,
            "requests": self.responses + self.failed_requests,
            "failures": [f"{type(e).__name__}: {e}" for e in self.failures],
            "usage_counted_by": self.usage_counter,
        }
        if reward_model.card.calibration is not None:
            metadata["chosen_percentile"] = reward_model.percentile(self.rewards[chosen])
        if self.policy.return_all:
            metadata["candidates"] = list(self.texts)
        return metadata

    def _usage(self) -> UsageMetadata:
        """What every successful request cost: reported usage, else counted locally."""
        if len(self.usages) == self.responses:
            usage = total_usage(self.usages)
            if usage is not None:
                return usage
        usage, counter = estimated_usage(
            self.prompt, self.texts, self.responses, self.policy.reward_model.encoder.count_tokens
        )
        self.usage_counter = counter
        return usage
