"""Learning curves of the caption reward on contests held out by contest: is data or compute the
limit? Frozen all-MiniLM-L6-v2 (every text embedded once), maxent head with off-topic negatives.

    python benchmarks/learning_curves.py --data ../shared/data/caption_contest/train.jsonl.gz

Prints held-out pairwise accuracy (top-30 vs the crowd), Spearman with the human mean rating and
the best-of-16 gap closed, against the number of training contests (25 / 50 / all) and against
head training epochs (all contests), and saves both curves as PNGs (default: models/). Also the
supervised ceiling: the same head trained on the human ratings (Bradley-Terry on rating pairs),
and what share of it IRL reaches. The demo's five contests are never used. Needs the [train]
extra and the default encoder.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from langchain_irl.data.converters import caption_contest, read_caption_contests
from langchain_irl.evaluation.metrics import reward_metrics
from langchain_irl.evaluation.plots import line_plot
from langchain_irl.reward_model.encoder import OnnxEncoder
from langchain_irl.reward_model.features import candidate_features
from langchain_irl.train.encoder import export_encoder, load_encoder, tokenizer_json
from langchain_irl.train.head import head_forward
from langchain_irl.train.head_training import CandidateFeatures, train_head
from langchain_irl.train.pipeline import EncodedSet, encode_examples, supervised_rewards

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONTESTS = (641, 645, 648, 650, 654)
METRICS = ("pairwise_accuracy", "spearman_gold", "best_of_16_gap_closed")


def fit_rewards(
    train: EncodedSet,
    valid: EncodedSet,
    epochs: int = 400,
    hidden: tuple[int, ...] = (),
    seed: int = 0,
) -> np.ndarray:
    """The validation records' rewards under a maxent head (off-topic 2) fit on `train`."""
    features = ("log_tokens",)
    data = CandidateFeatures.of(
        train.prompt_embeddings,
        train.groups,
        train.embeddings,
        candidate_features(train.texts, train.token_counts, features),
    )
    layers = train_head(
        data, train.is_demo, "maxent", hidden=hidden, off_topic=2, max_epochs=epochs, seed=seed
    )
    return head_forward(layers, valid.phi(features))


def fit_and_score(train: EncodedSet, valid: EncodedSet, epochs: int) -> dict[str, float]:
    rewards = fit_rewards(train, valid, epochs)
    return reward_metrics(rewards, valid.groups, valid.is_demo, valid.gold)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="caption-contest JSONL(.gz)")
    parser.add_argument("--validation-contests", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "models")
    args = parser.parse_args()

    contests = [c for c in read_caption_contests(args.data) if c.number not in DEMO_CONTESTS]
    order = np.random.default_rng(0).permutation([c.number for c in contests])
    held_out = set(order[: args.validation_contests].tolist())
    training = order[args.validation_contests :].tolist()
    demos, samples = caption_contest(args.data, top=30, exclude=DEMO_CONTESTS)
    with tempfile.TemporaryDirectory() as tmp:
        encoder, folder = load_encoder()
        export_encoder(encoder, folder, Path(tmp) / "fp32.onnx")
        tokenizer_json(folder, Path(tmp) / "tokenizer.json")
        onnx = OnnxEncoder.from_files(Path(tmp) / "fp32.onnx", Path(tmp) / "tokenizer.json", 128)
        data = encode_examples(onnx, demos, samples, "last_user")
    number_of = {c.description: c.number for c in contests}
    contest_of_record = np.array([number_of[data.prompts[g]] for g in data.groups])
    valid = data.subset(np.isin(contest_of_record, list(held_out)))

    by_contests = {}
    for count in (25, 50, len(training)):
        subset = data.subset(np.isin(contest_of_record, training[:count]))
        by_contests[count] = fit_and_score(subset, valid, epochs=400)
    by_epochs = {}
    everything = data.subset(np.isin(contest_of_record, training))
    for epochs in (10, 25, 50, 100, 200, 400):
        by_epochs[epochs] = fit_and_score(everything, valid, epochs=epochs)

    rewards = supervised_rewards(everything, valid)
    assert rewards is not None, "caption contests carry ratings"
    ceiling = reward_metrics(rewards, valid.groups, valid.is_demo, valid.gold)
    irl = by_contests[len(training)]
    print(f"held-out contests: {len(held_out)}; frozen encoder, maxent, off-topic 2\n")
    print(
        f"{'supervised ceiling (BT on ratings)':>34}"
        + "".join(f"{ceiling[m]:>12.4f}" for m in METRICS)
    )
    print(f"{'IRL from demonstrations':>34}" + "".join(f"{irl[m]:>12.4f}" for m in METRICS))
    print(
        f"{'share of the ceiling above chance':>34}"
        + "".join(
            f"{(irl[m] - base) / (ceiling[m] - base):>12.2f}"
            for m, base in zip(METRICS, (0.5, 0, 0), strict=True)
        )
        + "\n"
    )
    header = f"{'':>22}" + "".join(f"{m:>24}" for m in METRICS)
    for title, curve in (("training contests", by_contests), ("head epochs", by_epochs)):
        print(header)
        for x, metrics in curve.items():
            print(f"{title:>16} {x:>5}" + "".join(f"{metrics[m]:>24.4f}" for m in METRICS))
        print()
    for name, curve, label in (
        ("learning_curve_contests.png", by_contests, "training contests"),
        ("learning_curve_epochs.png", by_epochs, "head training epochs"),
    ):
        series = {m: (list(map(float, curve)), [curve[x][m] for x in curve]) for m in METRICS}
        path = line_plot(series, args.out / name, f"caption reward vs {label}", label, "held out")
        print(f"plot: {path}")


if __name__ == "__main__":
    main()
