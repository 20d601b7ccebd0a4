"""Rules that pick one candidate from its rewards (shared by the chat model and the middleware).

- `argmax`: the highest reward.
- `softmax`: sample with probability proportional to exp(reward / temperature). Less exploitable
  by a reward model's blind spots than argmax (reward hacking), at some cost in mean reward.
- `regularized`: argmax of reward + proximity_weight * (mean cosine similarity to the other
  candidates): regularized best-of-n (Jinnai et al. 2024) with the reward model's encoder as the
  proximity; it prefers candidates that agree with the consensus over lone outliers.
- `conservative`: argmax of mean - risk_weight * spread over the reward's ensemble members
  (Coste et al. 2023): a candidate the members disagree about is trusted less. A single-head
  reward has no spread, and the rule is argmax.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Selection = Literal["argmax", "softmax", "regularized", "conservative"]


def choose(
    rewards: np.ndarray,
    embeddings: np.ndarray,
    rule: Selection = "argmax",
    *,
    temperature: float = 1.0,
    proximity_weight: float = 1.0,
    risk_weight: float = 1.0,
    spread: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> int:
    """The index of the chosen candidate; `spread`: the ensemble members' disagreement on each
    (`CandidateScores.spread`; None: a single head, no spread)."""
    if len(rewards) == 0:
        raise ValueError("no candidates to choose from")
    if rule == "argmax":
        return int(np.argmax(rewards))
    if rule == "softmax":
        logits = (rewards - rewards.max()) / temperature
        probabilities = np.exp(logits) / np.exp(logits).sum()
        return int((rng or np.random.default_rng()).choice(len(rewards), p=probabilities))
    if rule == "regularized":
        if len(rewards) == 1:
            return 0
        similarity = embeddings @ embeddings.T
        proximity = (similarity.sum(axis=1) - np.diag(similarity)) / (len(rewards) - 1)
        return int(np.argmax(rewards + proximity_weight * proximity))
    if rule == "conservative":
        doubt = 0.0 if spread is None else risk_weight * spread
        return int(np.argmax(rewards - doubt))
    raise ValueError(
        f"unknown selection {rule!r}; use 'argmax', 'softmax', 'regularized' or 'conservative'"
    )
