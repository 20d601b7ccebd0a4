"""The head's scalar features of a candidate, beside its embedding.

- `log_tokens`: log(1 + content tokens read). Length is part of what makes an answer good, but
  the encoder reads at most `candidate_chunks` windows: past that, a text cut in half looks the
  same to it (older folders read this one).
- `log_words`: log(1 + words in the whole text), so that cutting a long text short shows.
- `log_distinct_words`: log(1 + distinct words). A mean-pooled encoder reads an answer written
  twice much like the answer itself, only longer; its distinct words are those of the answer.
  With both counts a head (trained against edited copies, `langchain_irl.data.edits`) can pay for
  new words and not for repeated ones. Both counts ignore word order, so a shuffle cannot move
  them.
- `ends_finished`: 1 when the text ends as finished text ends (`.`, `!`, `?`, a closing bracket,
  quote or code fence, ...), else 0. Nine in ten AlpacaEval answers end so, and one in nine of
  the same answers cut in half: an answer stopped mid-sentence (cut short, or by a token limit)
  shows even where the encoder reads only the start.

A folder's card names the features its head reads (`HeadInfo.features`), so older folders keep
reading only `log_tokens`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

import numpy as np

from langchain_irl.reward_model.card import Feature

_WORD = re.compile(r"\w+")
_FINISHED_ENDINGS = frozenset(".!?\u2026)]}\"'`*\u201d\u2019\u00bb|")  # with \u: ellipsis, quotes


def words_of(text: str) -> list[str]:
    """The text's words, case-folded."""
    return _WORD.findall(text.casefold())


class _Candidates:
    """Candidates as the features read them; each text is split into words once, if at all."""

    def __init__(self, texts: Sequence[str], tokens: np.ndarray) -> None:
        self.texts, self.tokens = texts, tokens

    @functools.cached_property
    def words(self) -> list[list[str]]:
        return [words_of(text) for text in self.texts]

    def ends_finished(self) -> np.ndarray:
        ends = [text.rstrip()[-1:] for text in self.texts]
        return np.array([end in _FINISHED_ENDINGS for end in ends], np.float32)

    def log_counts(self, count: Callable[[list[str]], int]) -> np.ndarray:
        return np.log1p(np.array([count(words) for words in self.words], np.float32))


FEATURES: dict[str, Callable[[_Candidates], np.ndarray]] = {
    "log_tokens": lambda c: np.log1p(c.tokens.astype(np.float32)),
    "log_words": lambda c: c.log_counts(len),
    "log_distinct_words": lambda c: c.log_counts(lambda words: len(set(words))),
    "ends_finished": lambda c: c.ends_finished(),
}
"""Every feature by name: candidates (texts, content tokens read of each) -> (n,) values."""

TRAINED_FEATURES: tuple[Feature, ...] = ("log_words", "log_distinct_words", "ends_finished")
"""What `train` gives a new head."""


def candidate_features(
    texts: Sequence[str], token_counts: np.ndarray, names: Sequence[str]
) -> np.ndarray:
    """The head's features `names` of each candidate, float32 (n, len(names))."""
    unknown = set(names) - FEATURES.keys()
    if unknown:
        raise ValueError(f"unknown head features {sorted(unknown)}; known: {sorted(FEATURES)}")
    tokens = np.asarray(token_counts)
    if len(texts) != len(tokens):
        raise ValueError(f"{len(texts)} texts but {len(tokens)} token counts")
    candidates = _Candidates(texts, tokens)
    columns = [FEATURES[name](candidates) for name in names]
    return np.stack(columns, axis=1) if columns else np.zeros((len(tokens), 0), np.float32)
