"""The second half of IRL: improve the policy itself against the learned reward.

`distill` samples n answers per input from a local causal LM, scores them with a `RewardModel`,
keeps the best (RAFT) or best-versus-worst pairs, and fine-tunes LoRA adapters with TRL, round
after round, into a Hugging Face model folder. `TransformersChat` serves that folder (or any
local causal LM) as a LangChain chat model; `TRLReward` hands the reward to TRL's online trainers
(`GRPOTrainer`, `RLOOTrainer`); `export_best_of_n` and `write_openai_exports` write the same
rounds as OpenAI fine-tuning files, for hosted models.

Training needs the `[policy]` extra (trl, peft, accelerate, gguf) on top of `[train]`; the chat
model needs `[train]` (torch, transformers); the reward callable and the exports need neither.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_irl.policy.chat import TransformersChat, load_causal_lm
    from langchain_irl.policy.distillation import (
        DistillConfig,
        DistillResult,
        distill,
        export_best_of_n,
    )
    from langchain_irl.policy.exports import (
        openai_preference_rows,
        openai_sft_rows,
        write_openai_exports,
    )
    from langchain_irl.policy.rewards import TRLReward
    from langchain_irl.policy.training import LoraTraining

# Imported on first use: the exports and the reward callable need no torch.
_EXPORTS = {
    "DistillConfig": "langchain_irl.policy.distillation",
    "DistillResult": "langchain_irl.policy.distillation",
    "LoraTraining": "langchain_irl.policy.training",
    "TRLReward": "langchain_irl.policy.rewards",
    "TransformersChat": "langchain_irl.policy.chat",
    "distill": "langchain_irl.policy.distillation",
    "export_best_of_n": "langchain_irl.policy.distillation",
    "load_causal_lm": "langchain_irl.policy.chat",
    "openai_preference_rows": "langchain_irl.policy.exports",
    "openai_sft_rows": "langchain_irl.policy.exports",
    "write_openai_exports": "langchain_irl.policy.exports",
}
__all__ = [
    "DistillConfig",
    "DistillResult",
    "LoraTraining",
    "TRLReward",
    "TransformersChat",
    "distill",
    "export_best_of_n",
    "load_causal_lm",
    "openai_preference_rows",
    "openai_sft_rows",
    "write_openai_exports",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'langchain_irl.policy' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
