"""The options of best-of-n sampling: one validated model, shared by every adapter.

`BestOfN` (the chat model) inherits these fields; `BestOfNMiddleware` holds an instance. Either way
a bad option (an unknown selection rule, n = 0, a threshold on an uncalibrated reward) is refused
when the adapter is built, before any paid call.
"""

from __future__ import annotations

import hashlib
import math
import sys
import sysconfig
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from langchain_irl.engine.selection import Selection
from langchain_irl.reward_model.model import RewardModel

# Frames under these folders (the standard library, installed packages, this package) are never
# "the user's line" that a warning should point at.
_LIBRARY_DIRS = (
    *{sysconfig.get_path(name) for name in ("stdlib", "purelib", "platlib")},
    str(Path(__file__).resolve().parents[1]),
    "<frozen",
)


class SpeculativeRejection(BaseModel):
    """When to score partial candidates, and what share of them goes on.

    Sun et al. (NeurIPS 2024, "Fast Best-of-N Decoding via Speculative Rejection"), over streams
    and with no barrier: see `engine/speculative.py`. Each stream is scored as soon as it reaches a
    checkpoint; every stream still writing that is no longer among the best `keep` share of the
    prefixes scored there so far is closed. No stream waits for the slowest. Measured defaults:
    see the README and `benchmarks/speculative_rejection.py`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    checkpoints: tuple[int, ...] = (16, 32, 64, 128)
    """Tokens written (streamed chunks) at which a candidate's prefix is scored."""
    keep: float = Field(default=0.5, gt=0, le=1)
    """Share of the prefixes scored at a checkpoint that go on: the best ceil(keep x scored so
    far). A stream that passed is closed later if enough better ones arrive."""
    min_survivors: int = Field(default=1, ge=1)
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


class BestOfNOptions(BaseModel):
    """How many candidates to draw, how to pick among them, and how hard to try."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    reward_model: RewardModel = Field(exclude=True)
    """The learned reward that ranks the candidates."""
    n: int = Field(default=4, ge=1)
    """Candidates per call (at most, with `threshold`)."""
    selection: Selection = "argmax"
    """How to pick among candidates: `argmax`, `softmax` or `regularized` (see `selection.py`)."""
    softmax_temperature: float = Field(default=1.0, gt=0)
    proximity_weight: float = 1.0
    threshold: float | None = Field(default=None, ge=0, le=100)
    """Stop sampling once a candidate scores at or above this percentile of demonstrations."""
    wave_size: int | None = Field(default=None, ge=1)
    """Candidates per wave when `threshold` is set (default: a quarter of n, at least 1)."""
    max_concurrency: int = Field(default=8, ge=1)
    """Most inner requests (or speculative streams) in flight at once, counted across every call
    of this instance and of its copies (`model_copy`, `configurable_fields`): sync and async,
    from any thread or event loop. Speculative streams past the bound start as others are cut."""
    candidate_retries: int = Field(default=2, ge=0)
    """Extra waves that ask again for the candidates whose requests failed (after the inner
    model's own retries), each after the longest `Retry-After` the failures carried. Only
    failures that can succeed when asked again are (timeouts, connection errors, 408, 409, 429,
    5xx); any other (a 400, a 401, a `TypeError`) is raised at once."""
    return_all: bool = False
    """Also return every candidate (as further generations, and texts in the metadata)."""
    seed: int | None = None
    """Seed of the softmax rule: with a seed, the same candidates give the same pick."""
    speculative: SpeculativeRejection | None = None
    """Stream the candidates and close the losing ones early (speculative rejection): `True` for
    the default schedule, or a `SpeculativeRejection` with your checkpoints and keep share."""

    _warned: set[str] = PrivateAttr(default_factory=set)
    _warn_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

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
        if self.seed is None:
            return np.random.default_rng()
        digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).digest()
        return np.random.default_rng([self.seed, int.from_bytes(digest[:8], "little")])

    def warn_once(self, key: str, message: str) -> None:
        """Warn once per instance, at the first frame outside the installed libraries."""
        with self._warn_lock:
            if key in self._warned:
                return
            self._warned.add(key)
        warnings.warn(message, UserWarning, stacklevel=_user_stacklevel())


def _user_stacklevel() -> int:
    """The `stacklevel` of the innermost frame outside the library (2: warn_once's caller)."""
    frame, level = sys._getframe(2), 2
    while frame is not None:
        if not frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
            return level
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return 2
