"""Converters from the bundled public datasets to the project's data formats (see `data.py`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from langchain_irl.data.formats import DataFileError, Example, Pair, numbered_lines

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
    source = Path(path)
    contests = []
    for number, line in numbered_lines(source):
        try:
            record = json.loads(line)
            ranked = sorted(record["captions"], key=lambda c: c["rank"])
            contests.append(
                Contest(
                    number=int(record["contest"]),
                    description=str(record["description"]),
                    captions=[str(c["text"]) for c in ranked],
                    ratings=np.array([float(c["mean"]) for c in ranked]),
                    chunks=[str(c["chunk"]) for c in ranked],
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DataFileError(f"{source}:{number}: not a caption-contest record ({exc!r})") from exc
    return contests


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
    demos: list[Example] = []
    samples: list[Example] = []
    for contest in read_caption_contests(path):
        if (contests is not None and contest.number not in contests) or contest.number in exclude:
            continue
        rows = zip(contest.captions, contest.ratings, contest.chunks, strict=True)
        for position, (caption, rating, chunk) in enumerate(rows):
            example = Example(contest.description, caption, float(rating))
            if position < top:
                demos.append(example)
            elif chunk in sample_chunks:
                samples.append(example)
    return demos, samples


def hh_rlhf(path: str | Path) -> list[Pair]:
    """Preference pairs from Anthropic HH-RLHF (`{"chosen": dialogue, "rejected": dialogue}`).

    Input = the dialogue up to, not including, the final `\\n\\nAssistant:` turn, verbatim;
    chosen/rejected = that final turn's text, stripped. Pairs whose two dialogues differ before
    the final turn are skipped and counted (3 of the 1,387 bundled pairs).
    """
    source = Path(path)
    pairs: list[Pair] = []
    skipped = 0
    for number, line in numbered_lines(source):
        try:
            record = json.loads(line)
            chosen_prompt, chosen = _split_last_turn(record["chosen"])
            rejected_prompt, rejected = _split_last_turn(record["rejected"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DataFileError(f"{source}:{number}: not an HH-RLHF record ({exc!r})") from exc
        if chosen_prompt != rejected_prompt:
            skipped += 1
            continue
        pairs.append(Pair(chosen_prompt, chosen, rejected))
    if skipped:
        logger.info(
            "%s: skipped %d pair(s) whose dialogues differ before the last turn", source, skipped
        )
    return pairs


def _split_last_turn(dialogue: str) -> tuple[str, str]:
    cut = dialogue.rindex(_ASSISTANT)
    return dialogue[:cut], dialogue[cut + len(_ASSISTANT) :].strip()
