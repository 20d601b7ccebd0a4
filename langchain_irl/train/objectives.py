"""Reward objectives on frozen features phi(x, y): each returns the head's layers (numpy)."""

from __future__ import annotations

import numpy as np

from langchain_irl.train.head import Layer


def feature_matching(phi_demos: np.ndarray, phi_samples: np.ndarray) -> list[Layer]:
    """Apprenticeship learning's closed form (Abbeel & Ng 2004): w = E_demo[phi] - E_policy[phi].

    The reward r = w.phi is then centred and scaled so that policy samples score mean 0, std 1:
    rewards read as "standard deviations above what the base model says anyway".
    """
    weight = phi_demos.mean(axis=0) - phi_samples.mean(axis=0)
    raw = phi_samples @ weight
    scale = float(raw.std()) or 1.0
    weight = weight / scale
    bias = -float(raw.mean()) / scale
    return [(weight.reshape(-1, 1).astype(np.float32), np.array([bias], dtype=np.float32))]


OBJECTIVES = {"feature-matching": feature_matching}
