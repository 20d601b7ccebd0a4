"""Which levers pay for the caption reward? A frozen encoder (all-MiniLM-L6-v2 unless `--encoder`
names another local folder), one table, one run.

    python benchmarks/caption_levers.py --data ../shared/data/caption_contest/train.jsonl.gz

Every variant is trained on the same training contests and measured on the same 15 contests held
out by contest (those of `learning_curves.py`): top-30 captions against a uniform sample of the
rest, as the card measures. Variants: how many top captions demonstrate (15 / 30 / 60), a hidden
layer, ensembles of five heads (averaged rewards, seeds 0-4), and the supervised ceiling (the head
trained on the ratings). Embeddings are cached on disk (`--cache`), so a second run takes seconds
for the embedding. The demo's five contests are never used. Needs the [train] extra.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from learning_curves import DEMO_CONTESTS, METRICS, fit_rewards

from langchain_irl.data.converters import caption_contest, read_caption_contests
from langchain_irl.evaluation.metrics import reward_metrics
from langchain_irl.reward_model.encoder import OnnxEncoder
from langchain_irl.train.embedding_cache import CachedEncoder
from langchain_irl.train.encoder import export_encoder, load_encoder, tokenizer_json
from langchain_irl.train.pipeline import EncodedSet, encode_examples, supervised_rewards

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="caption-contest JSONL(.gz)")
    parser.add_argument("--validation-contests", type=int, default=15)
    parser.add_argument(
        "--encoder", type=Path, help="a local Hugging Face encoder folder (default: MiniLM-L6)"
    )
    parser.add_argument("--cache", type=Path, default=ROOT / "build" / "embedding-cache")
    args = parser.parse_args()

    contests = [c for c in read_caption_contests(args.data) if c.number not in DEMO_CONTESTS]
    order = np.random.default_rng(0).permutation([c.number for c in contests])
    held_out = set(order[: args.validation_contests].tolist())
    number_of = {c.description: c.number for c in contests}

    with tempfile.TemporaryDirectory() as tmp:
        encoder, folder = load_encoder(args.encoder)
        files = [Path(tmp) / "fp32.onnx", Path(tmp) / "tokenizer.json"]
        export_encoder(encoder, folder, files[0])
        tokenizer_json(folder, files[1])
        cached = CachedEncoder(OnnxEncoder.from_files(*files, 128), args.cache, files)

        def split(top: int) -> tuple[EncodedSet, EncodedSet]:
            demos, samples = caption_contest(args.data, top=top, exclude=DEMO_CONTESTS)
            data = encode_examples(cached, demos, samples, "last_user")
            contest = np.array([number_of[data.prompts[g]] for g in data.groups])
            valid = np.isin(contest, list(held_out))
            return data.subset(~valid), data.subset(valid)

        train_30, valid = split(30)  # every variant is measured on these validation records
        trains = {15: split(15)[0], 30: train_30, 60: split(60)[0]}

    def ensemble(hidden: tuple[int, ...]) -> np.ndarray:
        return np.mean([fit_rewards(train_30, valid, hidden=hidden, seed=s) for s in range(5)], 0)

    def ceiling() -> np.ndarray:
        rewards = supervised_rewards(train_30, valid)
        assert rewards is not None, "caption contests carry ratings"
        return rewards

    variants: dict[str, Callable[[], np.ndarray]] = {
        "top-30 demos, linear head (base)": lambda: fit_rewards(train_30, valid),
        "top-15 demos": lambda: fit_rewards(trains[15], valid),
        "top-60 demos": lambda: fit_rewards(trains[60], valid),
        "hidden layer of 64": lambda: fit_rewards(train_30, valid, hidden=(64,)),
        "5 linear heads, averaged": lambda: ensemble(()),
        "5 heads of hidden 64, averaged": lambda: ensemble((64,)),
        "supervised ceiling (BT on ratings)": ceiling,
    }
    print(f"held-out contests: {len(held_out)}; frozen {folder.name}, maxent, off-topic 2\n")
    print(f"{'variant':>36}" + "".join(f"{m:>24}" for m in METRICS) + f"{'train s':>9}")
    for name, fit in variants.items():
        started = time.perf_counter()
        rewards = fit()
        seconds = time.perf_counter() - started
        metrics = reward_metrics(rewards, valid.groups, valid.is_demo, valid.gold)
        print(f"{name:>36}" + "".join(f"{metrics[m]:>24.4f}" for m in METRICS) + f"{seconds:>9.1f}")


if __name__ == "__main__":
    main()
