"""Train the reward head on frozen features with a torch objective (maxent, bt, logistic).

Full-batch AdamW over all demonstrations, each with K freshly drawn samples per step; early
stopping on a split of the training inputs (never the validation inputs the card reports on).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from langchain_irl.train.head import Layer
from langchain_irl.train.losses import CandidateSets, objective_loss, pair_loss

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


class EarlyStopping:
    """Keeps a module's best state by a held-out loss; says when `patience` checks in a row
    brought no gain of more than `tolerance`."""

    def __init__(self, module: torch.nn.Module, patience: int, tolerance: float) -> None:
        self.module, self.patience, self.tolerance = module, patience, tolerance
        self.best, self.state, self.waited = np.inf, self._copy(), 0

    def stop(self, loss: float) -> bool:
        """Record a held-out loss; True once it is time to stop."""
        if loss < self.best - self.tolerance:
            self.best, self.state, self.waited = loss, self._copy(), 0
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore(self) -> None:
        """Put the best state back into the module."""
        self.module.load_state_dict(self.state)

    def _copy(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.module.state_dict().items()}


def standardised_layers(head: RewardHead, phi_samples: np.ndarray) -> list[Layer]:
    """The head's layers, rescaled so that policy samples score mean 0, std 1."""
    with torch.no_grad():
        rewards = head(torch.from_numpy(phi_samples)).numpy()
    return head.to_layers(scale=float(rewards.std()) or 1.0, shift=float(rewards.mean()))


@dataclass(frozen=True)
class CandidateFeatures:
    """Embeddings encoded once, from which the head's input phi(x, y) is built.

    A bi-encoder's phi(x, y) = [e_y, e_x * e_y, f(y)] pairs any input with any candidate, so a
    candidate can be scored under another input. A cross-encoder's (`prompts` None) is
    [e_xy, f(y)], each candidate's embedding already read with its own input: only that one."""

    prompts: torch.Tensor | None  # (inputs, dim); None for a cross-encoder
    groups: np.ndarray  # (records,) the input of each record
    candidates: torch.Tensor  # (records, dim)
    features: torch.Tensor  # (records, features)

    @classmethod
    def of(
        cls,
        prompts: np.ndarray | None,
        groups: np.ndarray,
        candidates: np.ndarray,
        features: np.ndarray,
    ) -> CandidateFeatures:
        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

        prompt_tensor = None if prompts is None else tensor(prompts)
        return cls(prompt_tensor, groups, tensor(candidates), tensor(features))

    @property
    def size(self) -> int:
        copies = 1 if self.prompts is None else 2
        return copies * self.candidates.shape[1] + self.features.shape[1]

    def phi(self, matrix: np.ndarray) -> torch.Tensor:
        """(rows, columns, size): every column scored under its row's input (column 0's)."""
        cells = torch.from_numpy(matrix)
        if self.prompts is None:
            if (self.groups[matrix] != self.groups[matrix[:, :1]]).any():
                raise ValueError(
                    "a frozen cross-encoder read each output with its own input only: no "
                    "off-topic negatives"
                )
            return torch.cat([self.candidates[cells], self.features[cells]], dim=-1)
        rows = torch.from_numpy(self.groups[matrix[:, 0]])
        return cell_phi(self.prompts[rows], self.candidates[cells], self.features[cells])


def cell_phi(
    row_prompts: torch.Tensor, candidates: torch.Tensor, features: torch.Tensor
) -> torch.Tensor:
    """phi for a (rows, columns) grid: row_prompts (rows, dim), candidates (rows, columns, dim)."""
    interaction = row_prompts[:, None, :] * candidates
    return torch.cat([candidates, interaction, features], dim=-1)


def train_head(
    data: CandidateFeatures,
    is_demo: np.ndarray,
    objective: str,
    *,
    hidden: Sequence[int] = (),
    samples_per_demo: int = 8,
    off_topic: int = 0,
    source: np.ndarray | None = None,
    edit_weight: float = 1.0,
    max_epochs: int = 400,
    patience: int = 25,
    learning_rate: float = 1e-2,
    weight_decay: float = 1e-3,
    seed: int = 0,
) -> list[Layer]:
    """The head on frozen features; early stopping on a tenth of the training inputs.

    `source[i]` names the record (demonstration or policy sample) that record i is an edited
    copy of (-1: an original): each is ranked above its copies with weight `edit_weight`
    (`losses`)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    groups = data.groups
    inputs = np.unique(groups)
    n_stop = max(1, len(inputs) // 10) if len(inputs) > 1 else 0
    stop_inputs = rng.permutation(inputs)[:n_stop]
    holdout = np.isin(groups, stop_inputs)
    fit_sets = CandidateSets.from_groups(np.where(holdout, -1, groups), is_demo & ~holdout, source)
    stop_sets = CandidateSets.from_groups(np.where(holdout, groups, -1), is_demo & holdout, source)

    def features(matrix: np.ndarray, pairs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        return data.phi(matrix), data.phi(pairs) if len(pairs) else None

    def loss(phi: torch.Tensor, pair_phi: torch.Tensor | None, sets: CandidateSets) -> torch.Tensor:
        total = objective_loss(objective, head(phi), sets.edit_columns, edit_weight)
        if pair_phi is not None:
            total = total + pair_loss(head(pair_phi), edit_weight)
        return total

    if len(fit_sets.demos) == 0:
        raise ValueError("no training input has both a demonstration and a policy sample")
    head = RewardHead(data.size, hidden)
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=weight_decay)
    stop = None  # the early-stopping sets' features, drawn once
    if len(stop_sets.demos):
        stop_off_topic = off_topic if len(np.unique(stop_sets.groups)) > 1 else 0
        stop_matrix = stop_sets.draw(samples_per_demo, rng, off_topic=stop_off_topic, edits=True)
        stop = features(stop_matrix, stop_sets.draw_pairs(len(stop_matrix), rng))
    stopping = EarlyStopping(head, patience, tolerance=1e-4)
    for _ in tqdm(range(max_epochs), desc=f"{objective} head", unit="epoch", leave=False):
        matrix = fit_sets.draw(samples_per_demo, rng, off_topic=off_topic, edits=True)
        pairs = fit_sets.draw_pairs(len(matrix), rng)
        optimizer.zero_grad()
        loss(*features(matrix, pairs), fit_sets).backward()
        optimizer.step()
        if stop is None:
            continue
        with torch.no_grad():
            held = float(loss(*stop, stop_sets))
        if stopping.stop(held):
            break
    if stop is not None:
        stopping.restore()
        logger.info("%s head: early-stopping loss %.4f", objective, stopping.best)
    is_copy = np.zeros(len(groups), bool) if source is None else source >= 0
    samples = np.flatnonzero(~is_demo & ~is_copy)[:, None]
    with torch.no_grad():
        sample_phi = data.phi(samples)[:, 0].numpy()
    return standardised_layers(head, sample_phi)
