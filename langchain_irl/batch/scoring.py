"""Add a reward (and percentile) column to batches of (prompt, candidate) rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from langchain_irl.data.formats import input_messages, parse_input_cell
from langchain_irl.reward_model.model import RewardModel

Batch = Mapping[str, Sequence[Any]]


class BatchScorer:
    """Loads a `RewardModel` once (per Ray actor), then scores batches of rows.

    Rows sharing a prompt are scored in one `score` call, so every reward equals what
    `RewardModel.score(prompt, [candidate, ...])` gives for that row: scores are exact functions
    of (prompt, candidate, model), whatever the batching.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        prompt_column: str = "input",
        candidate_column: str = "output",
        reward_column: str = "reward",
        percentile_column: str | None = "percentile",
        num_threads: int | None = None,
        providers: Sequence[Any] | None = None,
    ) -> None:
        self.model = RewardModel.load(model, num_threads=num_threads, providers=providers)
        self.prompt_column = prompt_column
        self.candidate_column = candidate_column
        self.reward_column = reward_column
        calibrated = self.model.card.calibration is not None
        self.percentile_column = percentile_column if calibrated else None

    def __call__(self, batch: Batch) -> dict[str, Any]:
        for column in (self.prompt_column, self.candidate_column):
            if column not in batch:
                raise KeyError(f"rows have no column {column!r} (columns: {sorted(batch)})")
        rendered = [
            self.model.render(input_messages(parse_input_cell(cell)))
            for cell in batch[self.prompt_column]
        ]
        prompts = list(dict.fromkeys(rendered))
        index = {prompt: i for i, prompt in enumerate(prompts)}
        groups = np.array([index[prompt] for prompt in rendered], dtype=np.int64)
        candidates = [str(c) for c in batch[self.candidate_column]]
        rewards = self.model.score_by_input(prompts, groups, candidates)
        result = {**batch, self.reward_column: rewards}
        if self.percentile_column is not None:
            result[self.percentile_column] = np.asarray(self.model.percentile(rewards))
        return result
