"""Converters from the bundled public datasets to the project's data formats (see `data.py`)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from langchain_irl.data.formats import Example, Pair
from langchain_irl.data.jsonl import DataFileError, read_records

logger = logging.getLogger(__name__)

# dev.jsonl has top/middle/bottom blocks; train.jsonl.gz has top and a uniform `sample` of the rest.
CAPTION_CHUNKS = ("top", "middle", "bottom", "sample")
_ASSISTANT = "\n\nAssistant:"


@dataclass(frozen=True)
class Contest:
    """One caption contest: the cartoon's description and its rated captions, best first."""

    number: int
    description: str
    captions: list[str]
    ratings: np.ndarray  # human mean rating, 1 (not funny) to 3 (funny)
    chunks: list[str]  # which sample of the contest file each caption comes from

    def rating(self, caption: str) -> float:
        return float(self.ratings[self.captions.index(caption)])

    def top(self, count: int) -> list[str]:
        """The `count` best-rated captions."""
        return self.captions[:count]


def read_caption_contests(path: str | Path) -> list[Contest]:
    """Caption-contest records (`dev.jsonl`, `train.jsonl.gz`), captions sorted best first."""

    def parse(record: Mapping[str, Any]) -> Contest:
        ranked = sorted(record["captions"], key=lambda c: c["rank"])
        return Contest(
            number=int(record["contest"]),
            description=str(record["description"]),
            captions=[str(c["text"]) for c in ranked],
            ratings=np.array([float(c["mean"]) for c in ranked]),
            chunks=[str(c["chunk"]) for c in ranked],
        )

    return read_records(path, parse, what="a caption-contest record")


def caption_contest(
    path: str | Path,
    *,
    top: int = 30,
    sample_chunks: Collection[str] = ("middle", "bottom", "sample"),
    contests: Collection[int] | None = None,
    exclude: Collection[int] = (),
) -> tuple[list[Example], list[Example]]:
    """Demonstrations and policy samples from the New Yorker caption-contest ratings.

    The crowd of entrants is the base policy: the `top` best-rated captions of each contest are the
    demonstrations, the entries of `sample_chunks` are its samples. Input = the cartoon's
    description, output = the caption verbatim, score = the human mean rating (1-3).
    """
    unknown = set(sample_chunks) - set(CAPTION_CHUNKS)
    if unknown:
        raise ValueError(f"unknown caption chunks {sorted(unknown)}; use {CAPTION_CHUNKS}")
    every = read_caption_contests(path)
    kept = [
        contest
        for contest in every
        if (contests is None or contest.number in contests) and contest.number not in exclude
    ]
    _warn_of_kept_twins(path, every, kept)
    demos: list[Example] = []
    samples: list[Example] = []
    for contest in kept:
        rows = zip(contest.captions, contest.ratings, contest.chunks, strict=True)
        for position, (caption, rating, chunk) in enumerate(rows):
            example = Example(contest.description, caption, float(rating))
            if position < top:
                demos.append(example)
            elif chunk in sample_chunks:
                samples.append(example)
    return demos, samples


def _warn_of_kept_twins(
    path: str | Path, every: Sequence[Contest], kept: Sequence[Contest]
) -> None:
    """A contest left out whose description a kept contest has is not held out: the input is
    the description, so its input is still trained on (train.jsonl.gz: 645 and 644)."""
    kept_numbers = {contest.number: contest.description for contest in kept}
    twins = {description: number for number, description in kept_numbers.items()}
    for contest in every:
        twin = twins.get(contest.description)
        if contest.number not in kept_numbers and twin is not None:
            logger.warning(
                "%s: contest %d is left out, but contest %d, kept, has the same description "
                "(%r): that input is still trained on",
                path,
                contest.number,
                twin,
                contest.description,
            )


def hh_rlhf(path: str | Path) -> list[Pair]:
    """Preference pairs from Anthropic HH-RLHF (`{"chosen": dialogue, "rejected": dialogue}`).

    Input = the dialogue up to, not including, the final `\\n\\nAssistant:` turn, verbatim;
    chosen/rejected = that final turn's text, stripped. Pairs whose two dialogues differ before
    the final turn are skipped and counted (3 of the 1,387 bundled pairs).
    """

    def parse(record: Mapping[str, Any]) -> tuple[tuple[str, str], tuple[str, str]]:
        return _split_last_turn(record["chosen"]), _split_last_turn(record["rejected"])

    pairs: list[Pair] = []
    skipped = 0
    for (chosen_prompt, chosen), (rejected_prompt, rejected) in read_records(
        path, parse, what="an HH-RLHF record"
    ):
        if chosen_prompt != rejected_prompt:
            skipped += 1
            continue
        pairs.append(Pair(chosen_prompt, chosen, rejected))
    if skipped:
        logger.info(
            "%s: skipped %d pair(s) whose dialogues differ before the last turn", path, skipped
        )
    return pairs


# AlpacaEval's judge compares every answer with this model's; its answers are the reference.
ALPACA_REFERENCE = "gpt4_1106_preview"
# Built to fool the judge (constant nonsense; "Of course!"-style openers): never demonstrations or
# samples, only a robustness check (see `AlpacaEvalSplit.adversarial`).
ALPACA_ADVERSARIAL = ("NullModel", "gpt4_gamed")
# The default base model: a mix of weak and mid-strength models (mean judge_win 0.02-0.08), which
# is what a user's base model looks like beside the reference answers.
ALPACA_BASE_MODELS = (
    "alpaca-7b",
    "falcon-7b-instruct",
    "pythia-12b-mix-sft",
    "chatglm2-6b",
    "minichat-3b",
    "gemma-2b-it",
    "vicuna-7b-v1.5",
    "vicuna-13b-v1.5",
    "wizardlm-13b",
    "nous-hermes-13b",
    "Qwen-14B-Chat",
    "gpt-3.5-turbo-1106",
)


@dataclass(frozen=True)
class AlpacaEvalSplit:
    """AlpacaEval answers in the project's formats; every `score` is the judge's `judge_win`.

    - `demos`: the demonstrators' answers;
    - `samples`: the base models' answers (the policy samples);
    - `judged`: every other judged answer, for evaluation against the judge;
    - `adversarial`: the answers built to game the judge, by model (`ALPACA_ADVERSARIAL`).
    """

    demos: list[Example]
    samples: list[Example]
    judged: list[Example]
    adversarial: dict[str, list[Example]]


def read_alpaca_eval(path: str | Path) -> list[dict]:
    """AlpacaEval records (`instruction`, `outputs` of every model with `judge_win`), checked."""

    def parse(record: Mapping[str, Any]) -> dict:
        outputs = {str(o["generator"]): (str(o["text"]), o["judge_win"]) for o in record["outputs"]}
        return {"instruction": str(record["instruction"]), "outputs": outputs}

    return read_records(path, parse, what="an AlpacaEval record")


def alpaca_eval(
    path: str | Path,
    *,
    demo_models: Collection[str] = (ALPACA_REFERENCE,),
    base_models: Collection[str] = ALPACA_BASE_MODELS,
    instructions: Collection[str] | None = None,
) -> AlpacaEvalSplit:
    """Demonstrations, policy samples, judged and adversarial answers from AlpacaEval outputs.

    `instructions`: keep only these (None: all). A model named as demonstrator and base model, or
    an adversarial one in either role, is refused: it would teach the reward nothing or the wrong
    thing.
    """
    overlap = set(demo_models) & set(base_models)
    if overlap:
        raise ValueError(f"models both demonstrators and base models: {sorted(overlap)}")
    gamed = (set(demo_models) | set(base_models)) & set(ALPACA_ADVERSARIAL)
    if gamed:
        raise ValueError(f"adversarial models cannot be demonstrators or samples: {sorted(gamed)}")
    split = AlpacaEvalSplit([], [], [], {name: [] for name in ALPACA_ADVERSARIAL})
    for record in read_alpaca_eval(path):
        if instructions is not None and record["instruction"] not in instructions:
            continue
        missing = (set(demo_models) | set(base_models)) - record["outputs"].keys()
        if missing:
            raise DataFileError(f"{path}: no answers of {sorted(missing)} for an instruction")
        for generator, (text, judge_win) in record["outputs"].items():
            example = Example(record["instruction"], text, judge_win)
            if generator in demo_models:
                split.demos.append(example)
            elif generator in base_models:
                split.samples.append(example)
            elif generator in ALPACA_ADVERSARIAL:
                split.adversarial[generator].append(example)
            if generator != ALPACA_REFERENCE and judge_win is not None:
                split.judged.append(example)
    return split


def held_out(inputs: Sequence[str], share: float, seed: int, block: int = 0) -> set[str]:
    """A seeded random `share` of the distinct `inputs`, kept out of training for evaluation.

    `block` picks which `share`-sized stretch of the same seeded order: blocks 0, 1, ... are
    disjoint, so with a share of 1/k the first k of them are the folds of a cross-fit."""
    distinct = sorted(set(inputs))
    count = round(share * len(distinct))
    if block < 0 or (block + 1) * count > len(distinct):
        raise ValueError(
            f"no block {block} of {count} inputs in {len(distinct)} (blocks count from 0)"
        )
    order = np.random.default_rng(seed).permutation(len(distinct))
    return {distinct[i] for i in order[block * count : (block + 1) * count]}


def _split_last_turn(dialogue: str) -> tuple[str, str]:
    cut = dialogue.rindex(_ASSISTANT)
    return dialogue[:cut], dialogue[cut + len(_ASSISTANT) :].strip()
