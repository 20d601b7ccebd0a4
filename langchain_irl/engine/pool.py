"""The candidates of one best-of-n call: the wave plan, rewards as they arrive, failures, the
choice.

Adapters hand it what each request returned: payloads (a ChatGeneration, a ModelResponse: whatever
the adapter returns in the end) with the message of each, or the error. Identical texts are scored
once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata

from langchain_irl.engine.errors import is_retryable
from langchain_irl.engine.options import BestOfNOptions
from langchain_irl.engine.selection import choose
from langchain_irl.engine.usage import TokenCounter, counted_usage, total_usage
from langchain_irl.reward_model.model import PromptScorer
from langchain_irl.reward_model.rendering import PromptInput, render_output

# The longest pause a provider's Retry-After may impose before a retry wave.
MAX_RETRY_AFTER_SECONDS = 30.0


@dataclass(frozen=True)
class Choice:
    """The chosen candidate, and what to attach to its message."""

    index: int
    metadata: dict[str, Any]
    usage: UsageMetadata | None

    def annotate(self, message: AIMessage) -> AIMessage:
        """The winner's own message with the `best_of_n` metadata and the whole call's usage.
        The winner's own `token_usage` (the provider's count for its request alone) is dropped:
        `usage_metadata` is the one count, of every candidate."""
        metadata = {k: v for k, v in message.response_metadata.items() if k != "token_usage"}
        return message.model_copy(
            update={
                "response_metadata": {**metadata, "best_of_n": self.metadata},
                "usage_metadata": self.usage,
            }
        )


@dataclass(frozen=True)
class _Scored:
    """A distinct text's reward, embedding and the ensemble members' spread on it."""

    reward: float
    embedding: np.ndarray
    spread: float


@dataclass
class CandidatePool:
    options: BestOfNOptions
    conversation: list[BaseMessage]
    prompt: PromptInput | None = None  # what the reward reads, if not the conversation
    payloads: list[Any] = field(default_factory=list)
    messages: list[BaseMessage] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    usages: list[UsageMetadata] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    responses: int = 0
    failed_requests: int = 0
    attempted: int = 0
    retry_waves: int = 0
    fatal: BaseException | None = None  # a failure no retry can mend: the call raises it
    _scorer: PromptScorer | None = field(default=None, init=False)  # see `use_scorer`
    _scored: dict[str, _Scored] = field(default_factory=dict)
    _wave_failures: list[BaseException] = field(default_factory=list)

    def make_scorer(self) -> PromptScorer:
        """Encode the prompt: the conversation, or `prompt` (a string is read verbatim)."""
        prompt = self.conversation if self.prompt is None else self.prompt
        return self.options.reward_model.scorer(prompt)

    def use_scorer(self, scorer: PromptScorer) -> None:
        """Score candidates with `scorer` (from `make_scorer`, made while the first requests
        run); `add` needs it."""
        self._scorer = scorer

    @property
    def has_scorer(self) -> bool:
        return self._scorer is not None

    def ask_all_at_once(self) -> None:
        """Every candidate is asked for at once, outside the wave plan, and none again
        (speculative rejection's streams): `waves` is not used."""
        self.attempted = self.options.n

    def waves(self) -> Iterator[tuple[int, float]]:
        """(candidates, seconds to wait first) per wave: the planned waves (all n at once, or with
        a threshold a share at a time), then retry waves for what failed, within
        `candidate_retries`, each after the longest Retry-After the last wave's failures carried."""
        options = self.options
        while not self.reached_threshold() and self.fatal is None:
            missing = options.n - len(self.payloads)
            if missing <= 0:
                return
            wait = 0.0
            if self.attempted < options.n:  # a planned wave
                size = min(options.wave(), options.n - self.attempted)
            elif self.retry_waves < options.candidate_retries:  # ask again for what failed
                self.retry_waves += 1
                size = missing
                wait = max(map(_retry_after, self._wave_failures), default=0.0)
            else:
                return
            self._wave_failures = []
            self.attempted += size
            yield size, min(wait, MAX_RETRY_AFTER_SECONDS)

    def add(self, payloads: Sequence[Any], messages: Sequence[BaseMessage]) -> None:
        """One successful response carrying one or more candidates (native n)."""
        self.responses += 1
        texts = [render_output(message) for message in messages]
        new = list(dict.fromkeys(t for t in texts if t not in self._scored))
        if new:
            assert self._scorer is not None, "call use_scorer before adding candidates"
            scored = self._scorer.score_candidates(new)
            self._scored.update(
                (text, _Scored(float(reward), embedding, float(spread)))
                for text, reward, embedding, spread in zip(
                    new, scored.rewards, scored.embeddings, scored.spread, strict=True
                )
            )
        first = messages[0] if messages else None
        usage = first.usage_metadata if isinstance(first, AIMessage) else None
        if usage:  # with native n each choice carries the whole request's usage: count it once
            self.usages.append(usage)
        self.payloads += payloads
        self.messages += messages
        self.texts += texts
        self.rewards += [self._scored[text].reward for text in texts]

    def add_failure(self, error: BaseException, candidates: int = 1) -> None:
        """A failed request; one that cannot succeed when asked again (a 400, a 401, a
        `TypeError`: see `errors.is_retryable`) becomes the pool's `fatal` error."""
        self.failed_requests += 1
        self.failures += [error] * candidates
        self._wave_failures.append(error)
        if self.fatal is None and not is_retryable(error):
            self.fatal = error

    def reached_threshold(self) -> bool:
        threshold = self.options.threshold
        if threshold is None or not self.rewards:
            return False
        return bool(self.options.reward_model.percentile(max(self.rewards)) >= threshold)

    def select(self, count_tokens: TokenCounter | None = None) -> Choice:
        """The chosen candidate; raises the first failure when every candidate failed.

        `count_tokens` counts usage when a response reported none (the inner model's tokenizer).
        """
        if not self.payloads:  # every candidate failed: the caller gets the real error
            raise self.failures[0] if self.failures else RuntimeError("best-of-n got no candidate")
        # The choice is a function of the set of texts, not of the order they arrived in.
        unique = sorted(set(self.texts))
        first_index = {text: self.texts.index(text) for text in unique}
        duplicates = len(self.texts) - len(unique)
        if duplicates:
            self.options.warn_once(
                "duplicates",
                f"best-of-n: {duplicates} of {len(self.texts)} candidates were identical "
                "(temperature 0?); each text was scored once. This warning is shown once.",
            )
        options = self.options
        scored = [self._scored[t] for t in unique]
        picked = choose(
            np.array([s.reward for s in scored], dtype=np.float64),
            np.stack([s.embedding for s in scored]),
            options.selection,
            temperature=options.softmax_temperature,
            proximity_weight=options.proximity_weight,
            risk_weight=options.risk_weight,
            spread=np.array([s.spread for s in scored]),
            rng=options.rng(unique),
        )
        chosen = first_index[unique[picked]]
        usage, counter = self._usage(count_tokens)
        return Choice(chosen, self._metadata(chosen, duplicates, counter), usage)

    def _metadata(self, chosen: int, duplicates: int, usage_counter: str | None) -> dict[str, Any]:
        reward_model = self.options.reward_model
        metadata: dict[str, Any] = {
            "reward_model": reward_model.name,
            "selection": self.options.selection,
            "rewards": [round(r, 6) for r in self.rewards],
            "chosen_index": chosen,
            "chosen_reward": self.rewards[chosen],
            "n_requested": self.options.n,
            "n_attempted": self.attempted,
            "n_succeeded": len(self.payloads),
            "n_duplicates": duplicates,
            "requests": self.responses + self.failed_requests,
            "failed_requests": self.failed_requests,
            "retry_waves": self.retry_waves,
            "failures": [f"{type(e).__name__}: {e}" for e in self.failures],
            "usage_counted_by": usage_counter,
        }
        if reward_model.card.head.members > 1:  # how much the ensemble's members disagreed
            metadata["spreads"] = [round(self._scored[t].spread, 6) for t in self.texts]
        if reward_model.card.calibration is not None:
            metadata["chosen_percentile"] = reward_model.percentile(self.rewards[chosen])
        if self.options.return_all:
            metadata["candidates"] = list(self.texts)
        return metadata

    def _usage(self, count_tokens: TokenCounter | None) -> tuple[UsageMetadata | None, str | None]:
        """What every successful request cost, and who counted it: the provider's reports, else
        the inner model's own tokenizer, else unknown (None)."""
        if len(self.usages) == self.responses:
            return total_usage(self.usages), "provider"
        if count_tokens is None:
            return None, None
        usage = counted_usage(self.conversation, self.messages, self.responses, count_tokens)
        return usage, None if usage is None else "inner model tokenizer"


def _retry_after(error: BaseException) -> float:
    """The Retry-After (seconds) of a provider's HTTP error, 0 if it carries none."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        return max(0.0, float(headers.get("retry-after", 0) or 0))
    except (TypeError, ValueError):
        return 0.0
