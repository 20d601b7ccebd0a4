"""Which words a reward credits: leave-one-out occlusion through the ONNX runtime.

A span's contribution is r(text) - r(text without the span): positive where the reward would drop
without it. Every variant is scored by the model exactly as users run it (no gradients, no torch),
and a score depends only on (prompt, candidate, model), so the same call always gives the same
attribution. A text of more words than `max_spans` is cut into that many runs of consecutive
words, so the cost stays at `max_spans + 1` scores whatever the length.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from langchain_irl.reward_model.rendering import PromptInput

if TYPE_CHECKING:
    from langchain_irl.reward_model.model import RewardModel

Side = Literal["candidate", "prompt"]
DEFAULT_MAX_SPANS = 48
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Attribution:
    """Each span of `text` (a candidate, or the rendered prompt) and its contribution to `score`."""

    text: str
    side: Side
    score: float
    spans: list[tuple[int, int]]  # character offsets into `text`
    contributions: np.ndarray  # (len(spans),) r(text) - r(text without the span)

    @property
    def words(self) -> list[str]:
        return [self.text[start:end] for start, end in self.spans]

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The k spans with the largest absolute contribution, largest first."""
        order = np.argsort(-np.abs(self.contributions), kind="stable")[:k]
        return [(self.words[i], float(self.contributions[i])) for i in order]

    def __str__(self) -> str:
        credited = ", ".join(f"{word!r} {value:+.3f}" for word, value in self.top())
        return f"reward {self.score:+.3f}; {self.side} spans that move it most: {credited}"

    def highlighted(self, color: bool = True) -> str:
        """The text with each span marked: green raises the reward, red lowers it (ANSI colours,
        brighter for larger effects), or `[+0.12 word]` marks without colour."""
        scale = _scale(self.contributions)
        pieces, last = [], 0
        for (start, end), value in zip(self.spans, self.contributions, strict=True):
            pieces.append(self.text[last:start])
            word = self.text[start:end]
            if not color:
                pieces.append(f"[{value:+.2f} {word}]" if abs(value) >= 0.2 * scale else word)
            else:
                strength = min(1.0, abs(value) / scale)
                code = (42 if value > 0 else 41) if strength >= 0.5 else (32 if value > 0 else 31)
                pieces.append(word if strength < 0.2 else f"\033[{code}m{word}\033[0m")
            last = end
        pieces.append(self.text[last:])
        return "".join(pieces)

    def to_html(self) -> str:
        """The text as HTML, each span shaded by its contribution (title: the value)."""
        scale = _scale(self.contributions)
        pieces, last = [], 0
        for (start, end), value in zip(self.spans, self.contributions, strict=True):
            pieces.append(html.escape(self.text[last:start]))
            alpha = min(1.0, abs(value) / scale) * 0.6
            word = html.escape(self.text[start:end])
            pieces.append(
                f'<span class="attr" style="{shade(value, alpha)}" '
                f'title="{value:+.3f}">{word}</span>'
            )
            last = end
        pieces.append(html.escape(self.text[last:]))
        return "".join(pieces)


def shade(value: float, alpha: float) -> str:
    """The CSS background of a span that contributes `value`: green raises the reward, red lowers
    it (the report page's legend shows the same colours)."""
    rgb = "46, 160, 67" if value > 0 else "214, 51, 51"
    return f"background: rgba({rgb}, {alpha:.2f})"


def attribute(
    model: RewardModel,
    prompt: PromptInput,
    candidate: str,
    *,
    side: Side = "candidate",
    max_spans: int = DEFAULT_MAX_SPANS,
) -> Attribution:
    """Leave-one-out attribution of `candidate`'s reward for `prompt` to the words of one side."""
    if side not in ("candidate", "prompt"):
        raise ValueError(f"side is 'candidate' or 'prompt', got {side!r}")
    rendered = model.render(prompt)
    text = candidate if side == "candidate" else rendered
    spans = word_spans(text, max_spans)
    without = [text[:start] + text[end:] for start, end in spans]
    if side == "candidate":
        scores = model.score(rendered, [candidate, *without])
        full, occluded = float(scores[0]), scores[1:]
    else:
        full = float(model.score(rendered, [candidate])[0])
        occluded = np.array([model.score(variant, [candidate])[0] for variant in without])
    contributions = (full - np.asarray(occluded, dtype=np.float64)).astype(np.float32)
    return Attribution(text, side, full, spans, contributions)


def word_spans(text: str, max_spans: int = DEFAULT_MAX_SPANS) -> list[tuple[int, int]]:
    """The words of `text` as character spans, merged into at most `max_spans` runs of
    consecutive words (as even as they divide)."""
    if max_spans < 1:
        raise ValueError(f"max_spans must be at least 1, got {max_spans}")
    words = [match.span() for match in _WORD.finditer(text)]
    if len(words) <= max_spans:
        return words
    bounds = np.linspace(0, len(words), max_spans + 1).round().astype(int)
    return [(words[a][0], words[b - 1][1]) for a, b in itertools.pairwise(bounds.tolist())]


def _scale(values: Sequence[float] | np.ndarray) -> float:
    largest = float(np.max(np.abs(values))) if len(values) else 0.0
    return largest or 1.0
