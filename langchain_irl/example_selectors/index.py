"""Demonstrations embedded once, and the ranking of them for a new input.

Every demonstration gets, for a new input x,

    score = relevance_weight * z(cos(e_x, e_input)) + reward_weight * z(r(x, output))

where z standardises each term over the demonstrations (so the weights compare like with like),
relevance is the reward model's encoder similarity of the inputs, and r is the learned reward of
the demonstration's output *for the new input*. With `lambda_mult` < 1, the k picks are made by
maximal marginal relevance among the `fetch_k` best: each next pick trades its score against its
similarity (the mean of the input and output cosines) to the picks so far.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from langchain_irl.reward_model.model import RewardModel


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
    texts: tuple[str, ...]  # the outputs themselves: a cross-encoder reads them with each query
    # With a linear head, r(x, y_i) = base[i] + interaction[i] . e_x: one matrix product a query.
    base: np.ndarray | None
    interaction: np.ndarray | None

    @property
    def size(self) -> int:
        return len(self.inputs)

    @classmethod
    def build(cls, model: RewardModel, inputs: list[str], outputs: list[str]) -> DemoIndex:
        dim = model.card.encoder.dim
        input_embeddings = model.embed_prompts(inputs) if inputs else np.zeros((0, dim), np.float32)
        if outputs:
            output_embeddings, tokens = model.embed_candidates(outputs)
        else:
            output_embeddings, tokens = np.zeros((0, dim), np.float32), np.zeros(0, np.int64)
        weights = model.interaction_weights
        base = interaction = None
        if weights is not None:
            zero_prompt = np.zeros((1, dim), np.float32)
            base = model.score_embedded(zero_prompt, output_embeddings, tokens, outputs)
            interaction = output_embeddings * weights
        return cls(input_embeddings, output_embeddings, tokens, tuple(outputs), base, interaction)

    def extended(self, other: DemoIndex) -> DemoIndex:
        def joined(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else np.concatenate([a, b])

        return DemoIndex(
            np.concatenate([self.inputs, other.inputs]),
            np.concatenate([self.outputs, other.outputs]),
            np.concatenate([self.tokens, other.tokens]),
            self.texts + other.texts,
            joined(self.base, other.base),
            joined(self.interaction, other.interaction),
        )

    def relevance_and_reward(self, model: RewardModel, query: str) -> tuple[np.ndarray, np.ndarray]:
        query_embedding = model.embed_prompts([query])
        # einsum, not BLAS: BLAS threads would fight onnxruntime's still-spinning ones (2x slower)
        relevance = np.einsum("nd,d->n", self.inputs, query_embedding[0])
        if self.base is not None and self.interaction is not None:
            reward = self.base + np.einsum("nd,d->n", self.interaction, query_embedding[0])
        elif model.is_cross_encoder:
            reward = model.score(query, list(self.texts))
        else:
            reward = model.score_embedded(query_embedding, self.outputs, self.tokens, self.texts)
        return relevance, reward


def rank(
    index: DemoIndex,
    model: RewardModel,
    query: str,
    k: int,
    *,
    relevance_weight: float = 1.0,
    reward_weight: float = 1.0,
    fetch_k: int = 20,
    lambda_mult: float = 1.0,
) -> list[RankedDemo]:
    """The top k demonstrations for `query`, best first (fewer if there are fewer)."""
    relevance, reward = index.relevance_and_reward(model, query)
    score = relevance_weight * _standardised(relevance) + reward_weight * _standardised(reward)
    if lambda_mult >= 1:
        chosen = _top_k(score, k)
    else:
        # similarity of two demonstrations: the mean of their inputs' and outputs' cosines
        pair = np.concatenate([index.inputs, index.outputs], axis=1) / np.sqrt(2)
        chosen = _mmr(score, pair, k, max(k, fetch_k), lambda_mult)
    return [
        RankedDemo(int(i), float(relevance[i]), float(reward[i]), float(score[i])) for i in chosen
    ]


def _standardised(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def _top_k(score: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(score))
    top = np.argpartition(-score, k - 1)[:k]
    return top[np.argsort(-score[top], kind="stable")]


def _mmr(
    score: np.ndarray, embeddings: np.ndarray, k: int, fetch_k: int, lambda_mult: float
) -> np.ndarray:
    """Maximal marginal relevance over the best `fetch_k` candidates: pick by
    lambda_mult * score - (1 - lambda_mult) * (highest similarity to an earlier pick)."""
    pool = _top_k(score, min(len(score), fetch_k))
    similarity = embeddings[pool] @ embeddings[pool].T
    picked: list[int] = []
    closest = np.full(len(pool), -np.inf)
    for _ in range(min(k, len(pool))):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        value = lambda_mult * score[pool] - (1 - lambda_mult) * penalty
        value[picked] = -np.inf
        best = int(np.argmax(value))
        picked.append(best)
        closest = np.maximum(closest, similarity[best])
    return pool[picked]
