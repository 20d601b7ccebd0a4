"""PNG plots a person would rather see than read: reward histograms and best-of-n curves.

Needs matplotlib (in the `[train]` extra); drawn off-screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():  # type: ignore[no-untyped-def]
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError("plots need matplotlib: pip install 'langchain-irl[train]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reward_histogram(
    demo_rewards: np.ndarray, sample_rewards: np.ndarray, path: Path, title: str
) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    bins = np.histogram_bin_edges(np.concatenate([demo_rewards, sample_rewards]), bins=40)
    axes.hist(sample_rewards, bins=bins, alpha=0.6, density=True, label="policy samples")
    axes.hist(demo_rewards, bins=bins, alpha=0.6, density=True, label="demonstrations")
    return _save(figure, axes, path, title, "learned reward", "density")


def best_of_n_plot(curve: dict[str, list[float]], path: Path, title: str, gold: str) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    for key, label, style in (
        ("oracle", "oracle (best by the gold score)", "--"),
        ("reward", "best-of-n by the learned reward", "-o"),
        ("random", "random pick", ":"),
    ):
        axes.plot(curve["n"], curve[key], style, label=label)
    axes.set_xscale("log", base=2)
    axes.set_xticks(curve["n"], [str(int(n)) for n in curve["n"]])
    return _save(figure, axes, path, title, "n (candidates)", f"mean {gold} of the pick")


def _save(figure: Any, axes: Any, path: Path, title: str, x_label: str, y_label: str) -> Path:
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    figure.clf()
    _pyplot().close(figure)
    return path
