"""`langchain-irl distill`: teach the model itself what the reward prefers (best-of-n rounds, TRL
and LoRA), into a Hugging Face model folder; or, for a hosted model, only sample, score and
export OpenAI fine-tuning files.

The prompt is a ChatPromptTemplate as langchain-core's JSON (examples/prompt.json) or a
plain-text instruction, as `optimize` reads it; each --inputs row holds its variables.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, get_args

from langchain_irl.cli.options import (
    add_command,
    check_outputs,
    endpoint_chat_model,
    endpoint_options,
    positive,
    prompt_options,
    read_prompt,
    read_rows,
    share,
)


def add_parser(commands: Any) -> None:
    from langchain_irl.policy.chat import Device
    from langchain_irl.policy.training import Method

    distill = add_command(
        commands,
        "distill",
        "fine-tune a local model on its own best-of-n answers by the reward (SFT or DPO, LoRA), "
        "round after round, into a model folder; or export OpenAI fine-tuning files",
    )
    distill.add_argument(
        "--base",
        help="the model to teach: a local Hugging Face causal-LM folder or a .gguf file; "
        "without it, nothing is trained: --model samples and --export-openai gets the files",
    )
    distill.add_argument("--reward-model", required=True, help="a bundled name or a folder")
    prompt_options(distill, "the prompt")
    distill.add_argument(
        "--inputs", type=Path, required=True, help="JSONL: the prompt's variables, one row each"
    )
    distill.add_argument(
        "--validation",
        type=Path,
        help="JSONL held-out inputs for the before/after check (default: --held-out of --inputs)",
    )
    distill.add_argument(
        "--held-out", type=share, default=0.2, help="share of --inputs held back for the check"
    )
    distill.add_argument(
        "--demonstrations",
        type=Path,
        help="JSONL: the prompt's variables and an 'output' each; cloned first (round 0, SFT), "
        "and the rounds improve the clone",
    )
    distill.add_argument("--out", type=Path, required=True, help="the student's model folder")
    distill.add_argument("--rounds", type=positive, default=1, help="sample-score-train rounds")
    distill.add_argument("--n", type=positive, default=4, help="answers per input per round")
    distill.add_argument(
        "--method",
        choices=get_args(Method),
        default="sft",
        help="sft: RAFT on each input's best answer; dpo: best against worst",
    )
    distill.add_argument(
        "--keep-percentile",
        type=float,
        default=0.0,
        help="sft: keep best answers at or above this percentile of the round's best answers",
    )
    distill.add_argument(
        "--margin", type=float, default=0.0, help="dpo: least reward margin of a kept pair"
    )
    distill.add_argument("--steps", type=positive, default=50, help="training steps per round")
    distill.add_argument("--batch-size", type=positive, default=4, help="rows per step")
    distill.add_argument("--learning-rate", type=float, default=2e-4, help="LoRA learning rate")
    distill.add_argument("--lora-rank", type=positive, default=16, help="LoRA rank")
    distill.add_argument("--max-tokens", type=positive, default=64, help="new tokens per answer")
    distill.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    distill.add_argument(
        "--eval-samples", type=positive, default=4, help="answers per held-out input"
    )
    distill.add_argument(
        "--device", choices=get_args(Device), default="auto", help="auto: CUDA if there is one"
    )
    distill.add_argument("--seed", type=int, default=0, help="seed of the split and sampling")
    distill.add_argument(
        "--model",
        help="a chat model serving the base model (provider:model, module:attribute, or with "
        "--base-url a model name there, e.g. a llama.cpp server of the same GGUF file): round "
        "1 and the check before training sample through it; later rounds sample locally. "
        "Without --base: the model whose answers are scored and exported",
    )
    endpoint_options(distill)
    distill.add_argument(
        "--export-openai",
        type=Path,
        help="also write the rounds' picks as OpenAI fine-tuning files here (sft.jsonl, "
        "preference.jsonl)",
    )
    distill.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from langchain_irl.data.jsonl import DataFileError

    check_outputs(folders=[args.out, args.export_openai])
    if not args.base and not (args.model and args.export_openai):
        raise ValueError("give --base (a model to train), or --model and --export-openai")
    prompt = read_prompt(args)
    variables = sorted(prompt.input_variables)
    inputs = read_rows(args.inputs, variables, "inputs")
    validation = read_rows(args.validation, variables, "inputs") if args.validation else None
    demonstrations = None
    if args.demonstrations:
        demonstrations = read_rows(args.demonstrations, [*variables, "output"], "demonstrations")
    chat = None
    if args.model:
        params = {"temperature": args.temperature, "max_tokens": args.max_tokens}
        chat = endpoint_chat_model(args.model, args, **params)
    if chat is not None and not args.base:  # a hosted model: picks exported, nothing trained
        from langchain_irl.policy.distillation import export_best_of_n

        counts = export_best_of_n(
            chat,
            args.reward_model,
            inputs,
            prompt,
            args.out,
            export=args.export_openai,
            n=args.n,
            keep_percentile=args.keep_percentile,
            margin=args.margin,
        )
        print(
            ", ".join(
                f"{rows} rows to {args.export_openai / name}" for name, rows in counts.items()
            )
        )
        return
    base = Path(args.base)
    if not base.exists():
        raise DataFileError(f"--base {base}: no such file or folder")
    _require_training()
    from langchain_irl.policy.distillation import DistillConfig, distill
    from langchain_irl.policy.training import LoraTraining

    config = DistillConfig(
        rounds=args.rounds,
        n=args.n,
        method=args.method,
        keep_percentile=args.keep_percentile,
        margin=args.margin,
        held_out=args.held_out,
        eval_samples=args.eval_samples,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        device=args.device,
        seed=args.seed,
        training=LoraTraining(
            steps=args.steps,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            lora_rank=args.lora_rank,
            lora_alpha=2 * args.lora_rank,
            seed=args.seed,
        ),
    )
    result = distill(
        base,
        args.reward_model,
        inputs,
        prompt,
        args.out,
        config=config,
        validation=validation,
        base_chat=chat,
        export_openai=args.export_openai,
        demonstrations=demonstrations,
    )
    print(result.summary())
    print(f"wrote {args.out} (card: {args.out / 'policy_card.json'})")


def _require_training() -> None:
    """Every package training needs, before any work: one line naming the extra if one is
    missing."""
    from langchain_irl.extras import require

    for module in ("torch", "transformers"):
        require(module, "langchain-irl distill", "train")
    for module in ("trl", "peft", "accelerate", "datasets"):
        require(module, "langchain-irl distill", "policy")
