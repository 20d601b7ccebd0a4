"""Closed-form reward objectives on frozen features phi(x, y); each returns the head's layers.

- `feature-matching`: apprenticeship learning (Abbeel & Ng 2004), w = E_demo[phi] - E_policy[phi].
- `feature-matching-whitened`: the same on whitened features (phi' = S^-1/2 phi, S the shrunk
  covariance of all training candidates), i.e. w = S^-1 (E_demo[phi] - E_policy[phi]). Directions
  in which candidates vary a lot anyway count less. On unseen caption contests it reaches 0.65
  pairwise accuracy where the raw form reaches 0.57 (5-fold by contest, frozen MiniLM).

Rewards are centred and scaled so that policy samples score mean 0, standard deviation 1: a reward
reads as "standard deviations above what the base model says anyway".
"""

from __future__ import annotations

import numpy as np

from langchain_irl.train.head import Layer

# Covariance shrinkage, relative to the mean feature variance.
WHITENING_SHRINKAGE = 1.0


def feature_matching(phi_demos: np.ndarray, phi_samples: np.ndarray) -> list[Layer]:
    weight = phi_demos.mean(axis=0) - phi_samples.mean(axis=0)
    return _standardised(weight, phi_samples)


def feature_matching_whitened(phi_demos: np.ndarray, phi_samples: np.ndarray) -> list[Layer]:
    candidates = np.concatenate([phi_demos, phi_samples]).astype(np.float64)
    covariance = np.cov(candidates, rowvar=False)
    ridge = WHITENING_SHRINKAGE * np.trace(covariance) / len(covariance)
    covariance[np.diag_indices_from(covariance)] += ridge
    difference = phi_demos.mean(axis=0) - phi_samples.mean(axis=0)
    return _standardised(np.linalg.solve(covariance, difference), phi_samples)


def _standardised(weight: np.ndarray, phi_samples: np.ndarray) -> list[Layer]:
    raw = phi_samples @ weight
    scale = float(raw.std()) or 1.0
    bias = -float(raw.mean()) / scale
    return [((weight / scale).reshape(-1, 1).astype(np.float32), np.array([bias], np.float32))]


OBJECTIVES = {
    "feature-matching": feature_matching,
    "feature-matching-whitened": feature_matching_whitened,
}
