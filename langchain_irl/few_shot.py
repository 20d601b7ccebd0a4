"""Few-shot demonstrations chosen by the learned reward: an example selector and a retriever.

LangChain's own selectors rank demonstrations by similarity, length or n-gram overlap; none knows
which demonstrations are *good*. Here every demonstration gets, for a new input x,

    score = relevance_weight * z(cos(e_x, e_input)) + reward_weight * z(r(x, output))

where z standardises each term over the demonstrations (so the weights compare like with like),
relevance is the reward model's encoder similarity of the inputs, and r is the learned reward of
the demonstration's output *for the new input*. With `diversity` > 0, the k picks are made by
maximal marginal relevance: each next pick trades its score against its similarity (the mean of the
input and output cosines) to the picks so far. Demonstration embeddings are computed once (and on
`add_example`), not per query.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.example_selectors import BaseExampleSelector
from langchain_core.retrievers import BaseRetriever
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from langchain_irl.data import read_examples
from langchain_irl.reward_model import RewardModel


@dataclass(frozen=True)
class RankedDemo:
    index: int
    relevance: float
    reward: float
    score: float


@dataclass(frozen=True)
class DemoIndex:
    """Demonstrations embedded once: inputs (for relevance), outputs (for the reward)."""

    inputs: np.ndarray  # (n, dim) input embeddings
    outputs: np.ndarray  # (n, dim) output embeddings
    tokens: np.ndarray  # (n,) output token counts
    # With a linear head, r(x, y_i) = base[i] + interaction[i] . e_x: one matrix product a query.
    base: np.ndarray | None
    interaction: np.ndarray | None

    @property
    def size(self) -> int:
        return len(self.inputs)

    @classmethod
    def build(cls, model: RewardModel, inputs: list[str], outputs: list[str]) -> DemoIndex:
        dim = model.card.encoder.dim
        input_embeddings = model.embed(inputs) if inputs else np.zeros((0, dim), np.float32)
        if outputs:
            output_embeddings, tokens = model.encoder.encode(outputs)
        else:
            output_embeddings, tokens = np.zeros((0, dim), np.float32), np.zeros(0, np.int64)
        weights = model.interaction_weights
        base = interaction = None
        if weights is not None:
            zero_prompt = np.zeros((1, dim), np.float32)
            base = model.score_embedded(zero_prompt, output_embeddings, tokens)
            interaction = output_embeddings * weights
        return cls(input_embeddings, output_embeddings, tokens, base, interaction)

    def extended(self, other: DemoIndex) -> DemoIndex:
        def joined(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else np.concatenate([a, b])

        return DemoIndex(
            np.concatenate([self.inputs, other.inputs]),
            np.concatenate([self.outputs, other.outputs]),
            np.concatenate([self.tokens, other.tokens]),
            joined(self.base, other.base),
            joined(self.interaction, other.interaction),
        )

    def relevance_and_reward(self, model: RewardModel, query: str) -> tuple[np.ndarray, np.ndarray]:
        query_embedding = model.embed([query])
        # einsum, not BLAS: BLAS threads would fight onnxruntime's still-spinning ones (2x slower)
        relevance = np.einsum("nd,d->n", self.inputs, query_embedding[0])
        if self.base is not None and self.interaction is not None:
            reward = self.base + np.einsum("nd,d->n", self.interaction, query_embedding[0])
        else:
            reward = model.score_embedded(query_embedding, self.outputs, self.tokens)
        return relevance, reward


class RewardExampleSelector(BaseExampleSelector, BaseModel):
    """Select the k demonstrations most worth showing for an input: relevant *and* good."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    examples: list[dict[str, Any]]
    """Demonstrations as dicts; `input_key` and `output_key` name their two texts."""
    reward_model: RewardModel = Field(exclude=True)
    k: int = Field(default=4, ge=1)
    input_key: str = "input"
    output_key: str = "output"
    relevance_weight: float = 1.0
    reward_weight: float = 1.0
    diversity: float = Field(default=0.0, ge=0.0, le=1.0)
    """0: rank by score alone; towards 1: prefer demonstrations unlike those already picked."""

    _index: DemoIndex = PrivateAttr()
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="after")
    def _embed_examples(self) -> RewardExampleSelector:
        self._index = DemoIndex.build(self.reward_model, *self._texts(self.examples))
        return self

    @classmethod
    def from_jsonl(cls, path: str | Path, reward_model: RewardModel, **kwargs: Any) -> Any:
        """Demonstrations from a JSONL file in the training format (`{"input", "output"}`)."""
        examples = [
            {"input": example.prompt(reward_model.card.prompt_format), "output": example.output}
            for example in read_examples(path)
        ]
        return cls(examples=examples, reward_model=reward_model, **kwargs)

    def add_example(self, example: dict[str, Any]) -> None:
        added = DemoIndex.build(self.reward_model, *self._texts([example]))
        with self._lock:  # a query never sees a half-added example
            self.examples.append(example)
            self._index = self._index.extended(added)

    async def aadd_example(self, example: dict[str, Any]) -> None:
        await asyncio.to_thread(self.add_example, example)

    def select_examples(self, input_variables: dict[str, Any]) -> list[dict]:
        """The k best demonstrations for `input_variables[input_key]` (or its only value)."""
        query = self._query(input_variables)
        return [self.examples[demo.index] for demo in self.rank(query)]

    async def aselect_examples(self, input_variables: dict[str, Any]) -> list[dict]:
        return await asyncio.to_thread(self.select_examples, input_variables)

    def rank(self, query: str, k: int | None = None) -> list[RankedDemo]:
        """The top k demonstrations for `query`, best first (fewer if there are fewer)."""
        k = self.k if k is None else k
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        with self._lock:
            index = self._index
        if index.size == 0:
            raise ValueError("no demonstrations to select from: add examples first")
        relevance, reward = index.relevance_and_reward(self.reward_model, query)
        score = self.relevance_weight * _standardised(relevance)
        score += self.reward_weight * _standardised(reward)
        if self.diversity == 0:
            chosen = _top_k(score, k)
        else:
            # similarity of two demonstrations: the mean of their inputs' and outputs' cosines
            pair = np.concatenate([index.inputs, index.outputs], axis=1) / np.sqrt(2)
            chosen = _mmr(score, pair, k, self.diversity)
        return [
            RankedDemo(int(i), float(relevance[i]), float(reward[i]), float(score[i]))
            for i in chosen
        ]

    def _texts(self, examples: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
        inputs, outputs = [], []
        for position, example in enumerate(examples):
            for key in (self.input_key, self.output_key):
                if key not in example:
                    raise KeyError(
                        f"example {position} has no {key!r} key (keys: {sorted(example)}); "
                        "set input_key/output_key to the names your examples use"
                    )
            value = example[self.input_key]
            if not isinstance(value, str | list):
                raise TypeError(
                    f"example {position}: {self.input_key!r} must be a string or chat messages, "
                    f"got {type(value).__name__}"
                )
            inputs.append(self.reward_model.render(value))  # messages: by the card's rule
            outputs.append(str(example[self.output_key]))
        return inputs, outputs

    def _query(self, input_variables: dict[str, Any]) -> str:
        if self.input_key in input_variables:
            return str(input_variables[self.input_key])
        if len(input_variables) == 1:
            return str(next(iter(input_variables.values())))
        raise KeyError(
            f"input variables {sorted(input_variables)} have no {self.input_key!r}; "
            "set input_key to the variable that holds the new input"
        )


class RewardRetriever(BaseRetriever):
    """The selector's ranking as a retriever: k Documents (fewer only if there are fewer demos).

    page_content is the demonstration's output; metadata holds its input, reward, relevance and
    combined score. `k` can be set in the constructor and per call: `invoke(query, k=2)`.
    """

    selector: RewardExampleSelector
    k: int = Field(default=4, ge=1)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        selector = self.selector
        return [
            Document(
                page_content=str(selector.examples[demo.index][selector.output_key]),
                metadata={
                    "input": selector.examples[demo.index][selector.input_key],
                    "reward": demo.reward,
                    "relevance": demo.relevance,
                    "score": demo.score,
                },
            )
            for demo in selector.rank(query, self.k if k is None else k)
        ]


def _standardised(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def _top_k(score: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(score))
    top = np.argpartition(-score, k - 1)[:k]
    return top[np.argsort(-score[top], kind="stable")]


def _mmr(score: np.ndarray, embeddings: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Maximal marginal relevance over the best 20k candidates: pick by
    (1 - diversity) * score - diversity * (highest similarity to an earlier pick)."""
    pool = _top_k(score, min(len(score), 20 * k))
    similarity = embeddings[pool] @ embeddings[pool].T
    picked: list[int] = []
    closest = np.full(len(pool), -np.inf)
    for _ in range(min(k, len(pool))):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        value = (1 - diversity) * score[pool] - diversity * penalty
        value[picked] = -np.inf
        best = int(np.argmax(value))
        picked.append(best)
        closest = np.maximum(closest, similarity[best])
    return pool[picked]
