"""The options of best-of-n sampling: one validated model, shared by every adapter.

`BestOfN` (the chat model) inherits these fields; `BestOfNMiddleware` holds an instance. Either way
a bad option (an unknown selection rule, n = 0, a threshold on an uncalibrated reward) is refused
when the adapter is built, before any paid call.
"""

from __future__ import annotations

import hashlib
import math
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from typing_extensions import TypedDict

from langchain_irl.engine.selection import Selection
from langchain_irl.engine.user_warnings import warn_at_user_line
from langchain_irl.reward_model.model import RewardModel


class SpeculativeRejection(BaseModel):
    """When to score partial candidates, and what share of them goes on.

    Sun et al. (NeurIPS 2024, "Fast Best-of-N Decoding via Speculative Rejection"), over streams
    and with no barrier: see `engine/speculative.py`. Each stream is scored as soon as it reaches a
    checkpoint; every stream still writing that is no longer among the best `keep` share of the
    prefixes scored there so far is closed. No stream waits for the slowest. Measured defaults:
    see the README and `benchmarks/speculative_rejection.py`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    checkpoints: tuple[int, ...] = (12, 24, 48, 96)
    """Tokens written (streamed chunks) at which a candidate's prefix is scored."""
    keep: float = Field(default=0.5, gt=0, le=1)
    """Share of the prefixes scored at a checkpoint that go on: the best ceil(keep x scored so
    far). A stream that passed is closed later if enough better ones arrive."""
    min_survivors: int = Field(default=3, ge=1)
    """Never cut a stream when fewer than this many candidates would be left."""

    @field_validator("checkpoints")
    @classmethod
    def _increasing(cls, checkpoints: tuple[int, ...]) -> tuple[int, ...]:
        if not checkpoints or checkpoints[0] < 1 or list(checkpoints) != sorted(set(checkpoints)):
            raise ValueError(f"checkpoints must be increasing positive token counts: {checkpoints}")
        return checkpoints

    def passing(self, scored: int) -> int:
        """How many of the `scored` prefixes at one checkpoint go on."""
        return math.ceil(self.keep * scored - 1e-9)

    def losers(self, scored: Mapping[int, float]) -> list[int]:
        """The candidates (keys of `scored`, their prefix scores at one checkpoint so far) below
        the best `keep` share: those to close, if still writing and `min_survivors` allows."""
        ranked = sorted(scored, key=scored.__getitem__, reverse=True)
        return ranked[self.passing(len(scored)) :]


class BestOfNOptions(BaseModel):
    """How many candidates to draw, how to pick among them, and how hard to try."""

    model_config = ConfigDict(
        arbitrary_types_allowed=True, extra="forbid", use_attribute_docstrings=True
    )

    reward_model: RewardModel = Field(exclude=True)
    """The learned reward that ranks the candidates: a `RewardModel`, or a bundled model's name
    or a folder to load one from."""
    n: int = Field(default=4, ge=1)
    """Candidates per call (at most, with `threshold`)."""
    selection: Selection = "argmax"
    """How to pick among candidates: `argmax`, `softmax`, `regularized` or `conservative` (see
    `selection.py`)."""
    softmax_temperature: float = Field(default=1.0, gt=0)
    """With `selection="softmax"`: the pick is drawn with probabilities softmax(reward /
    temperature); lower is greedier."""
    proximity_weight: float = 1.0
    """With `selection="regularized"`: weight of a candidate's mean similarity to the others,
    added to its reward (the consensus candidate wins ties of reward)."""
    risk_weight: float = Field(default=1.0, ge=0)
    """With `selection="conservative"`: the pick maximizes mean - risk_weight * spread of the
    reward's ensemble members (a single-head reward has no spread: argmax)."""
    threshold: float | None = Field(default=None, ge=0, le=100)
    """Stop sampling once a candidate scores at or above this percentile of demonstrations."""
    wave_size: int | None = Field(default=None, ge=1)
    """Candidates per wave when `threshold` is set (default: a quarter of n, at least 1)."""
    max_concurrency: int = Field(default=16, ge=1)
    """Most inner requests (or speculative streams) in flight at once, counted across every call
    of this instance and of its copies (`model_copy`, `configurable_fields`): sync and async,
    from any thread or event loop. Speculative streams past the bound start as others are cut.
    The default, 16, lets a best-of-16 call start every candidate at once: measured, speculative
    best-of-16 wrote 2.45x fewer tokens than best-of-16 with a bound of 8 and 2.60x with 16 at
    400 tokens/s, and was faster (`benchmarks/speculative_rejection.py`)."""
    candidate_retries: int = Field(default=2, ge=0)
    """Extra waves that ask again for the candidates whose requests failed (after the inner
    model's own retries), each after the longest `Retry-After` the failures carried. Only
    failures that can succeed when asked again are (timeouts, connection errors, 408, 409, 429,
    5xx); any other (a 400, a 401, a `TypeError`) is raised at once."""
    return_all: bool = False
    """Also return every candidate (as further generations, and texts in the metadata)."""
    selection_seed: int | None = None
    """Seed of the `softmax` selection rule: with a seed, the same candidates give the same
    pick. Not the provider's sampling seed (set that on the inner model). `seed=` is accepted
    as a deprecated alias for one release."""
    speculative: SpeculativeRejection | None = None
    """Stream the candidates and close the losing ones early (speculative rejection): `True` for
    the default schedule, or a `SpeculativeRejection` with your checkpoints and keep share."""

    _warned: set[str] = PrivateAttr(default_factory=set)
    _warn_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="before")
    @classmethod
    def _deprecated_seed(cls, values: Any) -> Any:
        if isinstance(values, dict) and "seed" in values:
            warnings.warn(
                "best-of-n's `seed` is now `selection_seed` (it seeds the softmax pick, not the "
                "provider's sampling); `seed` will be removed in the next release",
                DeprecationWarning,
                stacklevel=4,
            )
            values = {**values}
            values.setdefault("selection_seed", values.pop("seed"))
        return values

    @field_validator("reward_model", mode="before")
    @classmethod
    def _load_reward_model(cls, value: Any) -> Any:
        """A bundled model's name or a folder, loaded (as `SentenceTransformer("name")` does)."""
        return RewardModel.of(value) if isinstance(value, str | Path) else value

    @field_validator("speculative", mode="before")
    @classmethod
    def _speculative_flag(cls, value: object) -> object:
        if value is True:
            return SpeculativeRejection()
        return None if value is False else value

    @model_validator(mode="after")
    def _speculative_draws_all_at_once(self) -> BestOfNOptions:
        if self.speculative is not None and self.threshold is not None:
            raise ValueError(
                "speculative rejection streams all n candidates at once; it does not combine "
                "with threshold (waves until a good one): set one of them"
            )
        return self

    @model_validator(mode="after")
    def _threshold_needs_calibration(self) -> BestOfNOptions:
        if self.threshold is not None and self.reward_model.card.calibration is None:
            raise ValueError(
                f"threshold is a percentile of held-out demonstrations, and reward model "
                f"{self.reward_model.name!r} has no calibration in its card"
            )
        return self

    def wave(self) -> int:
        """Candidates per planned wave: all n at once, or (with a threshold) a share of them."""
        if self.threshold is None:
            return self.n
        return self.wave_size or max(1, self.n // 4)

    def rng(self, texts: Sequence[str]) -> np.random.Generator:
        """The softmax rule's randomness: a function of the seed and the candidates, so that the
        same call gives the same answer; fresh entropy without a seed."""
        if self.selection_seed is None:
            return np.random.default_rng()
        digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).digest()
        seed = [self.selection_seed, int.from_bytes(digest[:8], "little")]
        return np.random.default_rng(seed)

    def warn_once(self, key: str, message: str) -> None:
        """Warn once per instance, at the first frame outside the installed libraries."""
        with self._warn_lock:
            if key in self._warned:
                return
            self._warned.add(key)
        warn_at_user_line(message)


class BestOfNSettings(TypedDict, total=False):
    """The options of `BestOfNOptions` as keyword arguments (`BestOfNMiddleware(rm, **settings)`),
    so that editors complete them and type checkers check them. Kept equal to the model's fields
    by a test."""

    selection: Selection
    softmax_temperature: float
    proximity_weight: float
    risk_weight: float
    threshold: float | None
    wave_size: int | None
    max_concurrency: int
    candidate_retries: int
    return_all: bool
    selection_seed: int | None
    speculative: SpeculativeRejection | bool | None
