"""`langchain-irl optimize`: choose a prompt's instruction and demonstrations with the reward."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from langchain_irl.cli.options import add_command, endpoint_options, positive


def add_parser(commands: Any) -> None:
    optimize = add_command(
        commands,
        "optimize",
        "search a prompt's instruction and few-shot demonstrations with the learned reward, "
        "once, so that each later call costs one call",
    )
    optimize.add_argument("--reward-model", required=True, help="a bundled name or a folder")
    optimize.add_argument(
        "--prompt", type=Path, required=True, help="the baseline ChatPromptTemplate, as JSON"
    )
    optimize.add_argument(
        "--inputs", type=Path, required=True, help="JSONL: values of the prompt's variables"
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
    optimize.add_argument("--max-calls", type=positive, default=300, help="every model call")
    optimize.add_argument("--log", type=Path, help="JSONL journal: a killed run resumes from it")
    optimize.add_argument("--seed", type=int, default=0, help="seed of the split and proposals")
    optimize.add_argument("--out", type=Path, required=True, help="the chosen prompt, as JSON")
    optimize.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from langchain_irl.data.formats import read_examples, read_objects
    from langchain_irl.optimize import load_prompt, optimize_prompt
    from langchain_irl.reward_model.model import RewardModel

    model = RewardModel.of(args.reward_model)
    prompt = load_prompt(args.prompt)
    inputs = read_objects(args.inputs)
    validation = read_objects(args.validation) if args.validation else None
    demonstrations = [
        {"input": example.prompt(model.card.prompt_format), "output": example.output}
        for example in (read_examples(args.demos) if args.demos else [])
    ]
    llm = _chat_model(args.model, args)
    proposer = _chat_model(args.proposer, args) if args.proposer else None
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
    )
    result.save(args.out)
    print(result.report.summary())
    print(f"wrote {args.out}")


def _chat_model(spec: str, args: argparse.Namespace) -> Any:
    """The model `spec` names; with --base-url, a bare name is a model at that endpoint."""
    from langchain_irl.chat_models.spec import chat_model

    if args.base_url and ":" not in spec:
        api_key = args.api_key or os.environ.get("OPENAI_API_KEY") or "unused"
        return chat_model(
            f"openai:{spec}", base_url=args.base_url, api_key=api_key, temperature=args.temperature
        )
    return chat_model(spec, temperature=args.temperature, api_key=args.api_key)
