"""`langchain-irl train`: learn a reward-model folder from demonstrations (or preference pairs)."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any, cast

from langchain_irl.cli.options import (
    ENCODER_HELP,
    add_command,
    check_outputs,
    example_options,
    load_examples,
    positive,
    share,
)
from langchain_irl.data.edits import EDIT_WEIGHT, EDITS
from langchain_irl.reward_model.card import Architecture
from langchain_irl.reward_model.features import FEATURES, TRAINED_FEATURES
from langchain_irl.train.config import PREFIX_TOKENS


def add_parser(commands: Any) -> None:
    train = add_command(commands, "train", "learn a reward model folder from demonstrations")
    example_options(train)
    train.add_argument("--out", type=Path, required=True, help="model folder to write")
    train.add_argument(
        "--objective",
        choices=["maxent", "bt", "logistic", "feature-matching", "feature-matching-whitened"],
        help="maxent: demo vs its samples under a softmax (default; bt with --pairs); "
        "bt: Bradley-Terry pairs; logistic: demo-vs-sample discriminator; "
        "feature-matching(-whitened): closed form",
    )
    train.add_argument(
        "--architecture",
        choices=["bi", "cross"],
        default="bi",
        help="bi: input and output encoded apart, the input once per call (default); cross: "
        "each (input, output) read as one sequence, costlier per candidate (models/README.md)",
    )
    train.add_argument("--hidden", type=int, nargs="*", default=[], help="head hidden sizes")
    train.add_argument(
        "--off-topic",
        type=int,
        default=0,
        help="demonstrations of other inputs added to each candidate set as negatives, so that "
        "the reward depends on the input (the card's matching_accuracy measures it)",
    )
    train.add_argument("--encoder", type=Path, help=ENCODER_HELP)
    train.add_argument("--max-tokens", type=positive, default=128, help="tokens the encoder reads")
    train.add_argument(
        "--candidate-chunks",
        type=positive,
        default=1,
        help="windows of --max-tokens read from each output, their embeddings averaged "
        "(long answers: 4 reads 504 tokens of all-MiniLM-L6-v2)",
    )
    train.add_argument(
        "--embedding-cache",
        type=Path,
        help="a folder that keeps frozen embeddings between runs (keyed by encoder and text)",
    )
    train.add_argument(
        "--prompt-format",
        choices=["last_user", "transcript"],
        default=None,
        help="how a chat input becomes text (default: transcript with --pairs, else last_user)",
    )
    train.add_argument(
        "--prompt-keeps",
        choices=["start", "end"],
        default=None,
        help="which part of a prompt longer than --max-tokens the encoder reads "
        "(default: the end of a transcript, the start of anything else)",
    )
    train.add_argument("--no-quantize", action="store_true", help="ship the fp32 encoder")
    train.add_argument(
        "--validation-share", type=share, default=0.15, help="share of inputs held out"
    )
    train.add_argument("--seed", type=int, default=0, help="seed of the split and of training")
    train.add_argument("--name", default=None, help="model name (default: the folder's name)")
    train.add_argument("--description", default="", help="one paragraph for the card")
    train.add_argument("--skip-invalid", action="store_true", help="skip malformed lines")
    robust = train.add_argument_group("robustness: edit negatives, ensemble, prefix head")
    robust.add_argument(
        "--edits",
        nargs="*",
        choices=list(EDITS),
        default=list(EDITS),
        metavar="EDIT",
        help="edits whose copies of each demonstration are ranked below it, among "
        f"{', '.join(repr(e) for e in EDITS)}; the option alone: none (default: all of them)",
    )
    robust.add_argument(
        "--edit-weight", type=float, default=EDIT_WEIGHT, help="weight of the edit ranking term"
    )
    robust.add_argument(
        "--edit-samples",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also rank each policy sample above its own edited copies (default: on)",
    )
    robust.add_argument(
        "--features",
        nargs="+",
        choices=list(FEATURES),
        default=list(TRAINED_FEATURES),
        metavar="FEATURE",
        help=f"scalars the head reads beside the embeddings, among {', '.join(FEATURES)} "
        "(default: all)",
    )
    robust.add_argument(
        "--members", type=positive, default=1, help="heads in the reward's ensemble"
    )
    robust.add_argument(
        "--prefix-head",
        choices=["if-better", "always", "never"],
        default="if-better",
        help="ship the prefix head speculative rejection judges streams by: if-better ranks "
        "held-out beginnings better than the reward does (else the reward judges them)",
    )
    robust.add_argument(
        "--prefix-tokens",
        type=positive,
        nargs="+",
        default=list(PREFIX_TOKENS),
        metavar="N",
        help="prefix lengths the prefix head learns from, increasing (default: "
        f"{' '.join(map(str, PREFIX_TOKENS))}, around speculative rejection's checkpoints)",
    )
    tuning = train.add_argument_group("encoder fine-tuning (what moves quality most)")
    tuning.add_argument("--fine-tune-steps", type=int, default=0, help="0: frozen encoder")
    tuning.add_argument("--fine-tune-batch", type=positive, default=16, help="demos per step")
    tuning.add_argument(
        "--samples-per-demo", type=positive, default=1, help="policy samples per demo"
    )
    tuning.add_argument("--fine-tune-layers", type=positive, help="train the top N layers only")
    tuning.add_argument("--checkpoint-dir", type=Path, help="resumable checkpoints here")
    tuning.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where fine-tuning runs (auto: CUDA when PyTorch sees a GPU; only CPU runs are "
        "byte-reproducible)",
    )
    train.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from langchain_irl.extras import require

    for module in ("torch", "transformers", "onnx"):
        require(module, "training", "train")
    demos, samples = load_examples(args)
    check_outputs(folders=[args.out, args.embedding_cache, args.checkpoint_dir])
    from langchain_irl.train.config import FineTuneConfig, TrainConfig
    from langchain_irl.train.pipeline import train

    fine_tune = None
    if args.fine_tune_steps:
        fine_tune = FineTuneConfig(
            steps=args.fine_tune_steps,
            batch=args.fine_tune_batch,
            samples_per_demo=args.samples_per_demo,
            layers=args.fine_tune_layers,
            checkpoint_dir=args.checkpoint_dir,
            device=args.device,
        )
    config = TrainConfig(
        objective=args.objective or ("bt" if args.pairs else "maxent"),
        # --architecture's choices (bi, cross) make it one of the two; pydantic checks it again.
        architecture=cast(Architecture, f"{args.architecture}-encoder"),
        hidden=tuple(args.hidden),
        off_topic=args.off_topic,
        edits=tuple(args.edits),
        edit_samples=args.edit_samples,
        edit_weight=args.edit_weight,
        features=tuple(args.features),
        members=args.members,
        prefix_head=args.prefix_head,
        prefix_tokens=tuple(args.prefix_tokens),
        fine_tune=fine_tune,
        encoder_dir=args.encoder,
        max_tokens=args.max_tokens,
        candidate_chunks=args.candidate_chunks,
        embedding_cache=args.embedding_cache,
        prompt_format=args.prompt_format or ("transcript" if args.pairs else "last_user"),
        prompt_keeps=args.prompt_keeps,
        quantize=not args.no_quantize,
        validation_share=args.validation_share,
        seed=args.seed,
        name=args.name,
        description=args.description,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's and the ONNX exporter's, none of them the user's
        card = train(demos, samples, args.out, config)
    print(f"wrote {args.out}")
    for key, value in sorted(card.metrics.items()):
        print(f"  {key:>24}: {value:.4f}")
