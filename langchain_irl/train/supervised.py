"""The supervised ceiling: the reward head trained on the gold scores themselves.

IRL learns from demonstrations only. Where the data also carries gold scores (the crowd's mean
rating of each caption, a judge's verdict on each answer), the same head on the same features can
be trained on them directly: Bradley-Terry on pairs of one input's records, the better-scored one
first. How close IRL gets to that head says whether the objective or the representation limits the
reward. The card reports both (`supervised_*` metrics).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from langchain_irl.train.head import Layer
from langchain_irl.train.head_training import RewardHead, standardised_layers
from langchain_irl.train.losses import objective_loss


def rating_pairs(
    groups: np.ndarray, gold: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """(pairs, 2) record indices, the better-scored first: two records of one input whose gold
    scores differ, drawn uniformly. Empty when no input has two different known scores."""
    known = np.flatnonzero(~np.isnan(gold))
    members = {g: known[groups[known] == g] for g in np.unique(groups[known])}
    members = {g: m for g, m in members.items() if len(np.unique(gold[m])) > 1}
    if not members:
        return np.empty((0, 2), dtype=np.int64)
    pools = list(members.values())
    sizes = np.array([len(p) for p in pools])
    # Each input in proportion to its records, as a pair drawn from the whole data would be.
    chosen = rng.choice(len(pools), size=count * 2, p=sizes / sizes.sum())
    first = np.array([pools[c][rng.integers(len(pools[c]))] for c in chosen])
    second = np.array([pools[c][rng.integers(len(pools[c]))] for c in chosen])
    differ = gold[first] != gold[second]
    first, second = first[differ][:count], second[differ][:count]
    better_first = gold[first] > gold[second]
    return np.stack(
        [np.where(better_first, first, second), np.where(better_first, second, first)], axis=1
    )


def supervised_head(
    phi: np.ndarray,
    groups: np.ndarray,
    gold: np.ndarray,
    *,
    hidden: Sequence[int] = (),
    pairs: int = 40_000,
    steps: int = 300,
    seed: int = 0,
) -> list[Layer] | None:
    """The head trained by Bradley-Terry on gold-score pairs (None without such pairs), its
    rewards standardised over the records, as an IRL head's are over the policy samples."""
    rng = np.random.default_rng(seed)
    matrix = rating_pairs(groups, gold, pairs, rng)
    if len(matrix) == 0:
        return None
    torch.manual_seed(seed)
    features = torch.from_numpy(np.ascontiguousarray(phi, dtype=np.float32))
    head = RewardHead(features.shape[1], hidden)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-3)
    cells = torch.from_numpy(matrix)
    for _ in range(steps):
        loss = objective_loss("bt", head(features[cells]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return standardised_layers(head, phi)
