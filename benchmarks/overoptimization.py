"""Does the pick stay good as n grows? Best-of-n gold gain by selection rule (overoptimization).

Gao et al. (2022) found that the gold reward of best-of-n rises and then falls as n grows: the
more candidates a proxy reward chooses from, the more room for what it over-values. Here, on data
neither bundled model trained on, every candidate of an input is scored once; for n = 1, 2, 4, ...
random subsets of n are drawn (the same draws for every rule and model), each rule picks one, and
the gold gain of the pick over a random answer of the same subset is averaged.

Each task's inputs are those no compared folder trained on (read off the demonstrations each
keeps; the trainer's validation inputs count as unseen, since no weight was fitted on them):

- captions: 1,000 real entries per contest, gold = the humans' mean rating. For the bundled
  model: the trainer's 16 validation contests and 4 of the 5 demo contests; the fifth, 645, has
  the description of 644, a training contest, so its input is not new;
- AlpacaEval: about 50 judged answers per instruction, gold = `judge_win`. For the bundled model:
  the 111 instructions `data alpaca-eval` held out and the trainer's 67 validation instructions.

Rules: argmax, conservative (mean - spread of the ensemble members), regularized (plus the mean
similarity to the other candidates) and softmax (its expected pick, exactly). Each edit's raise
rate (`data.edits`) is printed beside the curves, and so are two paired checks over inputs with
95% intervals: argmax at the largest n against its peak, and conservative against argmax there.
Prints a table per task, saves a PNG per task.

A few dozen held-out inputs tell a difference of a few hundredths from noise poorly.
`--captions-cross-fit` and `--helpful-cross-fit` take folds of one recipe instead: folders
trained with different inputs left out (see models/README). Each input is judged by the folds
that never trained on it, its gains averaged over them, and the curves and paired checks cover
every such input.

    python benchmarks/overoptimization.py --captions caption-humor build/caption-humor \\
        --helpful helpful build/helpful [--draws 200] [--plot-dir models]
    python benchmarks/overoptimization.py --captions --helpful \\
        --captions-cross-fit caption-humor build/fold-* \\
        --helpful-cross-fit helpful build/helpful-fold*
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from langchain_irl import RewardModel
from langchain_irl.data.converters import (
    alpaca_eval,
    read_caption_contests,
)
from langchain_irl.data.formats import Example
from langchain_irl.engine.selection import Selection
from langchain_irl.evaluation.metrics import paired_interval
from langchain_irl.evaluation.plots import line_plot
from langchain_irl.evaluation.probes import edit_metrics
from langchain_irl.reward_model.card import DEMOS_FILE
from langchain_irl.train.pipeline import KEPT_DEMONSTRATIONS

ROOT = Path(__file__).resolve().parents[1]
RULES: tuple[Selection, ...] = ("argmax", "conservative", "regularized", "softmax")


@dataclass(frozen=True)
class Task:
    """Held-out inputs, every answer of each, and the answers' gold scores."""

    kind: str  # "captions", "AlpacaEval"
    unit: str  # what an input is: "contests", "instructions"
    gold_name: str
    prompts: list[str]
    answers: list[list[str]]
    gold: list[np.ndarray]
    note: str = ""  # which inputs these are

    @property
    def name(self) -> str:
        return f"{self.kind} ({len(self.prompts)} {self.unit}{self.note})"


@dataclass(frozen=True)
class Scored:
    """One model's view of a task: per input, rewards, member spread, and similarities."""

    rewards: list[np.ndarray]
    spread: list[np.ndarray]
    similarity: list[np.ndarray]


def caption_task(path: Path) -> Task:
    """Every contest in `path` (1,000 rated entries each), its input the cartoon's description."""
    by_prompt = {
        Example(c.description, "").prompt(): list(zip(c.captions, c.ratings, strict=True))
        for c in read_caption_contests(path)
    }
    return _task("captions", "contests", "human mean rating", by_prompt)


def alpaca_task(path: Path) -> Task:
    """Every instruction in `path` (about 50 judged answers each)."""
    by_prompt: dict[str, list[tuple[str, float]]] = {}
    for example in alpaca_eval(path).judged:
        by_prompt.setdefault(example.prompt(), []).append((example.output, float(example.score)))
    return _task("AlpacaEval", "instructions", "judge_win", by_prompt)


def subtask(task: Task, indices: Sequence[int], note: str) -> Task:
    return Task(
        task.kind,
        task.unit,
        task.gold_name,
        [task.prompts[i] for i in indices],
        [task.answers[i] for i in indices],
        [task.gold[i] for i in indices],
        note,
    )


def _task(
    kind: str, unit: str, gold_name: str, by_prompt: dict[str, list[tuple[str, float]]]
) -> Task:
    """Inputs in sorted order, each with its answers and their gold scores."""
    prompts = sorted(by_prompt)
    return Task(
        kind,
        unit,
        gold_name,
        prompts,
        [[text for text, _ in by_prompt[p]] for p in prompts],
        [np.array([gold for _, gold in by_prompt[p]]) for p in prompts],
    )


def score(model: RewardModel, task: Task) -> Scored:
    rewards, spread, similarity = [], [], []
    for prompt, answers in zip(task.prompts, task.answers, strict=True):
        scored = model.scorer(prompt).score_candidates(answers)
        rewards.append(scored.rewards.astype(np.float64))
        spread.append(scored.spread.astype(np.float64))
        embeddings = scored.embeddings.astype(np.float64)
        similarity.append(embeddings @ embeddings.T)
    return Scored(rewards, spread, similarity)


def draws(task: Task, ns: Sequence[int], count: int, seed: int) -> dict[int, list[np.ndarray]]:
    """For each n, per input, `count` random subsets of n answers (the same for every rule)."""
    rng = np.random.default_rng(seed)
    return {
        n: [np.argsort(rng.random((count, len(a))), axis=1)[:, :n] for a in task.answers]
        for n in ns
    }


def gold_gain(
    rule: Selection,
    scored: Scored,
    task: Task,
    subsets: list[np.ndarray],
    *,
    risk_weight: float = 1.0,
    proximity_weight: float = 1.0,
    temperature: float = 1.0,
) -> np.ndarray:
    """Per input, the mean over draws of gold(pick) - mean gold of the subset."""
    gains = []
    for index, subset in enumerate(subsets):
        gold = task.gold[index][subset]  # (draws, n)
        reward = scored.rewards[index][subset]
        if rule == "argmax":
            value = reward
        elif rule == "conservative":
            value = reward - risk_weight * scored.spread[index][subset]
        elif rule == "regularized":
            n = subset.shape[1]
            pairs = scored.similarity[index][subset[:, :, None], subset[:, None, :]]
            proximity = (pairs.sum(axis=2) - np.diagonal(pairs, axis1=1, axis2=2)) / max(1, n - 1)
            value = reward + proximity_weight * proximity
        else:  # softmax: the expected gold of its draw
            logits = (reward - reward.max(axis=1, keepdims=True)) / temperature
            weights = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            gains.append(((weights * gold).sum(axis=1) - gold.mean(axis=1)).mean())
            continue
        picked = gold[np.arange(len(gold)), np.argmax(value, axis=1)]
        gains.append((picked - gold.mean(axis=1)).mean())
    return np.array(gains)


def paired_checks(per_input: dict[str, list[np.ndarray]], ns: Sequence[int]) -> str:
    """The two questions the curves ask, paired over inputs with 95% intervals (Student's t):
    does argmax at the largest n fall below its own peak at a smaller n, and does conservative
    at the largest n reach argmax? One number per input, so the interval says how much of a
    difference the number of held-out inputs can tell from noise."""
    argmax = per_input["argmax"]
    peak = int(np.argmax([g.mean() for g in argmax[:-1]])) if len(ns) > 1 else 0
    mean, low, high = paired_interval(argmax[-1] - argmax[peak])
    text = f"argmax n={ns[-1]} - n={ns[peak]}: {mean:+.4f} [{low:+.4f}, {high:+.4f}]"
    if "conservative" in per_input:
        mean, low, high = paired_interval(per_input["conservative"][-1] - argmax[-1])
        text += f"; conservative - argmax at n={ns[-1]}: {mean:+.4f} [{low:+.4f}, {high:+.4f}]"
    return text


def raise_rates(model: RewardModel, task: Task, scored: Scored) -> dict[str, float]:
    groups = np.concatenate([np.full(len(a), i) for i, a in enumerate(task.answers)])
    texts = [text for answers in task.answers for text in answers]
    rewards = np.concatenate(scored.rewards)
    return edit_metrics(model, task.prompts, groups, texts, rewards)


def curve_sizes(task: Task) -> list[int]:
    """n = 1, 2, 4, ... up to the fewest answers any input has."""
    largest = min(len(a) for a in task.answers)
    return [2**i for i in range(int(np.log2(largest)) + 1)]


def rule_gains(
    model: RewardModel, scored: Scored, task: Task, subsets: dict[int, list[np.ndarray]]
) -> dict[str, list[np.ndarray]]:
    """Per rule, per n, each input's gold gain (conservative only where members disagree)."""
    return {
        rule: [gold_gain(rule, scored, task, subsets[n]) for n in sorted(subsets)]
        for rule in RULES
        if rule != "conservative" or model.card.head.members > 1
    }


def print_header(
    task: Task, ns: Sequence[int], count: int, subsets: dict[int, list[np.ndarray]]
) -> None:
    print(f"\n{task.name}: {len(task.prompts)} inputs, {sum(map(len, task.answers))} answers")
    print(f"gold gain over a random answer ({task.gold_name}), {count} draws per input and n")
    print(f"{'model':<28} {'rule':<13}" + "".join(f"{f'n={n}':>9}" for n in ns))
    oracle = [
        float(
            np.mean(
                [
                    (g[s].max(axis=1) - g[s].mean(axis=1)).mean()
                    for g, s in zip(task.gold, subsets[n], strict=True)
                ]
            )
        )
        for n in ns
    ]
    print(f"{'oracle':<28} {'':<13}" + "".join(f"{v:>9.4f}" for v in oracle))


def print_curves(
    label: str,
    per_input: dict[str, list[np.ndarray]],
    ns: Sequence[int],
    series: dict[str, tuple[list[float], list[float]]],
) -> None:
    """One row per rule (added to the plot's `series`), then the paired checks."""
    for rule, per_n in per_input.items():
        gains = [float(g.mean()) for g in per_n]
        series[f"{label}: {rule}"] = (list(np.log2(ns)), gains)
        print(f"{label[:28]:<28} {rule:<13}" + "".join(f"{v:>9.4f}" for v in gains))
    print(f"{'':<28} {paired_checks(per_input, ns)}")


def save_plot(series: dict[str, tuple[list[float], list[float]]], task: Task, plot: Path) -> None:
    line_plot(
        series,
        plot,
        f"best-of-n on {task.name}",
        "log2 n (candidates)",
        f"gain in {task.gold_name}",
    )
    print(f"plot: {plot}")


def run(task: Task, models: dict[str, RewardModel], count: int, plot: Path) -> None:
    """Every model (by the path or name it was loaded from) on the same draws of `task`."""
    ns = curve_sizes(task)
    subsets = draws(task, ns, count, seed=0)
    print_header(task, ns, count, subsets)
    series: dict[str, tuple[list[float], list[float]]] = {}
    for path, model in models.items():
        label = f"{model.name} ({path})" if str(path) != model.name else model.name
        scored = score(model, task)
        print_curves(label, rule_gains(model, scored, task, subsets), ns, series)
        rates = raise_rates(model, task, scored)
        print(
            f"{'':<28} edits raised: "
            + ", ".join(
                f"{name.removeprefix('edit_raised_').replace('_', ' ')} {share:.1%}"
                for name, share in rates.items()
            )
        )
    save_plot(series, task, plot)


def untrained(task: Task, model: RewardModel) -> list[int]:
    """The inputs of `task` a folder never trained on, read off the demonstrations it keeps:
    all of them, unless there were more than it keeps (then it cannot tell, and says so)."""
    if DEMOS_FILE in model.card.files:
        kept = json.loads((model.folder / DEMOS_FILE).read_text(encoding="utf-8"))
        if len(kept) < KEPT_DEMONSTRATIONS:
            trained = {demo["input"] for demo in kept}
            return [i for i, prompt in enumerate(task.prompts) if prompt not in trained]
    raise SystemExit(f"{model.folder}: cannot tell its training inputs from {DEMOS_FILE}")


def cross_fit(task: Task, folds: Sequence[str], count: int, plot: Path) -> None:
    """One recipe's folds: each input judged by the folds that never trained on it, its gains
    averaged over them; every input no fold held out is dropped."""
    models = [RewardModel.load(path) for path in folds]
    held = [untrained(task, model) for model in models]
    covered = sorted(set().union(*held))
    task = subtask(task, covered, f", {len(folds)} folds")
    position = {index: k for k, index in enumerate(covered)}
    ns = curve_sizes(task)
    subsets = draws(task, ns, count, seed=0)
    print_header(task, ns, count, subsets)
    totals: dict[str, list[np.ndarray]] = {}
    judged = np.zeros(len(covered))
    for model, path, indices in zip(models, folds, held, strict=True):
        rows = [position[i] for i in indices]
        fold = subtask(task, rows, f", judged by {path}")
        mine = {n: [subsets[n][r] for r in rows] for n in ns}
        print(f"{str(path)[:28]:<28} holds out {len(rows)} {task.unit}")
        for rule, per_n in rule_gains(model, score(model, fold), fold, mine).items():
            sums = totals.setdefault(rule, [np.zeros(len(covered)) for _ in ns])
            for total, gains in zip(sums, per_n, strict=True):
                total[rows] += gains
        judged[rows] += 1
    per_input = {rule: [total / judged for total in sums] for rule, sums in totals.items()}
    series: dict[str, tuple[list[float], list[float]]] = {}
    print_curves(f"{models[0].name}, cross-fitted", per_input, ns, series)
    save_plot(series, task, plot)


def unseen_by_all(task: Task, models: Sequence[RewardModel]) -> Task:
    """The inputs of `task` that none of `models` trained on."""
    unseen = [set(untrained(task, model)) for model in models]
    return subtask(task, sorted(set.intersection(*unseen)), " no compared model trained on")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--captions", nargs="*", default=["caption-humor"], metavar="MODEL")
    parser.add_argument("--helpful", nargs="*", default=["helpful"], metavar="MODEL")
    parser.add_argument(
        "--caption-data", type=Path, default=ROOT / "data/caption_contest/train.jsonl.gz"
    )
    parser.add_argument("--alpaca-data", type=Path, default=ROOT / "data/alpaca_eval/dev.jsonl.gz")
    for kind, inputs in (("captions", "contests"), ("helpful", "instructions")):
        parser.add_argument(
            f"--{kind}-cross-fit",
            nargs="*",
            default=[],
            metavar="FOLD",
            help=f"folders of one {kind} recipe, each trained with different {inputs} left out",
        )
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--plot-dir", type=Path, default=ROOT / "models")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    tasks = (
        ("captions", caption_task, args.caption_data, args.captions, args.captions_cross_fit),
        ("helpful", alpaca_task, args.alpaca_data, args.helpful, args.helpful_cross_fit),
    )
    for kind, load, data, models, folds in tasks:
        if not (models or folds):
            continue
        every = load(data)
        if models:
            loaded = {path: RewardModel.load(path) for path in models}
            task = unseen_by_all(every, list(loaded.values()))
            run(task, loaded, args.draws, args.plot_dir / f"overoptimization-{kind}.png")
        if folds:
            plot = args.plot_dir / f"overoptimization-{kind}-cross-fitted.png"
            cross_fit(every, folds, args.draws, plot)


if __name__ == "__main__":
    main()
