"""The `langchain-irl` command line: data conversion, training, scoring and the offline demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_irl.card import ModelFolderError
from langchain_irl.data import DataFileError

EPILOG = """\
examples:
  langchain-irl data caption-contest data/caption_contest/dev.jsonl --out-dir build/captions
  langchain-irl collect --demos demos.jsonl --out samples.jsonl --k 8 --openai-model gpt-4o-mini
  langchain-irl train --demos build/captions/demos.jsonl --samples build/captions/samples.jsonl \\
      --out models/my-model [--fine-tune-steps 600]
  langchain-irl eval models/my-model --demos build/captions/demos.jsonl \\
      --samples build/captions/samples.jsonl
  langchain-irl score models/caption-humor --prompt "A cat chairs a board meeting." \\
      "Any other business?" "Meow."
  langchain-irl demo
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("root", "onnxruntime", "transformers", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.run(args) or 0)
    except (DataFileError, ModelFolderError, FileNotFoundError, ValueError) as exc:
        print(f"langchain-irl: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="langchain-irl",
        description="Learn a reward from demonstrations and use it with LangChain.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="convert a bundled public dataset to JSONL")
    datasets = data.add_subparsers(dest="dataset", required=True)
    captions = datasets.add_parser(
        "caption-contest",
        help="New Yorker caption contest -> demos.jsonl (top-rated) + samples.jsonl (the crowd)",
    )
    captions.add_argument("file", type=Path)
    captions.add_argument("--out-dir", type=Path, required=True)
    captions.add_argument("--top", type=int, default=30, help="demonstrations per contest")
    captions.add_argument(
        "--sample-chunks",
        nargs="+",
        default=["middle", "bottom"],
        help="which blocks of entries are policy samples (default: middle bottom)",
    )
    captions.add_argument("--exclude-contests", type=int, nargs="*", default=[])
    captions.set_defaults(run=_run_caption_contest)
    hh = datasets.add_parser("hh-rlhf", help="Anthropic HH-RLHF -> preference pairs JSONL")
    hh.add_argument("file", type=Path)
    hh.add_argument("--out", type=Path, required=True)
    hh.set_defaults(run=_run_hh_rlhf)

    collect = commands.add_parser(
        "collect", help="sample the base model k times for every demonstration input"
    )
    collect.add_argument("--demos", type=Path, required=True, help="demonstrations JSONL")
    collect.add_argument("--out", type=Path, required=True, help="samples JSONL (append-only)")
    collect.add_argument("--k", type=int, default=8, help="samples per input")
    source = collect.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model",
        help="a LangChain chat model: module:attribute (an instance or a factory), or an "
        "init_chat_model string such as openai:gpt-4o-mini",
    )
    source.add_argument(
        "--openai-model", help="model name at an OpenAI-compatible endpoint (uses n=k)"
    )
    collect.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"))
    collect.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"))
    collect.add_argument("--temperature", type=float, default=1.0)
    collect.add_argument("--concurrency", type=int, default=8)
    collect.add_argument("--retries", type=int, default=4)
    collect.add_argument("--skip-invalid", action="store_true", help="skip malformed demo lines")
    collect.set_defaults(run=_run_collect)

    train = commands.add_parser("train", help="learn a reward model folder from demonstrations")
    train.add_argument("--demos", type=Path, help="demonstrations JSONL")
    train.add_argument("--samples", type=Path, help="policy samples JSONL")
    train.add_argument("--pairs", type=Path, help="preference pairs JSONL (instead)")
    train.add_argument("--out", type=Path, required=True, help="model folder to write")
    train.add_argument(
        "--objective",
        choices=["maxent", "bt", "logistic", "feature-matching", "feature-matching-whitened"],
        help="maxent: demo vs its samples under a softmax (default; bt with --pairs); "
        "bt: Bradley-Terry pairs; "
        "logistic: demo-vs-sample discriminator; feature-matching(-whitened): closed form",
    )
    train.add_argument("--hidden", type=int, nargs="*", default=[], help="head hidden sizes")
    train.add_argument("--encoder", type=Path, help="local Hugging Face model folder")
    train.add_argument("--max-tokens", type=int, default=128)
    train.add_argument("--prompt-format", choices=["last_user", "transcript"], default="last_user")
    train.add_argument("--no-quantize", action="store_true", help="ship the fp32 encoder")
    train.add_argument("--validation-share", type=float, default=0.15)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--name", default=None, help="model name (default: the folder's name)")
    train.add_argument("--description", default="")
    train.add_argument("--skip-invalid", action="store_true", help="skip malformed lines")
    tuning = train.add_argument_group("encoder fine-tuning (what moves quality most)")
    tuning.add_argument("--fine-tune-steps", type=int, default=0, help="0: frozen encoder")
    tuning.add_argument("--fine-tune-batch", type=int, default=16, help="demos per step")
    tuning.add_argument("--samples-per-demo", type=int, default=1, help="negatives per demo")
    tuning.add_argument("--fine-tune-layers", type=int, help="train the top N layers (all)")
    tuning.add_argument("--checkpoint-dir", type=Path, help="resumable checkpoints here")
    train.set_defaults(run=_run_train)

    evaluate = commands.add_parser(
        "eval", help="metrics, plots and suspicious demonstrations of a model on data"
    )
    evaluate.add_argument("model", type=Path)
    evaluate.add_argument("--demos", type=Path, help="demonstrations JSONL")
    evaluate.add_argument("--samples", type=Path, help="policy samples JSONL")
    evaluate.add_argument("--pairs", type=Path, help="preference pairs JSONL (instead)")
    evaluate.add_argument("--plots", type=Path, help="folder for PNG plots (default: the model's)")
    evaluate.add_argument("--show-suspicious", type=int, default=10)
    evaluate.set_defaults(run=_run_eval)

    score = commands.add_parser("score", help="score candidate outputs for a prompt")
    score.add_argument("model", type=Path)
    score.add_argument("--prompt", required=True)
    score.add_argument("candidates", nargs="+")
    score.add_argument(
        "--explain", action="store_true", help="percentile and the nearest demonstrations"
    )
    score.set_defaults(run=_run_score)

    demo = commands.add_parser("demo", help="offline demo on cartoons the bundled model never saw")
    demo.add_argument(
        "--model",
        help="use this model at an OpenAI-compatible endpoint (OPENAI_BASE_URL, OPENAI_API_KEY) "
        "instead of the offline crowd of contest entrants",
    )
    demo.add_argument("--reward-model", type=Path, help="default: models/caption-humor")
    demo.add_argument("--data", type=Path, help="default: data/caption_contest/dev.jsonl")
    demo.add_argument("--plot", type=Path, default=Path("out/best_of_n_demo.png"))
    demo.add_argument("--n", type=int, default=16, help="candidates per cartoon")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_run_demo)
    return parser


def _run_caption_contest(args: argparse.Namespace) -> None:
    from langchain_irl.converters import caption_contest
    from langchain_irl.data import write_jsonl

    demos, samples = caption_contest(
        args.file, top=args.top, sample_chunks=args.sample_chunks, exclude=args.exclude_contests
    )
    for name, records in (("demos.jsonl", demos), ("samples.jsonl", samples)):
        count = write_jsonl(args.out_dir / name, (r.to_json() for r in records))
        print(f"wrote {count} records to {args.out_dir / name}")


def _run_hh_rlhf(args: argparse.Namespace) -> None:
    from langchain_irl.converters import hh_rlhf
    from langchain_irl.data import write_jsonl

    count = write_jsonl(args.out, (pair.to_json() for pair in hh_rlhf(args.file)))
    print(f"wrote {count} pairs to {args.out}")


def _run_collect(args: argparse.Namespace) -> int:
    import asyncio

    from langchain_irl.collect import chat_model_sampler, collect, openai_sampler
    from langchain_irl.data import read_examples

    demos = read_examples(args.demos, skip_invalid=args.skip_invalid)
    if args.openai_model:
        sampler = openai_sampler(
            args.openai_model,
            base_url=args.base_url,
            api_key=args.api_key or "unused",
            temperature=args.temperature,
        )
    else:
        sampler = chat_model_sampler(_chat_model(args.model))
    report = asyncio.run(
        collect(
            [demo.input for demo in demos],
            args.k,
            args.out,
            sampler,
            concurrency=args.concurrency,
            retries=args.retries,
        )
    )
    print(
        f"{report.inputs} inputs: {report.already_cached} samples were cached, "
        f"{report.collected} collected into {args.out}"
    )
    if report.failed_inputs:
        print(f"{len(report.failed_inputs)} inputs failed; run again to resume", file=sys.stderr)
        return 1
    return 0


def _chat_model(spec: str) -> Any:
    """`module:attribute` (a chat model or a zero-argument factory) or an init_chat_model string."""
    import importlib

    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        module = None
    if module is not None and attribute:
        value = getattr(module, attribute)
        return value() if callable(value) and not hasattr(value, "invoke") else value
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:
        raise ValueError(
            f"{spec!r} is not module:attribute, and init_chat_model needs `pip install langchain`"
        ) from exc
    return init_chat_model(spec)


def _run_train(args: argparse.Namespace) -> None:
    from langchain_irl.train.finetune import FineTuneConfig
    from langchain_irl.train.pipeline import TrainConfig, train

    demos, samples = _examples(args)
    fine_tune = None
    if args.fine_tune_steps:
        fine_tune = FineTuneConfig(
            steps=args.fine_tune_steps,
            batch=args.fine_tune_batch,
            samples_per_demo=args.samples_per_demo,
            layers=args.fine_tune_layers,
            checkpoint_dir=args.checkpoint_dir,
        )
    config = TrainConfig(
        objective=args.objective or ("bt" if args.pairs else "maxent"),
        hidden=tuple(args.hidden),
        fine_tune=fine_tune,
        encoder_dir=args.encoder,
        max_tokens=args.max_tokens,
        prompt_format=args.prompt_format,
        quantize=not args.no_quantize,
        validation_share=args.validation_share,
        seed=args.seed,
        name=args.name,
        description=args.description,
    )
    card = train(demos, samples, args.out, config)
    print(f"wrote {args.out}")
    for key, value in sorted(card.metrics.items()):
        print(f"  {key:>24}: {value:.4f}")


def _run_eval(args: argparse.Namespace) -> None:
    from langchain_irl.evaluate import evaluate
    from langchain_irl.reward_model import RewardModel

    model = RewardModel.load(args.model)
    demos, samples = _examples(args)
    report = evaluate(model, demos, samples, plots_dir=args.plots or args.model)
    print(f"{model.name} on {len(demos)} demonstrations and {len(samples)} policy samples:")
    for key, value in sorted(report.metrics.items()):
        print(f"  {key:>24}: {value:.4f}")
    for path in report.plots:
        print(f"plot: {path}")
    print(f"{len(report.suspicious)} demonstrations score below most of their own policy samples")
    for demo in report.suspicious[: args.show_suspicious]:
        print(f"  beaten by {demo.beaten_by:4.0%}  reward {demo.reward:+.2f}  {demo.output[:90]!r}")


def _examples(args: argparse.Namespace) -> tuple[list, list]:
    """Demonstrations and policy samples from --demos/--samples, or from --pairs."""
    from langchain_irl.data import Example, read_examples, read_pairs

    if args.pairs:
        pairs = read_pairs(args.pairs, skip_invalid=getattr(args, "skip_invalid", False))
        return (
            [Example(p.input, p.chosen) for p in pairs],
            [Example(p.input, p.rejected) for p in pairs],
        )
    if not (args.demos and args.samples):
        raise ValueError("give --demos and --samples, or --pairs")
    skip = getattr(args, "skip_invalid", False)
    return read_examples(args.demos, skip_invalid=skip), read_examples(
        args.samples, skip_invalid=skip
    )


def _run_score(args: argparse.Namespace) -> None:
    from langchain_irl.reward_model import RewardModel

    model = RewardModel.load(args.model)
    scores = model.score(args.prompt, args.candidates)
    calibrated = model.card.calibration is not None
    for index in scores.argsort()[::-1]:
        percentile = f"  p{model.percentile(float(scores[index])):5.1f}" if calibrated else ""
        print(f"{scores[index]:+8.3f}{percentile}  {args.candidates[index]}")
        if args.explain:
            print(
                "    "
                + str(model.explain(args.prompt, args.candidates[index])).replace("\n", "\n    ")
            )


def _run_demo(args: argparse.Namespace) -> None:
    from langchain_irl.demo import run_demo

    run_demo(
        model_dir=args.reward_model,
        data_file=args.data,
        n=args.n,
        seed=args.seed,
        llm_name=args.model,
        plot=args.plot,
    )


if __name__ == "__main__":
    raise SystemExit(main())
