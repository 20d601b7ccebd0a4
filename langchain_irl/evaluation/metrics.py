"""Reward-model metrics in numpy: AUC, pairwise accuracy, Spearman, best-of-n curves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rank_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half."""
    scores = np.concatenate([positive, negative])
    ranks = _average_ranks(scores)
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    ra, rb = _average_ranks(np.asarray(a)), _average_ranks(np.asarray(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else 0.0


def best_of_n_curve(
    rewards: Sequence[np.ndarray],
    gold: Sequence[np.ndarray],
    ns: Sequence[int],
    *,
    trials: int = 200,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Mean gold score of the reward-argmax of n random candidates, vs a random and an oracle pick.

    `rewards[i]`, `gold[i]`: all candidates of group i (one input). Averaged over groups and trials.
    """
    rng = np.random.default_rng(seed)
    picked, random_pick, oracle = [], [], []
    for n in ns:
        totals = np.zeros(3)
        count = 0
        for group_rewards, group_gold in zip(rewards, gold, strict=True):
            if len(group_gold) < n:
                continue
            for _ in range(trials):
                chosen = rng.choice(len(group_gold), size=n, replace=False)
                totals += (
                    group_gold[chosen[np.argmax(group_rewards[chosen])]],
                    group_gold[chosen[0]],
                    group_gold[chosen].max(),
                )
                count += 1
        picked_mean, random_mean, oracle_mean = totals / max(count, 1)
        picked.append(float(picked_mean))
        random_pick.append(float(random_mean))
        oracle.append(float(oracle_mean))
    return {"n": [float(n) for n in ns], "reward": picked, "random": random_pick, "oracle": oracle}


def gap_closed(curve: dict[str, list[float]], index: int = -1) -> float:
    """Share of the random-to-oracle gap that the reward's pick closes at curve point `index`."""
    gap = curve["oracle"][index] - curve["random"][index]
    return (curve["reward"][index] - curve["random"][index]) / gap if gap > 0 else 0.0


def partial_spearman(a: np.ndarray, b: np.ndarray, control: np.ndarray) -> float:
    """Spearman correlation of `a` and `b` with `control` partialled out of both (on ranks)."""
    ab, ac, bc = spearman(a, b), spearman(a, control), spearman(b, control)
    denominator = np.sqrt((1 - ac**2) * (1 - bc**2))
    return float((ab - ac * bc) / denominator) if denominator > 1e-9 else 0.0


def mean_with_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and its 95% confidence interval (normal approximation over independent values)."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    half = 1.96 * float(array.std(ddof=1)) / np.sqrt(len(array)) if len(array) > 1 else np.inf
    return mean, mean - half, mean + half


# Two-sided 95% quantiles of Student's t for 1 to 30 degrees of freedom.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042)  # fmt: skip


def paired_interval(differences: Sequence[float]) -> tuple[float, float, float]:
    """Mean of paired differences and its 95% interval by Student's t: the honest interval for
    the few pairs of a prompt search's final check (the normal one is far too narrow there)."""
    array = np.asarray(differences, dtype=np.float64)
    mean = float(array.mean()) if len(array) else 0.0
    if len(array) < 2:
        return mean, -np.inf, np.inf
    df = len(array) - 1
    quantile = _T95[df - 1] if df <= len(_T95) else 2.0 if df < 120 else 1.96
    half = quantile * float(array.std(ddof=1)) / np.sqrt(len(array))
    return mean, mean - half, mean + half


def above_median_rate(
    rewards: np.ndarray, groups: np.ndarray, candidates: np.ndarray, candidate_groups: np.ndarray
) -> float:
    """Share of `candidates` (rewards, one per row, of input `candidate_groups`) that score above
    the median reward of their input's other answers (`rewards` of `groups`)."""
    above = [
        reward > np.median(rewards[groups == group])
        for reward, group in zip(candidates, candidate_groups, strict=True)
    ]
    return float(np.mean(above)) if above else float("nan")


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts_group = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    first = np.flatnonzero(starts_group)
    last = np.r_[first[1:], len(values)] - 1
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ((first + last) / 2 + 1)[np.cumsum(starts_group) - 1]
    return ranks


def reward_metrics(
    rewards: np.ndarray,
    groups: np.ndarray,
    is_demo: np.ndarray,
    gold: np.ndarray | None = None,
    best_of: int = 16,
    lengths: np.ndarray | None = None,
) -> dict[str, float]:
    """Held-out metrics of rewards over candidates grouped by input.

    - `auc`: demonstrations vs policy samples, pooled over inputs;
    - `pairwise_accuracy`: share of (demo, sample) pairs of the same input ranked correctly;
    - with `gold` (human or judge scores; NaN where unknown): `spearman_gold` (mean over inputs)
      and `best_of_{n}_gap_closed` (share of the random-to-oracle gap the reward's pick closes);
    - with `gold` and `lengths` (of the texts), two length controls, since judges like length:
      `best_of_{n}_gap_closed_longest`, the same share for "pick the longest" on the same draws,
      and `partial_spearman_gold_given_length` (mean over inputs, with `_ci_low`/`_ci_high`, its
      95% interval): what the reward knows about the gold score beyond the text's length;
    - with `lengths`: `length_spearman`, the reward's Spearman correlation with length within an
      input (mean over inputs), and with `gold` too, `gold_length_spearman`, the gold score's:
      how much the reward leans on length beside how much the humans or the judge do.
    """
    metrics = {"auc": rank_auc(rewards[is_demo], rewards[~is_demo])}
    correct = pairs = 0.0
    per_group_rewards, per_group_gold, per_group_lengths = [], [], []
    correlations, partials = [], []
    for group in np.unique(groups):
        members = groups == group
        demo, sample = rewards[members & is_demo], rewards[members & ~is_demo]
        if len(demo) and len(sample):
            correct += rank_auc(demo, sample) * len(demo) * len(sample)
            pairs += len(demo) * len(sample)
        if gold is not None:
            known = members & ~np.isnan(gold)
            if known.sum() >= 2:
                correlations.append(spearman(rewards[known], gold[known]))
                per_group_rewards.append(rewards[known])
                per_group_gold.append(gold[known])
                if lengths is not None:
                    per_group_lengths.append(lengths[known].astype(np.float64))
                    partials.append(partial_spearman(rewards[known], gold[known], lengths[known]))
    if pairs:
        metrics["pairwise_accuracy"] = correct / pairs
    if correlations:
        metrics["spearman_gold"] = float(np.mean(correlations))
        curve = best_of_n_curve(per_group_rewards, per_group_gold, [best_of])
        metrics[f"best_of_{best_of}_gap_closed"] = gap_closed(curve)
    if lengths is not None:
        metrics |= _length_leaning(rewards, groups, lengths, gold)
    if per_group_lengths:
        longest = best_of_n_curve(per_group_lengths, per_group_gold, [best_of])  # same draws
        metrics[f"best_of_{best_of}_gap_closed_longest"] = gap_closed(longest)
        name = "partial_spearman_gold_given_length"
        metrics[name], metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"] = mean_with_interval(
            partials
        )
    return metrics


def _length_leaning(
    rewards: np.ndarray, groups: np.ndarray, lengths: np.ndarray, gold: np.ndarray | None
) -> dict[str, float]:
    """Within-input Spearman correlations with length, of the reward and of the gold score."""
    scores = {"length_spearman": rewards}
    if gold is not None:
        scores["gold_length_spearman"] = gold
    leaning = {}
    for name, values in scores.items():
        known = np.isfinite(values)
        value = within_input_spearman(values[known], lengths[known], groups[known])
        if value is not None:
            leaning[name] = value
    return leaning


def within_input_spearman(
    a: np.ndarray, b: np.ndarray, groups: np.ndarray, min_size: int = 3
) -> float | None:
    """The Spearman correlation of `a` and `b` within each input (`groups`), averaged over the
    inputs with at least `min_size` records where both vary; None without such an input."""
    within = []
    for group in np.unique(groups):
        members = groups == group
        if members.sum() >= min_size and np.ptp(a[members]) > 0 and np.ptp(b[members]) > 0:
            within.append(spearman(a[members], np.asarray(b[members], dtype=np.float64)))
    return float(np.mean(within)) if within else None
