"""What a reward learned to prefer, across data: phrases, surface features and edit probes.

- **Phrases**: candidate attributions (`RewardModel.attribute`) pooled over many outputs, by word:
  the words whose presence moves the reward most, on average.
- **Surface features**: the Spearman correlation of the reward with length, punctuation, first
  person and so on, *within* each input (then averaged over inputs), so that a feature that
  merely differs between inputs does not count.
- **Edit probes**: the mean change of the reward when an output is truncated, repeated, shuffled,
  stripped of punctuation, or moved to another input, and how often the edit *raises* it. A
  reward that likes repetition or shuffled words is one best-of-n will exploit.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from langchain_irl.data.edits import EDITS, changes
from langchain_irl.evaluation.metrics import within_input_spearman
from langchain_irl.reward_model.attribution import Attribution
from langchain_irl.reward_model.model import RewardModel

_FIRST_PERSON = re.compile(r"\b(i|me|my|mine|we|us|our|ours)\b", re.IGNORECASE)
_SECOND_PERSON = re.compile(r"\b(you|your|yours)\b", re.IGNORECASE)
_INNER_CAPITAL = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+")
_LIST_ITEM = re.compile(r"^\s*([-*•]|\d+[.)])\s", re.MULTILINE)


def _words(text: str) -> int:
    return len(text.split())


SURFACE_FEATURES: dict[str, Callable[[str], float]] = {
    "length (words)": lambda t: float(_words(t)),
    "question mark": lambda t: float("?" in t),
    "exclamation mark": lambda t: float("!" in t),
    "first person (I, we, my)": lambda t: len(_FIRST_PERSON.findall(t)) / max(1, _words(t)),
    "second person (you, your)": lambda t: len(_SECOND_PERSON.findall(t)) / max(1, _words(t)),
    "capitalised words inside sentences (names)": lambda t: float(len(_INNER_CAPITAL.findall(t))),
    "digits": lambda t: float(any(c.isdigit() for c in t)),
    "quotation marks": lambda t: float(any(q in t for q in '"“”')),
    "list items": lambda t: float(len(_LIST_ITEM.findall(t))),
    "punctuation per word": lambda t: sum(c in string.punctuation for c in t) / max(1, _words(t)),
}


@dataclass(frozen=True)
class FeatureEffect:
    feature: str
    spearman: float  # with the reward within an input, averaged over inputs
    share: float  # share of outputs where the feature is non-zero


@dataclass(frozen=True)
class EditEffect:
    edit: str
    mean_change: float  # mean reward(edited) - reward(original)
    raised: float  # share of outputs whose reward the edit raised
    outputs: int


@dataclass(frozen=True)
class PhraseEffect:
    phrase: str
    mean_contribution: float
    count: int


def surface_preferences(
    rewards: np.ndarray, groups: np.ndarray, texts: Sequence[str]
) -> list[FeatureEffect]:
    """Each surface feature's Spearman correlation with the reward within an input (averaged
    over the inputs where it varies, among 3 or more outputs), strongest first; features that
    vary within no input are left out."""
    effects = []
    for name, feature in SURFACE_FEATURES.items():
        values = np.array([feature(text) for text in texts], dtype=np.float64)
        within = within_input_spearman(rewards, values, groups)
        if within is not None:
            effects.append(FeatureEffect(name, within, float(np.mean(values != 0))))
    return sorted(effects, key=lambda e: -abs(e.spearman))


MOVED = "moved to another input"


def edit_probes(
    model: RewardModel,
    prompts: Sequence[str],
    groups: np.ndarray,
    texts: Sequence[str],
    rewards: np.ndarray,
    *,
    seed: int = 0,
    moved: bool = True,
) -> list[EditEffect]:
    """The reward's response to each edit of every output (`texts[i]` answers
    `prompts[groups[i]]`), and (`moved`) to the output moved, unedited, to another of `prompts`."""
    rng = np.random.default_rng(seed)
    effects = []
    for name, edit in EDITS.items():
        edited = [edit(text, rng) for text in texts]
        changed = np.array([changes(t, e) for e, t in zip(edited, texts, strict=True)])
        if not changed.any():
            continue
        after = model.score_by_input(
            prompts, groups[changed], [e for e, c in zip(edited, changed, strict=True) if c]
        )
        effects.append(_effect(name, after - rewards[changed]))
    if moved and len(prompts) > 1:  # each output scored under another input, drawn from all of them
        shift = rng.integers(1, len(prompts), size=len(texts))
        elsewhere = (np.asarray(groups) + shift) % len(prompts)
        effects.append(_effect(MOVED, model.score_by_input(prompts, elsewhere, texts) - rewards))
    return effects


def edit_metrics(
    model: RewardModel,
    prompts: Sequence[str],
    groups: np.ndarray,
    texts: Sequence[str],
    rewards: np.ndarray,
    *,
    limit: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """`edit_raised_<edit>`: the share of outputs each edit raises, on at most `limit` of them (a
    fixed sample: enough for a share near 5% to within about 1.4 points)."""
    chosen = np.arange(len(texts))
    if len(chosen) > limit:
        chosen = np.sort(np.random.default_rng(seed).choice(chosen, size=limit, replace=False))
    effects = edit_probes(
        model,
        prompts,
        groups[chosen],
        [texts[int(i)] for i in chosen],
        rewards[chosen],
        seed=seed,
        moved=False,
    )
    return {f"edit_raised_{e.edit.replace(' ', '_')}": e.raised for e in effects}


def _effect(name: str, change: np.ndarray) -> EditEffect:
    return EditEffect(name, float(change.mean()), float((change > 0).mean()), len(change))


def preferred_phrases(
    attributions: Sequence[Attribution], *, min_count: int = 3, k: int = 12
) -> tuple[list[PhraseEffect], list[PhraseEffect]]:
    """Words (lower-cased, punctuation stripped) by their mean contribution over `attributions`:
    the k most rewarded and the k most penalised, each seen at least `min_count` times."""
    pooled: dict[str, list[float]] = defaultdict(list)
    for attribution in attributions:
        for word, value in zip(attribution.words, attribution.contributions, strict=True):
            key = word.lower().strip(string.punctuation + "\u201c\u201d\u2018\u2019")
            if key and " " not in key:  # single words only: runs of words are not phrases
                pooled[key].append(float(value))
    effects = [
        PhraseEffect(word, float(np.mean(values)), len(values))
        for word, values in pooled.items()
        if len(values) >= min_count
    ]
    effects.sort(key=lambda e: (-e.mean_contribution, e.phrase))
    liked = [e for e in effects[:k] if e.mean_contribution > 0]
    disliked = [e for e in reversed(effects[-k:]) if e.mean_contribution < 0]
    return liked, disliked
