"""The rounds' picks as OpenAI fine-tuning files, for hosted models trained elsewhere.

- supervised (`sft.jsonl`): `{"messages": [system?, user, ..., assistant]}`, the best answer as
  the assistant's turn;
- preference (`preference.jsonl`, OpenAI's DPO format): `{"input": {"messages": [...]},
  "preferred_output": [assistant], "non_preferred_output": [assistant]}`, best against worst.

The same selection as local training (`raft_rows`, `preference_rows`), so a hosted model is
taught on exactly what a local one would be.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_irl.data.jsonl import write_jsonl
from langchain_irl.policy.rounds import Scored, preference_rows, raft_rows

SFT_FILE = "sft.jsonl"
PREFERENCE_FILE = "preference.jsonl"


def openai_sft_rows(scored: Sequence[Scored], keep_percentile: float = 0.0) -> list[dict]:
    """OpenAI chat fine-tuning rows of the RAFT picks."""
    return [
        {"messages": [*_roles(r["prompt"]), *_roles(r["completion"])]}
        for r in raft_rows(scored, keep_percentile)
    ]


def openai_preference_rows(scored: Sequence[Scored], margin: float = 0.0) -> list[dict]:
    """OpenAI preference (DPO) fine-tuning rows of the best-versus-worst pairs."""
    return [
        {
            "input": {"messages": _roles(r["prompt"])},
            "preferred_output": _roles(r["chosen"]),
            "non_preferred_output": _roles(r["rejected"]),
        }
        for r in preference_rows(scored, margin)
    ]


def write_openai_exports(
    scored: Sequence[Scored],
    folder: str | Path,
    *,
    keep_percentile: float = 0.0,
    margin: float = 0.0,
) -> dict[str, int]:
    """Write `sft.jsonl` and `preference.jsonl` into `folder`; returns the rows of each."""
    target = Path(folder)
    return {
        SFT_FILE: write_jsonl(target / SFT_FILE, openai_sft_rows(scored, keep_percentile)),
        PREFERENCE_FILE: write_jsonl(
            target / PREFERENCE_FILE, openai_preference_rows(scored, margin)
        ),
    }


def _roles(messages: Any) -> list[dict[str, str]]:
    """Role/content messages in OpenAI's roles (a plain string prompt is the user's turn)."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    names = {"human": "user", "ai": "assistant"}
    return [{"role": names.get(m["role"], m["role"]), "content": m["content"]} for m in messages]
