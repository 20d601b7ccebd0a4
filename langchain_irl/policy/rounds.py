"""One round's data: n answers per input from the policy, their rewards, and what is kept.

Sampling goes through `collect`: each input's answers are appended to `<name>.samples.jsonl` as
they come (flushed, fsync'ed, a torn last line cut off), so a killed round resumes with only the
missing inputs. Rewards are a function of (prompt, answer, model) alone, so they are computed
again from the samples rather than trusted from a file, and written beside them
(`<name>.scored.jsonl`, one line per input) for reading.

What is kept: RAFT keeps each input's best answer, above a percentile of the round's best
answers; DPO keeps best against worst when their reward margin is large enough. Both in TRL's
conversational rows (`batch.best_of_n.sft_record` and `pair_record`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from langchain_irl.batch.best_of_n import best_of_n_row, pair_record, sft_record
from langchain_irl.data.collect import chat_model_sampler, collect, sample_key
from langchain_irl.data.formats import parse_input
from langchain_irl.data.jsonl import read_records, write_jsonl
from langchain_irl.engine.runner import on_engine_loop
from langchain_irl.engine.sampling import ChatRunnable
from langchain_irl.reward_model.model import RewardModel

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Scored:
    """An input (the policy's prompt, as role/content messages), its answers and their rewards."""

    input: Messages
    samples: list[str]
    rewards: list[float]

    def best_of_n_row(self) -> dict[str, Any]:
        """The row `sft_record` and `pair_record` read: the best answer (the first of equal
        rewards) and the worst distinct one."""
        best = int(np.argmax(self.rewards))
        return {"input": self.input, **best_of_n_row(self.samples, self.rewards, best)}

    def to_json(self) -> dict[str, Any]:
        return {"input": self.input, "samples": self.samples, "rewards": self.rewards}


def sample_and_score(
    chat: ChatRunnable,
    reward_model: RewardModel,
    prompts: Sequence[Messages],
    n: int,
    folder: Path,
    name: str,
    *,
    concurrency: int = 1,
) -> list[Scored]:
    """n answers per prompt from `chat`, resumed from `folder/<name>.samples.jsonl`, scored.
    Returns one `Scored` per distinct prompt, in the prompts' order. An input whose request
    failed raises RuntimeError once the others are on disk: run again to ask only for it."""
    cache = folder / f"{name}.samples.jsonl"
    values = [parse_input(p) for p in prompts]
    sampler = chat_model_sampler(chat, concurrency=concurrency)
    report = on_engine_loop(collect(values, n, cache, sampler, concurrency=concurrency))
    if report.failed_inputs:
        raise RuntimeError(
            f"{cache}: {len(report.failed_inputs)} of {report.inputs} inputs got no answers "
            "(the warnings above say why); run again to ask only for those"
        )
    answers: dict[str, list[str]] = defaultdict(list)
    for record in read_records(cache, lambda r: r):
        answers[sample_key(parse_input(record["input"]))].append(str(record["output"]))
    scored = []
    for value in dict.fromkeys(values):
        prompt = [dict(m) for m in _messages(value)]
        texts = answers[sample_key(value)][:n]
        rewards = [float(r) for r in reward_model.score(prompt, texts)]
        scored.append(Scored(prompt, texts, rewards))
    write_jsonl(folder / f"{name}.scored.jsonl", (s.to_json() for s in scored))
    return scored


def raft_rows(scored: Sequence[Scored], keep_percentile: float = 0.0) -> list[dict[str, Any]]:
    """TRL prompt-completion rows: each input's best answer, kept when its reward is at or above
    the `keep_percentile`-th percentile of the round's best answers (0 keeps every one; 50 the
    better half). Empty best answers are left out."""
    rows = [s.best_of_n_row() for s in scored]
    if not rows:
        return []
    floor = float(np.percentile([r["chosen_reward"] for r in rows], keep_percentile))
    kept = [sft_record(r) for r in rows if r["chosen_reward"] >= floor]
    return [r for r in kept if r is not None]


def preference_rows(scored: Sequence[Scored], margin: float = 0.0) -> list[dict[str, Any]]:
    """TRL preference rows: best against worst, for inputs whose two differ by a reward margin
    above 0 and at least `margin`."""
    pairs = (pair_record(s.best_of_n_row(), margin) for s in scored)
    return [p for p in pairs if p is not None]


def mean_reward(scored: Sequence[Scored]) -> float:
    """The mean reward of every answer (the policy's average, not its best)."""
    rewards = [r for s in scored for r in s.rewards]
    return float(np.mean(rewards)) if rewards else float("nan")


def _messages(value: Any) -> Messages:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [{"role": role, "content": content} for role, content in value]
