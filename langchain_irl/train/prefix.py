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
from langchain_irl.train.head_training import RewardHead

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
    groups: np.ndarray,
    *,
    hidden: Sequence[int] = (),
    max_epochs: int = 500,
    patience: int = 25,
    learning_rate: float = 1e-2,
    weight_decay: float = 1e-3,
    seed: int = 0,
) -> list[Layer]:
    """A head mapping a prefix's phi to its whole output's reward (squared error), full batch,
    with early stopping on a tenth of the inputs."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    inputs = np.unique(groups)
    stop = np.isin(groups, rng.permutation(inputs)[: max(1, len(inputs) // 10)])
    if stop.all():
        stop[:] = False
    features = torch.from_numpy(np.ascontiguousarray(phi, dtype=np.float32))
    labels = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
    fit, held = torch.from_numpy(~stop), torch.from_numpy(stop)
    head = RewardHead(phi.shape[1], hidden)
    torch.nn.init.normal_(head.linears[-1].weight, std=1e-3)  # zeros would stall a hidden layer
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=weight_decay)
    best = (np.inf, {k: v.clone() for k, v in head.state_dict().items()})
    waited = 0
    for _ in tqdm(range(max_epochs), desc="prefix head", unit="epoch", leave=False):
        loss = torch.mean((head(features[fit]) - labels[fit]) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if not held.any():
            continue
        with torch.no_grad():
            error = float(torch.mean((head(features[held]) - labels[held]) ** 2))
        if error < best[0] - 1e-5:
            best, waited = (error, {k: v.clone() for k, v in head.state_dict().items()}), 0
        else:
            waited += 1
            if waited >= patience:
                break
    if held.any():
        head.load_state_dict(best[1])
        logger.info("prefix head: held-out squared error %.4f", best[0])
    return head.to_layers()
