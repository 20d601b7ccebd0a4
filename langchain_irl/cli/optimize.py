"""`langchain-irl optimize`: choose a prompt's instruction and demonstrations with the reward.

The baseline prompt is a ChatPromptTemplate in langchain-core's JSON (examples/prompt.json), or a
plain-text instruction (--system, or a .txt file): the system message, then each input's `input`
as the user message. Every file is checked before the first model call: each --inputs and
--validation row has every variable of the prompt, --demos has demonstrations, --log is this
command's log, and the model endpoint answers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from langchain_irl.cli.options import (
    add_command,
    check_outputs,
    endpoint_chat_model,
    endpoint_options,
    positive,
    prompt_options,
    read_prompt,
    read_rows,
)


def add_parser(commands: Any) -> None:
    optimize = add_command(
        commands,
        "optimize",
        "search a prompt's instruction and few-shot demonstrations with the learned reward, "
        "once, so that each later call costs one call",
    )
    optimize.add_argument("--reward-model", required=True, help="a bundled name or a folder")
    prompt_options(optimize, "the baseline prompt")
    optimize.add_argument(
        "--inputs",
        type=Path,
        required=True,
        help="JSONL: values of the prompt's variables, one object a line ({'input': ...} for a "
        "plain-text prompt)",
    )
    optimize.add_argument("--demos", type=Path, help="demonstrations JSONL (input, output)")
    optimize.add_argument(
        "--validation", type=Path, help="JSONL inputs for the final check (default: a share)"
    )
    optimize.add_argument(
        "--model",
        required=True,
        help="the chat model the prompt is for: provider:model, module:attribute, or with "
        "--base-url a model name at that OpenAI-compatible endpoint",
    )
    optimize.add_argument(
        "--proposer", help="the model that writes instructions (default: --model)"
    )
    endpoint_options(optimize)
    optimize.add_argument("--temperature", type=float, default=0.7, help="sampling temperature")
    optimize.add_argument(
        "--max-calls",
        type=positive,
        default=300,
        help="model calls the whole run may make, proposals and the final check included",
    )
    optimize.add_argument("--log", type=Path, help="JSONL journal: a killed run resumes from it")
    optimize.add_argument("--seed", type=int, default=0, help="seed of the split and proposals")
    optimize.add_argument("--out", type=Path, required=True, help="the chosen prompt, as JSON")
    optimize.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from langchain_irl.data.formats import read_examples
    from langchain_irl.data.jsonl import DataFileError
    from langchain_irl.optimize import optimize_prompt
    from langchain_irl.reward_model.model import RewardModel

    check_outputs(files=[args.out, args.log])
    prompt = read_prompt(args)
    variables = sorted(prompt.input_variables)
    inputs = read_rows(args.inputs, variables, "inputs")
    validation = read_rows(args.validation, variables, "inputs") if args.validation else None
    examples = read_examples(args.demos) if args.demos else []
    if args.demos and not examples:
        raise DataFileError(f"{args.demos}: no demonstrations")
    _check_log(args.log)
    model = RewardModel.of(args.reward_model)
    demonstrations = [
        {"input": example.prompt(model.card.prompt_format), "output": example.output}
        for example in examples
    ]
    llm = endpoint_chat_model(args.model, args, temperature=args.temperature)
    proposer = None
    if args.proposer:
        proposer = endpoint_chat_model(args.proposer, args, temperature=args.temperature)
    try:
        result = optimize_prompt(
            llm,
            model,
            prompt,
            inputs,
            demonstrations=demonstrations,
            proposer=proposer,
            max_calls=args.max_calls,
            validation=validation,
            seed=args.seed,
            log=args.log,
            progress=sys.stderr.isatty(),
        )
    except (ValueError, RuntimeError) as exc:
        raise ValueError(_in_option_terms(str(exc), args)) from exc
    result.save(args.out)
    print(result.report.summary())
    print(f"wrote {args.out}")


def _in_option_terms(message: str, args: argparse.Namespace) -> str:
    """A message of `optimize_prompt` in this command's terms: its parameter `max_calls` as
    --max-calls, and "inputs" with the files they came from."""
    if "max_calls" in message:
        return message.replace("max_calls=", "--max-calls ").replace("max_calls", "--max-calls")
    if "inputs" in message:
        files = [f"--inputs {args.inputs}"]
        files += [f"--validation {args.validation}"] if args.validation else []
        return f"{', '.join(files)}: {message}"
    return message


def _check_log(path: Path | None) -> None:
    """A --log to resume from holds this command's records, JSON objects with a "kind", one a
    line; a torn last line (a run killed mid-write) is the log's own to cut off."""
    from langchain_irl.data.jsonl import DataFileError, numbered_lines

    if path is None or not path.exists():
        return
    lines = list(numbered_lines(path))
    if lines and not lines[-1][1].endswith("\n"):
        lines.pop()
    for number, line in lines:
        try:
            record = json.loads(line)
        except ValueError as exc:
            record = exc
        if not isinstance(record, dict) or "kind" not in record:
            raise DataFileError(
                f"{path}:{number}: not a log of `langchain-irl optimize` (give a new file, or the "
                "--log of the run to resume)"
            )
