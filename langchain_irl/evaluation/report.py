"""Evaluate a reward model folder on demonstrations and policy samples, as users will run it.

Metrics (demo-vs-sample AUC, pairwise accuracy; with gold scores, Spearman and the best-of-n curve),
PNG plots, and the demonstrations the reward scores below most of their own policy samples: likely
bad or inconsistent demonstrations, worth a look before retraining.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from langchain_irl.data.formats import Example, check_matched
from langchain_irl.evaluation.metrics import (
    above_median_rate,
    best_of_n_curve,
    gap_closed,
    reward_metrics,
)
from langchain_irl.evaluation.probes import edit_metrics
from langchain_irl.reward_model.model import RewardModel

logger = logging.getLogger(__name__)

BEST_OF = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class SuspiciousDemo:
    input: str
    output: str
    reward: float
    beaten_by: float  # share of its own input's policy samples that score higher


@dataclass(frozen=True)
class ScoredRecords:
    """Every evaluated record with its reward: `texts[i]` answers `prompts[groups[i]]`."""

    prompts: list[str]
    groups: np.ndarray
    texts: list[str]
    rewards: np.ndarray
    is_demo: np.ndarray
    gold: np.ndarray


@dataclass
class EvalReport:
    metrics: dict[str, float]
    curve: dict[str, list[float]] | None
    suspicious: list[SuspiciousDemo]
    plots: list[Path] = field(default_factory=list)
    records: ScoredRecords | None = None


def matching_accuracy(
    model: RewardModel,
    prompts: Sequence[str],
    groups: np.ndarray,
    texts: Sequence[str],
    is_demo: np.ndarray,
    *,
    others: int = 4,
    seed: int = 0,
) -> float | None:
    """Share of demonstrations that score higher under their own input than under each of
    `others` random other inputs (chance: 1 / (others + 1)). A reward that ignores the input
    scores a demonstration the same under every input and sits at chance. None with fewer than
    `others + 1` inputs."""
    inputs = np.unique(groups)
    if len(inputs) <= others:
        return None
    demos = np.flatnonzero(is_demo)
    rng = np.random.default_rng(seed)
    under = np.concatenate(  # each demonstration's own input first, then `others` rivals
        [
            [groups[i], *rng.choice(inputs[inputs != groups[i]], size=others, replace=False)]
            for i in demos
        ]
    )
    copies = [texts[int(i)] for i in demos for _ in range(others + 1)]
    rewards = model.score_by_input(prompts, under, copies).reshape(len(demos), others + 1)
    return float(np.mean(rewards[:, 0] > rewards[:, 1:].max(axis=1)))


def evaluate(
    model: RewardModel,
    demos: Sequence[Example],
    samples: Sequence[Example],
    *,
    plots_dir: Path | None = None,
    suspicious_share: float = 0.5,
    adversarial: Mapping[str, Sequence[Example]] | None = None,
) -> EvalReport:
    """Score every record with the model as users run it; plots go to `plots_dir` if given.

    `adversarial`: named sets of answers built to game a judge. For each, `adversarial_{name}`
    is the share that the reward ranks above the median policy sample of their input (a user would
    call each one a bug), and `adversarial_{name}_gold_below_median` the same share among those
    whose gold score (if any) is at or below that input's median: the ones the judge saw through.
    """
    check_matched(demos, samples)
    records = [*demos, *samples]
    prompts = [record.prompt(model.card.prompt_format) for record in records]
    unique_prompts = sorted(set(prompts))
    index = {prompt: i for i, prompt in enumerate(unique_prompts)}
    groups = np.array([index[p] for p in prompts])
    is_demo = np.arange(len(records)) < len(demos)
    gold = np.array([np.nan if r.score is None else r.score for r in records], dtype=np.float64)
    texts = [record.output for record in records]
    rewards = model.score_by_input(unique_prompts, groups, texts, progress=True)

    has_gold = bool(np.isfinite(gold).any())
    lengths = np.array([len(text) for text in texts])
    metrics = reward_metrics(rewards, groups, is_demo, gold if has_gold else None, lengths=lengths)
    matching = matching_accuracy(model, unique_prompts, groups, texts, is_demo)
    if matching is not None:  # does the reward read the input? (chance: 0.2)
        metrics["matching_accuracy"] = matching
    metrics |= edit_metrics(model, unique_prompts, groups, texts, rewards)
    curve = None
    if has_gold:
        per_group = [np.flatnonzero((groups == g) & np.isfinite(gold)) for g in np.unique(groups)]
        per_group = [m for m in per_group if len(m) >= 2]
        ns = [n for n in BEST_OF if n <= max(map(len, per_group))]
        curve = best_of_n_curve([rewards[m] for m in per_group], [gold[m] for m in per_group], ns)
        # "pick the longest" on the same draws: the baseline a length-loving judge sets
        longest = best_of_n_curve([lengths[m] for m in per_group], [gold[m] for m in per_group], ns)
        curve["longest"] = longest["reward"]
        for position, n in enumerate(curve["n"]):
            metrics[f"best_of_{int(n)}_gap_closed"] = gap_closed(curve, position)

    for name, answers in (adversarial or {}).items():
        metrics |= _adversarial_metrics(
            model, name, answers, unique_prompts, index, rewards, groups, is_demo, gold
        )

    suspicious = []
    for i in np.flatnonzero(is_demo):
        own_samples = rewards[(groups == groups[i]) & ~is_demo]
        if len(own_samples):
            beaten_by = float((own_samples > rewards[i]).mean())
            if beaten_by > suspicious_share:
                suspicious.append(
                    SuspiciousDemo(prompts[i], records[i].output, float(rewards[i]), beaten_by)
                )
    suspicious.sort(key=lambda demo: -demo.beaten_by)

    scored = ScoredRecords(unique_prompts, groups, texts, rewards, is_demo, gold)
    report = EvalReport(metrics, curve, suspicious, records=scored)
    if plots_dir is not None:
        from langchain_irl.evaluation.plots import best_of_n_plot, reward_histogram

        plots_dir.mkdir(parents=True, exist_ok=True)
        report.plots.append(
            reward_histogram(
                rewards[is_demo],
                rewards[~is_demo],
                plots_dir / "reward_histogram.png",
                f"{model.name}: rewards",
            )
        )
        if curve is not None:
            report.plots.append(
                best_of_n_plot(
                    curve, plots_dir / "best_of_n.png", f"{model.name}: best-of-n", "gold score"
                )
            )
    return report


def _adversarial_metrics(
    model: RewardModel,
    name: str,
    answers: Sequence[Example],
    prompts: Sequence[str],
    index: Mapping[str, int],
    rewards: np.ndarray,
    groups: np.ndarray,
    is_demo: np.ndarray,
    gold: np.ndarray,
) -> dict[str, float]:
    """Above-median rates of adversarial answers among the policy samples of their input."""
    placed = [(a, index.get(a.prompt(model.card.prompt_format))) for a in answers]
    known = [a for a, group in placed if group is not None]
    if len(known) < len(answers):
        logger.warning(
            "%s: %d of %d adversarial answers have inputs the evaluation data lacks; skipped",
            name,
            len(answers) - len(known),
            len(answers),
        )
    if not known:
        return {}
    answer_groups = np.array([group for _, group in placed if group is not None])
    answer_rewards = model.score_by_input(prompts, answer_groups, [a.output for a in known])
    samples = ~is_demo
    metrics = {
        f"adversarial_{name}": above_median_rate(
            rewards[samples], groups[samples], answer_rewards, answer_groups
        )
    }
    seen_through = np.array(
        [
            a.score is None or a.score <= np.nanmedian(gold[samples & (groups == g)])
            for a, g in zip(known, answer_groups, strict=True)
        ]
    )
    if seen_through.any():
        metrics[f"adversarial_{name}_gold_below_median"] = above_median_rate(
            rewards[samples],
            groups[samples],
            answer_rewards[seen_through],
            answer_groups[seen_through],
        )
    return metrics
