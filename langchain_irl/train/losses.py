"""The IRL objectives as torch losses over candidate sets, and how candidate sets are drawn.

A candidate set is one demonstration with K policy samples for the same input: a row of an index
matrix whose column 0 is the demonstration. With rewards R (rows, 1 + K):

- `maxent` (default): max-entropy IRL with the normaliser estimated on the set,
  -R[:, 0] + logsumexp(R): the demonstration must out-score what the policy says anyway.
- `bt`: Bradley-Terry, softplus(R[:, j] - R[:, 0]) averaged over the K samples (pairs data: K = 1).
- `logistic`: a demo-vs-sample discriminator (the AIRL/GAIL form), softplus(-R[:, 0]) +
  softplus(R[:, 1:]).

Each adds a small reward-centering term (mean reward)^2 so rewards stay near zero.

Edit negatives (`data.edits`: the demonstration repeated, shuffled, cut short, ...) come as the
last columns of a row. They are not policy samples, so they stay out of the objective above: each
adds a Bradley-Terry term softplus(R_edit - R_demo), weighted, that ranks the demonstration above
its own edited copy whatever the objective. Edited copies of policy samples come as pairs
(sample, copy) beside the rows, with the same term: an edit adds nothing to a weak answer either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

TORCH_OBJECTIVES = ("maxent", "bt", "logistic")
CENTERING = 0.01


def objective_loss(
    objective: str, rewards: torch.Tensor, edits: int = 0, edit_weight: float = 1.0
) -> torch.Tensor:
    """The objective over each row's first columns, plus the edit term over its last `edits`."""
    if edits:
        ranking = edit_loss(rewards[:, :1], rewards[:, -edits:], edit_weight)
        return _objective(objective, rewards[:, :-edits]) + ranking
    return _objective(objective, rewards)


def edit_loss(sources: torch.Tensor, copies: torch.Tensor, weight: float) -> torch.Tensor:
    """Each source ranked above its edited copies (Bradley-Terry), weighted: `sources` (rows, 1)
    against `copies` (rows, c)."""
    return weight * F.softplus(copies - sources).mean()


def pair_loss(rewards: torch.Tensor, weight: float) -> torch.Tensor:
    """`edit_loss` over (sample, copy) rows: `CandidateSets.draw_pairs`, scored."""
    return edit_loss(rewards[:, :1], rewards[:, 1:], weight)


def _objective(objective: str, rewards: torch.Tensor) -> torch.Tensor:
    demo, samples = rewards[:, 0], rewards[:, 1:]
    if objective == "maxent":
        loss = (torch.logsumexp(rewards, dim=1) - demo).mean()
    elif objective == "bt":
        loss = F.softplus(samples - demo[:, None]).mean()
    elif objective == "logistic":
        loss = F.softplus(-demo).mean() + F.softplus(samples).mean()
    else:
        raise ValueError(f"unknown objective {objective!r}; known: {TORCH_OBJECTIVES}")
    return loss + CENTERING * rewards.mean() ** 2


@dataclass(frozen=True)
class CandidateSets:
    """For each demonstration, the policy samples of the same input and its own edited copies
    (record indices)."""

    demos: np.ndarray
    samples: list[np.ndarray]
    groups: np.ndarray  # the input of each demonstration
    edits: np.ndarray  # (demos, edit columns): its edited copies, padded with the demo itself
    pairs: np.ndarray  # (copies, 2): a policy sample and an edited copy of it

    @classmethod
    def from_groups(
        cls, groups: np.ndarray, is_demo: np.ndarray, source: np.ndarray | None = None
    ) -> CandidateSets:
        """`source[i]` is the record (a demonstration or a policy sample) that record i is an
        edited copy of (-1: none). Records of group -1 are left out."""
        source = np.full(len(groups), -1) if source is None else source
        is_sample = ~is_demo & (source < 0)
        (copied,) = np.nonzero(source >= 0)
        of_sample = copied[is_sample[source[copied]] & (groups[source[copied]] >= 0)]
        pairs = np.stack([source[of_sample], of_sample], axis=1).reshape(-1, 2)
        by_group = {g: np.flatnonzero((groups == g) & is_sample) for g in np.unique(groups)}
        demos = np.array([i for i in np.flatnonzero(is_demo) if len(by_group[groups[i]])], int)
        copies = [np.flatnonzero(source == i) for i in demos]
        width = max((len(c) for c in copies), default=0)
        edits = np.array(
            [[*c, *[i] * (width - len(c))] for i, c in zip(demos, copies, strict=True)], int
        )
        return cls(
            demos,
            [by_group[groups[i]] for i in demos],
            groups[demos],
            edits.reshape(len(demos), width),
            pairs,
        )

    def draw(
        self,
        k: int,
        rng: np.random.Generator,
        rows: np.ndarray | None = None,
        off_topic: int = 0,
        edits: bool = False,
    ) -> np.ndarray:
        """An index matrix (rows, 1 + k + off_topic [+ edit columns]): each demo, k of its samples
        (with replacement only when it has fewer than k), then `off_topic` demonstrations of other
        inputs: outputs the policy could give here too, but written for something else. Every
        column is scored under the row's input (the demo's), so they teach r(x, y) to read x.
        With `edits`, the demo's edited copies follow (`edit_columns` of them)."""
        chosen = np.arange(len(self.demos)) if rows is None else rows
        matrix = np.empty((len(chosen), 1 + k + off_topic), dtype=np.int64)
        for row, i in enumerate(chosen):
            pool = self.samples[i]
            matrix[row, 0] = self.demos[i]
            matrix[row, 1 : 1 + k] = rng.choice(pool, size=k, replace=len(pool) < k)
        if off_topic:
            matrix[:, 1 + k :] = self._other_inputs_demos(chosen, off_topic, rng)
        if edits and self.edit_columns:
            return np.concatenate([matrix, self.edits[chosen]], axis=1)
        return matrix

    def draw_pairs(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` of the (sample, copy) pairs, drawn without replacement (all of them when
        there are no more; none when no sample was edited)."""
        if len(self.pairs) <= count:
            return self.pairs
        return self.pairs[np.sort(rng.choice(len(self.pairs), size=count, replace=False))]

    @property
    def edit_columns(self) -> int:
        return self.edits.shape[1]

    def _other_inputs_demos(
        self, rows: np.ndarray, count: int, rng: np.random.Generator
    ) -> np.ndarray:
        if len(np.unique(self.groups)) < 2:
            raise ValueError("off-topic negatives need demonstrations of at least two inputs")
        picks = rng.integers(0, len(self.demos), size=(len(rows), count))
        same = self.groups[picks] == self.groups[rows][:, None]
        while same.any():  # redraw the few that landed on the row's own input
            picks[same] = rng.integers(0, len(self.demos), size=int(same.sum()))
            same = self.groups[picks] == self.groups[rows][:, None]
        return self.demos[picks]
