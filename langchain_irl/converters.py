"""Converters from the bundled public datasets to the project's data formats (see `data.py`)."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Collection
from pathlib import Path

from langchain_irl.data import DataFileError, Example, Pair

logger = logging.getLogger(__name__)

CAPTION_CHUNKS = ("top", "middle", "bottom")
_ASSISTANT = "\n\nAssistant:"


def caption_contest(
    path: str | Path,
    *,
    top: int = 30,
    sample_chunks: Collection[str] = ("middle", "bottom"),
    contests: Collection[int] | None = None,
    exclude: Collection[int] = (),
) -> tuple[list[Example], list[Example]]:
    """Demonstrations and policy samples from the New Yorker caption-contest ratings.

    The crowd of entrants is the base policy: the `top` best-rated captions of each contest are the
    demonstrations, the entries of `sample_chunks` are its samples. Input = the cartoon's
    description, output = the caption verbatim, score = the human mean rating (1-3).
    """
    source = Path(path)
    unknown = set(sample_chunks) - set(CAPTION_CHUNKS)
    if unknown:
        raise ValueError(f"unknown caption chunks {sorted(unknown)}; use {CAPTION_CHUNKS}")
    demos: list[Example] = []
    samples: list[Example] = []
    for number, line in enumerate(source.open(encoding="utf-8"), start=1):
        try:
            contest = json.loads(line)
            if (contests is not None and contest["contest"] not in contests) or (
                contest["contest"] in exclude
            ):
                continue
            description = contest["description"]
            ranked = sorted(contest["captions"], key=lambda c: c["rank"])
            for position, caption in enumerate(ranked):
                example = Example(description, caption["text"], float(caption["mean"]))
                if position < top:
                    demos.append(example)
                elif caption["chunk"] in sample_chunks:
                    samples.append(example)
        except (ValueError, KeyError, TypeError) as exc:
            raise DataFileError(
                f"{source}:{number}: not a caption-contest record ({exc!r})"
            ) from exc
    return demos, samples


def hh_rlhf(path: str | Path) -> list[Pair]:
    """Preference pairs from Anthropic HH-RLHF (`{"chosen": dialogue, "rejected": dialogue}`).

    Input = the dialogue up to, not including, the final `\\n\\nAssistant:` turn, verbatim;
    chosen/rejected = that final turn's text, stripped. Pairs whose two dialogues differ before
    the final turn are skipped and counted (3 of the 1,387 bundled pairs).
    """
    source = Path(path)
    opener = gzip.open if source.suffix == ".gz" else open
    pairs: list[Pair] = []
    skipped = 0
    with opener(source, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
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
