"""`langchain-irl demo`: the whole idea, offline, on cartoons the bundled model never saw.

demonstrations -> learned reward (models/caption-humor) -> best-of-n inside a LangChain chain ->
few-shot selection. The base model is the crowd of real contest entrants (`CrowdChatModel`), so
every pick has a human rating; with `--model` or OPENAI_BASE_URL a real model is used instead.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import LLMResult
from langchain_core.prompts import ChatPromptTemplate

from langchain_irl.bundled import data_file as data_file_of
from langchain_irl.chat_models.best_of_n import BestOfN
from langchain_irl.cli.crowd import CrowdChatModel
from langchain_irl.data.converters import Contest, read_caption_contests
from langchain_irl.data.jsonl import DataFileError
from langchain_irl.evaluation.metrics import best_of_n_curve, gap_closed
from langchain_irl.example_selectors.reward import RewardExampleSelector
from langchain_irl.extras import require
from langchain_irl.reward_model.model import RewardModel

# Contests left out of the bundled model's training data (see models/README.md).
DEMO_CONTESTS = (641, 645, 648, 650, 654)
PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Write a funny caption for the cartoon described."), ("human", "{cartoon}")]
)


class _LastBestOfN(BaseCallbackHandler):
    """Keeps the metadata of the last best-of-n call (the chain's parser keeps only the text)."""

    metadata: dict[str, Any] | None = None

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        message = getattr(response.generations[0][0], "message", None)
        if message is not None and "best_of_n" in message.response_metadata:
            self.metadata = message.response_metadata["best_of_n"]


def run_demo(
    model: str | Path = "caption-humor",
    data_file: Path | None = None,
    n: int = 16,
    seed: int = 0,
    llm_name: str | None = None,
    plot: Path | None = None,
) -> dict[str, float]:
    """Run the demo; the best-of-n curve goes to `plot` (default: best_of_n_demo.png in the
    user's cache, see `demo_command.default_out`)."""
    started = time.perf_counter()
    print("loading the reward model and the caption contests ...", flush=True)
    reward_model = RewardModel.load(model)
    source = data_file or data_file_of("caption_contest/dev.jsonl")
    contests = read_caption_contests(source)
    held_out = [contest for contest in contests if contest.number in DEMO_CONTESTS]
    if not held_out:
        numbers = ", ".join(map(str, DEMO_CONTESTS))
        raise DataFileError(f"{source}: none of the demo's contests ({numbers}) is in it")
    llm = _base_model(llm_name, held_out, seed)
    best_of_n = BestOfN(
        llm=llm, reward_model=reward_model, n=n, return_all=True, selection_seed=seed
    )
    chain = PROMPT | best_of_n | StrOutputParser()
    recorder = _LastBestOfN()

    card = reward_model.card
    print(f"reward model: {reward_model.name} ({card.objective}; encoder {card.encoder.name})")
    print(f"  {_pairwise_accuracy(card)}")
    crowd = isinstance(llm, CrowdChatModel)
    if crowd:
        print(
            "base model: the crowd of real contest entrants (not an LLM): each candidate is a real "
            "submitted caption,\n  drawn from the contest's top-, middle- and bottom-rated entries"
        )
    print(f"chain: ChatPromptTemplate | BestOfN(n={n}) | StrOutputParser\n")
    picked, average, best = [], [], []
    for contest in held_out:
        caption = chain.invoke({"cartoon": contest.description}, {"callbacks": [recorder]})
        meta = recorder.metadata or {}
        print(f"contest {contest.number}: {contest.description}")
        print(f"  best of {meta.get('n_succeeded')}: {caption}")
        print(
            f"  reward {meta.get('chosen_reward', float('nan')):+.2f}, better than "
            f"{meta.get('chosen_percentile', float('nan')):.0f}% of held-out demonstrations"
        )
        if crowd:
            ratings = [contest.rating(text) for text in meta["candidates"]]
            picked.append(contest.rating(caption))
            average.append(float(np.mean(ratings)))
            best.append(float(np.max(ratings)))
            print(
                f"  humans rated it {picked[-1]:.2f}; of the {len(ratings)} candidates a random "
                f"pick averages {average[-1]:.2f}, the best is {best[-1]:.2f} "
                "(1 = not funny, 3 = funny)"
            )
        print()
    summary: dict[str, float] = {}
    if crowd:
        summary = {
            "picked": float(np.mean(picked)),
            "average": float(np.mean(average)),
            "best": float(np.mean(best)),
        }
        print(
            f"over {len(held_out)} unseen cartoons, human ratings (1-3) of the pick:\n"
            f"  random pick {summary['average']:.3f}   best-of-{n} by the reward "
            f"{summary['picked']:.3f}   best of the {n} candidates {summary['best']:.3f}\n"
            f"best-of-{n} picks average {summary['picked']:.3f} vs {summary['average']:.3f} "
            "for the average entry\n"
        )
    _show_few_shot(reward_model, contests, held_out[0])
    if crowd and not _has_matplotlib():
        print("(the best-of-n curve PNG needs the [cli] extra: pip install 'langchain-irl[cli]')")
    elif crowd:
        print("scoring every entry of the unseen contests for the best-of-n curve ...", flush=True)
        curve = best_of_n_curve(
            [reward_model.score(c.description, c.captions) for c in held_out],
            [c.ratings for c in held_out],
            [1, 2, 4, 8, 16, 32],
            seed=seed,
        )
        from langchain_irl.cli.demo_command import default_out
        from langchain_irl.evaluation.plots import best_of_n_plot

        plot = plot or default_out() / "best_of_n_demo.png"
        plot.parent.mkdir(parents=True, exist_ok=True)
        best_of_n_plot(curve, plot, "best-of-n on unseen cartoons", "human rating")
        summary["gap_closed_16"] = gap_closed(curve, curve["n"].index(16))
        print(f"best-of-n curve (human rating of the pick vs n) written to {plot}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return summary


def _pairwise_accuracy(card: Any) -> str:
    """The model's pairwise accuracy on the data the demo runs on, when its card has it (an
    evaluation naming the demo contests), else on the validation data of its training; labelled
    with the data either way."""
    for name, metrics in card.evaluations.items():
        if "pairwise_accuracy" in metrics and all(str(c) in name for c in DEMO_CONTESTS):
            return f"pairwise accuracy {metrics['pairwise_accuracy']:.3f} on {name}"
    value = card.metrics.get("pairwise_accuracy", float("nan"))
    return f"pairwise accuracy {value:.3f} on its held-out validation data (its card)"


def _has_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _base_model(name: str | None, contests: list[Contest], seed: int) -> BaseChatModel:
    """The crowd, or with a name or OPENAI_BASE_URL a model at that endpoint (which must answer)."""
    base_url = os.environ.get("OPENAI_BASE_URL")
    if name is None and not base_url:
        return CrowdChatModel(contests=contests, seed=seed)
    ChatOpenAI = require("langchain_openai", "--model", "cli").ChatOpenAI
    if base_url:
        from langchain_irl.cli.errors import check_reachable

        check_reachable(base_url, "OPENAI_BASE_URL")

    return ChatOpenAI(model=name or "gpt-4o-mini", temperature=1.0)


def _show_few_shot(reward_model: RewardModel, contests: list[Contest], contest: Contest) -> None:
    """Which demonstrations of *other* contests the selector would show for this cartoon."""
    examples = []
    for other in contests:
        if other.number in DEMO_CONTESTS:
            continue
        examples += [{"input": other.description, "output": c} for c in other.top(30)]
    print(f"embedding {len(examples)} demonstrations for few-shot selection ...", flush=True)
    selector = RewardExampleSelector(
        examples=examples, reward_model=reward_model, k=3, lambda_mult=0.5
    )
    print(
        f"few-shot: the 3 demonstrations (of {len(examples)}) chosen for contest {contest.number}"
    )
    for demo in selector.rank(contest.description):
        example = examples[demo.index]
        print(
            f"  reward {demo.reward:+.2f}  relevance {demo.relevance:.2f}  "
            f"{example['output']!r}  (for: {example['input'][:50]})"
        )
    print()
