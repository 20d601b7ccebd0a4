"""Edits that add nothing to an output: the cheap ways to game a reward.

A reward that a best-of-n pick maximizes should never prefer an answer repeated, shuffled, cut
short or stripped of punctuation to the answer itself. The same edits serve twice: as probes of a
trained reward (`evaluation.probes`: how often does an edit raise it?) and as training negatives
(`TrainConfig.edits`: each demonstration must out-score its edited copies). One table, so that
what is measured is what is trained against.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence

import numpy as np

Edit = Callable[[str, np.random.Generator], str]


def first_words(text: str, count: int) -> str:
    """The text's first `count` space-separated words: what a stream has written after `count`
    tokens, when each token is a word (as the loopback server streams)."""
    return " ".join(text.split(" ")[:count])


def _truncate(text: str, rng: np.random.Generator) -> str:
    return first_words(text, max(1, len(text.split(" ")) // 2))


def _shuffle(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    return " ".join(words[i] for i in rng.permutation(len(words)))


def _strip_punctuation(text: str, rng: np.random.Generator) -> str:
    return text.translate(str.maketrans("", "", string.punctuation))


def _repeat(text: str, rng: np.random.Generator) -> str:
    return f"{text} {text}"


EDITS: dict[str, Edit] = {
    "truncated to its first half": _truncate,
    "repeated twice": _repeat,
    "words shuffled": _shuffle,
    "punctuation removed": _strip_punctuation,
}
"""Every edit by name, in the order the card and the report list them."""


EDIT_WEIGHT = 4.0
"""The edit term's default weight (`TrainConfig.edit_weight`), shared by the copies of all edits.
Measured on AlpacaEval instructions held out from `helpful`: weight 4 raised fewer edited answers
than 1 (shuffled 9% against 14%, cut in half 12% against 17%) at the same judge agreement."""


def changes(text: str, edited: str) -> bool:
    """Whether an edit changed the text's words, not just its spacing."""
    return edited.split() != text.split()


def check_edits(names: Sequence[str]) -> tuple[str, ...]:
    """`names` if each is a known edit, else a ValueError that lists the known ones."""
    unknown = [name for name in names if name not in EDITS]
    if unknown:
        raise ValueError(f"unknown edit(s) {unknown}; known: {list(EDITS)}")
    return tuple(names)


def edited_copies(
    texts: Sequence[str], names: Sequence[str], seed: int
) -> list[tuple[int, str, str]]:
    """(source index, edit name, edited text) for every text and edit that changes its words
    (a shuffle that leaves them in place only re-spaces the text: no copy).

    Deterministic in `seed`: one generator walks the edits in order, then the texts."""
    rng = np.random.default_rng(seed)
    copies = []
    for name in check_edits(names):
        edit = EDITS[name]
        for index, text in enumerate(texts):
            edited = edit(text, rng)
            if changes(text, edited):
                copies.append((index, name, edited))
    return copies
