"""Train the reward head on frozen features with a torch objective (maxent, bt, logistic).

Full-batch AdamW over all demonstrations, each with K freshly drawn samples per step; early
stopping on a split of the training inputs (never the validation inputs the card reports on).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from langchain_irl.train.head import Layer
from langchain_irl.train.losses import CandidateSets, objective_loss

logger = logging.getLogger(__name__)


class RewardHead(torch.nn.Module):
    """reward = MLP(phi); ReLU between layers. Mirrors `head.build_head` exactly."""

    def __init__(self, n_inputs: int, hidden: Sequence[int] = ()) -> None:
        super().__init__()
        sizes = [n_inputs, *hidden, 1]
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in itertools.pairwise(sizes)
        )
        torch.nn.init.zeros_(self.linears[-1].weight)  # start from a constant reward
        torch.nn.init.zeros_(self.linears[-1].bias)

    @property
    def linears(self) -> list[torch.nn.Linear]:
        return [m for m in self.layers if isinstance(m, torch.nn.Linear)]

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        hidden = phi
        for index, layer in enumerate(self.linears):
            hidden = layer(hidden)
            if index < len(self.layers) - 1:
                hidden = torch.relu(hidden)
        return hidden[..., 0]

    @classmethod
    def from_layers(cls, layers: Sequence[Layer]) -> RewardHead:
        head = cls(layers[0][0].shape[0], [w.shape[1] for w, _ in layers[:-1]])
        with torch.no_grad():
            for module, (weight, bias) in zip(head.linears, layers, strict=True):
                module.weight.copy_(torch.from_numpy(np.asarray(weight, np.float32).T))
                module.bias.copy_(torch.from_numpy(np.asarray(bias, np.float32)))
        return head

    def to_layers(self, scale: float = 1.0, shift: float = 0.0) -> list[Layer]:
        """Numpy layers for `build_head`; the last layer maps r to (r - shift) / scale."""
        layers = [
            (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
            for m in self.linears
        ]
        weight, bias = layers[-1]
        layers[-1] = (weight / scale, (bias - shift) / scale)
        return layers


def standardised_layers(head: RewardHead, phi_samples: np.ndarray) -> list[Layer]:
    """The head's layers, rescaled so that policy samples score mean 0, std 1."""
    with torch.no_grad():
        rewards = head(torch.from_numpy(phi_samples)).numpy()
    return head.to_layers(scale=float(rewards.std()) or 1.0, shift=float(rewards.mean()))


def train_head(
    phi: np.ndarray,
    groups: np.ndarray,
    is_demo: np.ndarray,
    objective: str,
    *,
    hidden: Sequence[int] = (),
    samples_per_demo: int = 8,
    max_epochs: int = 400,
    patience: int = 25,
    learning_rate: float = 1e-2,
    weight_decay: float = 1e-3,
    seed: int = 0,
) -> list[Layer]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    inputs = np.unique(groups)
    n_stop = max(1, len(inputs) // 10) if len(inputs) > 1 else 0
    stop_inputs = rng.permutation(inputs)[:n_stop]
    holdout = np.isin(groups, stop_inputs)
    fit_sets = CandidateSets.from_groups(np.where(holdout, -1, groups), is_demo & ~holdout)
    stop_sets = CandidateSets.from_groups(np.where(holdout, groups, -1), is_demo & holdout)
    if len(fit_sets.demos) == 0:
        raise ValueError("no training input has both a demonstration and a policy sample")
    features = torch.from_numpy(np.ascontiguousarray(phi, dtype=np.float32))
    head = RewardHead(phi.shape[1], hidden)
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=weight_decay)
    stop_matrix = stop_sets.draw(samples_per_demo, rng) if len(stop_sets.demos) else None
    best = (np.inf, head.state_dict())
    waited = 0
    for _ in tqdm(range(max_epochs), desc=f"{objective} head", unit="epoch", leave=False):
        matrix = torch.from_numpy(fit_sets.draw(samples_per_demo, rng))
        loss = objective_loss(objective, head(features[matrix]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if stop_matrix is None:
            continue
        with torch.no_grad():
            held = float(objective_loss(objective, head(features[torch.from_numpy(stop_matrix)])))
        if held < best[0] - 1e-4:
            best, waited = (held, {k: v.clone() for k, v in head.state_dict().items()}), 0
        else:
            waited += 1
            if waited >= patience:
                break
    if stop_matrix is not None:
        head.load_state_dict(best[1])
        logger.info("%s head: early-stopping loss %.4f", objective, best[0])
    return standardised_layers(head, phi[~is_demo])
