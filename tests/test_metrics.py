"""The numpy metrics agree with scipy's reference implementations on real reward-like data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from langchain_irl.evaluation.metrics import best_of_n_curve, gap_closed, rank_auc, spearman


@pytest.mark.parametrize("seed", range(5))
def test_spearman_matches_scipy_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, size=40).astype(float)  # many ties
    b = a + rng.normal(size=40)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_mann_whitney(seed: int) -> None:
    rng = np.random.default_rng(seed)
    positive = np.round(rng.normal(0.5, 1, size=30), 1)  # rounding makes ties
    negative = np.round(rng.normal(0.0, 1, size=50), 1)
    u = stats.mannwhitneyu(positive, negative).statistic
    assert rank_auc(positive, negative) == pytest.approx(u / (30 * 50), abs=1e-12)


def test_best_of_n_curve_against_exact_expectations() -> None:
    gold = [np.array([1.0, 2.0, 3.0, 4.0])]
    perfect = best_of_n_curve([gold[0]], gold, [1, 4], trials=50)
    assert perfect["reward"] == perfect["oracle"] == [pytest.approx(2.5, abs=0.5), 4.0]
    assert gap_closed(perfect, 1) == 1.0
    inverted = best_of_n_curve([-gold[0]], gold, [4], trials=10)
    assert inverted["reward"] == [1.0] and gap_closed(inverted) < 0
