"""The prefix head: the whole output's reward, predicted from its first tokens.

Speculative rejection judges candidates while they are written, by their first 16, 32, ...
tokens. A reward trained on whole outputs was never shown a beginning; a head trained to predict
the whole output's reward from its beginning was (controlled decoding, Mudgal et al. 2023, learns
such a prefix scorer). The labels are the trained reward's own scores of whole training outputs:
distillation, no new data. The head reads a prefix exactly as the reward reads an output (same
encoder, same features), so the runtime needs nothing new but a second small graph.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from langchain_irl.data.edits import first_words
from langchain_irl.train.config import PREFIX_TOKENS
from langchain_irl.train.head import Layer
from langchain_irl.train.head_training import EarlyStopping, RewardHead

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prefixes:
    """Beginnings of outputs: `texts[i]` is the first `tokens[i]` of output `source[i]`."""

    texts: list[str]
    source: np.ndarray
    tokens: np.ndarray


def prefixes_of(outputs: Sequence[str], lengths: Sequence[int] = PREFIX_TOKENS) -> Prefixes:
    """Every output's first t tokens for each t in `lengths` shorter than the output."""
    texts, source, tokens = [], [], []
    for index, output in enumerate(outputs):
        words = len(output.split(" "))
        for length in lengths:
            if length < words:
                texts.append(first_words(output, length))
                source.append(index)
                tokens.append(length)
    return Prefixes(texts, np.array(source, dtype=np.int64), np.array(tokens, dtype=np.int64))


def fit_prefix_head(
    phi: np.ndarray,
    targets: np.ndarray,
    cells: np.ndarray,
    start: Sequence[Layer],
    *,
    max_epochs: int = 300,
    patience: int = 25,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-3,
    seed: int = 0,
) -> list[Layer]:
    """The prefix head: the reward's own head (`start`), trained further so that a prefix's
    score ranks like its whole output's reward among the prefixes of the same length of the same
    input (`cells`: one id per input and length). The loss is the squared error of scores
    centred within each cell, since only the order within a cell decides a cut; early stopping
    on a tenth of the cells' inputs starts from the reward itself, so the head ends no worse than
    the reward on them."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ids, cell = np.unique(cells, return_inverse=True)
    stop = np.isin(cell, rng.permutation(len(ids))[: max(1, len(ids) // 10)])
    if stop.all():
        stop[:] = False
    features = torch.from_numpy(np.ascontiguousarray(phi, dtype=np.float32))
    labels = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
    index = torch.from_numpy(cell.astype(np.int64))
    sizes = torch.bincount(index, minlength=len(ids)).clamp(min=1).float()

    def centred(values: torch.Tensor) -> torch.Tensor:
        means = torch.zeros(len(ids)).index_add_(0, index, values) / sizes
        return values - means[index]

    wanted = centred(labels)
    fit, held = torch.from_numpy(~stop), torch.from_numpy(stop)

    def error(rows: torch.Tensor) -> torch.Tensor:
        return torch.mean((centred(head(features))[rows] - wanted[rows]) ** 2)

    head = RewardHead.from_layers(start)
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=weight_decay)
    stopping = EarlyStopping(head, patience, tolerance=1e-5)
    for _ in tqdm(range(max_epochs), desc="prefix head", unit="epoch", leave=False):
        if held.any():
            with torch.no_grad():
                if stopping.stop(float(error(held))):
                    break
        optimizer.zero_grad()
        error(fit).backward()
        optimizer.step()
    if held.any():
        stopping.restore()
        logger.info("prefix head: held-out within-cell squared error %.4f", stopping.best)
    return head.to_layers()
