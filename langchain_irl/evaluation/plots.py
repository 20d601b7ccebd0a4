"""PNG plots a person would rather see than read: reward histograms and best-of-n curves.

Drawn on a `matplotlib.figure.Figure` with its own Agg canvas: no pyplot state, and the backend
of the caller's process is left alone. Needs matplotlib (the `[cli]` or `[train]` extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from langchain_irl.extras import require

CROWDED = 4  # more legend entries than this go below the plot, not over it


def _figure(width: float = 7, height: float = 4) -> tuple[Any, Any]:
    figure_module = require("matplotlib.figure", "plots", "cli")
    figure = figure_module.Figure(figsize=(width, height))
    return figure, figure.subplots()


def reward_histogram(
    demo_rewards: np.ndarray, sample_rewards: np.ndarray, path: Path, title: str
) -> Path:
    figure, axes = _figure()
    bins = np.histogram_bin_edges(np.concatenate([demo_rewards, sample_rewards]), bins=40)
    axes.hist(sample_rewards, bins=bins, alpha=0.6, density=True, label="policy samples")
    axes.hist(demo_rewards, bins=bins, alpha=0.6, density=True, label="demonstrations")
    return _save(figure, axes, path, title, "learned reward", "density")


def best_of_n_plot(curve: dict[str, list[float]], path: Path, title: str, gold: str) -> Path:
    figure, axes = _figure()
    for key, label, style in (
        ("oracle", "oracle (best by the gold score)", "--"),
        ("reward", "best-of-n by the learned reward", "-o"),
        ("longest", "the longest (a length-only baseline)", "-s"),
        ("random", "random pick", ":"),
    ):
        if key in curve:
            axes.plot(curve["n"], curve[key], style, label=label)
    axes.set_xscale("log", base=2)
    axes.set_xticks(curve["n"], [str(int(n)) for n in curve["n"]])
    return _save(figure, axes, path, title, "n (candidates)", f"mean {gold} of the pick")


def line_plot(
    series: dict[str, tuple[list[float], list[float]]],
    path: Path,
    title: str,
    x_label: str,
    y_label: str,
) -> Path:
    """One line per named series of (x, y) points."""
    figure, axes = _figure()
    for label, (xs, ys) in series.items():
        axes.plot(xs, ys, "-o", label=label)
    return _save(figure, axes, path, title, x_label, y_label)


def _save(figure: Any, axes: Any, path: Path, title: str, x_label: str, y_label: str) -> Path:
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_title(title)
    labels = axes.get_legend_handles_labels()[1]
    if len(labels) <= CROWDED:
        legend = axes.legend()
    else:  # below the axes: inside, "best" can only choose which points to hide
        columns = max(1, min(3, 100 // max(map(len, labels))))
        legend = axes.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=columns, fontsize="small"
        )
        legend.set_in_layout(False)  # the axes keep their size; the saved page grows instead
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight", bbox_extra_artists=[legend])
    return path
