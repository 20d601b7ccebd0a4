"""Bi-encoder or cross-encoder? One ablation table across captions, HH-RLHF and AlpacaEval.

    python benchmarks/reward_architectures.py run captions-cross     # one row (minutes)
    python benchmarks/reward_architectures.py run captions-bi --card models/caption-humor
    python benchmarks/reward_architectures.py table                  # every row measured so far

Each row trains a reward with the library's own pipeline (`train`), so its figures are the card's:
measured on inputs the trainer held out by input (contest, dialogue, instruction; seed 0, the
same split for every row of a data set), with the int8 model as users run it. A row of a bundled
model can instead be read from its card (`--card`): the card was written by the same pipeline on
the same data and split. Training minutes are wall-clock on this machine. `table` measures the
runtime of every row in one process, one model after another: the median time to score 16
held-out candidates of one input (after one warm-up call), in milliseconds. Results are appended
to `build/architectures/results.jsonl`. Needs the [train] extra.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_irl import RewardModel
from langchain_irl.data.converters import caption_contest, hh_rlhf
from langchain_irl.data.formats import Example
from langchain_irl.train.config import FineTuneConfig, TrainConfig
from langchain_irl.train.pipeline import train

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "architectures"
DATA = ROOT.parent / "shared" / "data"
DEMO_CONTESTS = (641, 645, 648, 650, 654)  # the demo's cartoons: never trained on
ALPACA_DEMO_MODELS = (
    "gpt4_1106_preview",
    "FuseChat-Gemma-2-9B-Instruct",
    "FuseChat-Qwen-2.5-7B-Instruct",
    "FuseChat-Llama-3.1-8B-Instruct",
)
COLUMNS = ("pairwise_accuracy", "spearman_gold", "best_of_16_gap_closed", "matching_accuracy")


def captions() -> tuple[list[Example], list[Example]]:
    return caption_contest(DATA / "caption_contest" / "train.jsonl.gz", exclude=DEMO_CONTESTS)


def hh() -> tuple[list[Example], list[Example]]:
    pairs = hh_rlhf(DATA / "hh_rlhf_harmless" / "dev.jsonl.gz")
    return [Example(p.input, p.chosen) for p in pairs], [
        Example(p.input, p.rejected) for p in pairs
    ]


def alpaca() -> tuple[list[Example], list[Example]]:
    from langchain_irl.data.converters import alpaca_eval, held_out, read_alpaca_eval

    path = DATA / "alpaca_eval" / "dev.jsonl.gz"
    instructions = [record["instruction"] for record in read_alpaca_eval(path)]
    kept = set(instructions) - held_out(instructions, 0.2, 0)  # as `langchain-irl data`
    split = alpaca_eval(path, demo_models=ALPACA_DEMO_MODELS, instructions=kept)
    return split.demos, split.samples


def fine_tuned(steps: int, batch: int = 16, samples: int = 4) -> FineTuneConfig:
    return FineTuneConfig(steps=steps, batch=batch, samples_per_demo=samples, device="cpu")


CAPTIONS = {"objective": "maxent", "off_topic": 2}
HH = {"objective": "bt", "prompt_format": "transcript"}
HELPFUL = {"objective": "maxent", "off_topic": 2, "hidden": (64,)}
# name -> (data, the recipe); the -bi rows are the bundled models' recipes (models/README.md).
ROWS: dict[str, tuple[Callable[[], tuple[list[Example], list[Example]]], dict[str, Any]]] = {
    "captions-bi": (captions, {**CAPTIONS, "fine_tune": fine_tuned(500)}),
    "captions-cross": (
        captions,
        {**CAPTIONS, "architecture": "cross-encoder", "fine_tune": fine_tuned(500)},
    ),
    "hh-bi-frozen": (hh, HH),
    "hh-bi": (hh, {**HH, "fine_tune": fine_tuned(300, samples=1)}),
    "hh-cross": (
        hh,
        {**HH, "architecture": "cross-encoder", "fine_tune": fine_tuned(300, samples=1)},
    ),
    "helpful-bi": (alpaca, {**HELPFUL, "candidate_chunks": 4}),
    "helpful-cross": (
        alpaca,
        {
            **HELPFUL,
            "architecture": "cross-encoder",
            "max_tokens": 256,
            "fine_tune": fine_tuned(150, batch=8),
        },
    ),
}


def run(name: str, card: Path | None, steps: int | None) -> dict[str, Any]:
    load, recipe = ROWS[name]
    if steps is not None and "fine_tune" in recipe:
        recipe = {**recipe, "fine_tune": recipe["fine_tune"].model_copy(update={"steps": steps})}
    demos, samples = load()
    folder = OUT / name
    minutes = None
    if card is None:
        started = time.perf_counter()
        train(demos, samples, folder, TrainConfig(name=name, **recipe))
        minutes = (time.perf_counter() - started) / 60
    else:
        folder = card
    model = RewardModel.load(folder)
    prompt, candidates = _sixteen_held_out(model, demos, samples)
    result = {
        "row": name,
        "folder": str(folder.resolve()),
        "architecture": model.card.head.kind,
        "fine_tune_steps": (model.card.training_data.get("fine_tune") or {}).get("steps", 0),
        "from_card": str(card) if card else None,
        "training_minutes": minutes,
        "prompt": prompt,
        "candidates": candidates,
        **{column: model.card.metrics.get(column) for column in COLUMNS},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "results.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(result) + "\n")
    return result


def runtime_ms(folder: str, prompt: str, candidates: list[str]) -> float:
    """Median milliseconds to score the 16 candidates (after one warm-up call)."""
    with RewardModel.load(folder) as model:
        model.score(prompt, candidates)
        timings = []
        for _ in range(7):
            started = time.perf_counter()
            model.score(prompt, candidates)
            timings.append(1000 * (time.perf_counter() - started))
    return statistics.median(timings)


def _sixteen_held_out(
    model: RewardModel, demos: list[Example], samples: list[Example]
) -> tuple[str, list[str]]:
    """An input the trainer held out, and 16 of its candidates (repeated if it has fewer)."""
    held = [s for s in samples if s.prompt(model.card.prompt_format) in _validation(model, demos)]
    prompt = held[0].prompt(model.card.prompt_format)
    texts = [s.output for s in held if s.prompt(model.card.prompt_format) == prompt]
    return prompt, [texts[i % len(texts)] for i in range(16)]


def _validation(model: RewardModel, demos: list[Example]) -> set[str]:
    # the card keeps held-out demonstrations' scores only; the inputs it never trained on are
    # those absent from its demonstrations file (training demonstrations, up to 5,000)
    trained = {d["input"] for d in json.loads((model.folder / "demonstrations.json").read_text())}
    return {d.prompt(model.card.prompt_format) for d in demos} - trained


def table() -> None:
    """Every row measured so far; runtimes are measured now, one model after another in this
    process, so that they compare side by side."""
    latest: dict[str, dict[str, Any]] = {}
    for line in (OUT / "results.jsonl").open(encoding="utf-8"):
        row = json.loads(line)  # a row measured again updates the old one (None keeps it)
        merged = latest.setdefault(row["row"], {"training_minutes": None})
        merged.update({key: value for key, value in row.items() if value is not None})
    header = ["row", "arch", "steps", *COLUMNS, "train min", "ms/16"]
    print(" | ".join(header))
    for name in ROWS:
        if name not in latest:
            continue
        row = latest[name]
        cells = [name, row["architecture"], str(row["fine_tune_steps"])]
        cells += ["—" if row.get(c) is None else f"{row[c]:.3f}" for c in COLUMNS]
        minutes = row["training_minutes"]
        cells.append("card" if minutes is None else f"{minutes:.1f}")
        if "folder" in row:  # rows recorded before runtimes were measured here have none
            cells.append(f"{runtime_ms(row['folder'], row['prompt'], row['candidates']):.0f}")
        print(" | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run", help="train and measure one row")
    one.add_argument("row", choices=sorted(ROWS))
    one.add_argument("--card", type=Path, help="read the row from this bundled model instead")
    one.add_argument("--steps", type=int, help="fine-tuning steps (default: the row's)")
    commands.add_parser("table", help="print every row measured so far")
    args = parser.parse_args()
    if args.command == "run":
        print(json.dumps(run(args.row, args.card, args.steps), indent=2))
    else:
        table()


if __name__ == "__main__":
    main()
