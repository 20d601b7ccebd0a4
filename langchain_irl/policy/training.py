"""LoRA fine-tuning of the policy with TRL: SFT on kept answers, or DPO on pairs.

Each round trains a fresh LoRA adapter on the current policy and merges it in. The adapter is
saved (PEFT's folder: `adapter_config.json`, `adapter_model.safetensors`) before it is merged, so
a resumed run rebuilds the policy as base + round 1 + round 2 ... without training again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_irl.extras import require

Method = Literal["sft", "dpo"]


@dataclass(frozen=True)
class LoraTraining:
    """How each round's adapter is trained (the same for behaviour cloning, for comparison)."""

    steps: int = 50
    batch_size: int = 4
    learning_rate: float = 2e-4
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    beta: float = 0.1  # DPO's strength of the pull towards the reference (the round's start)
    max_length: int = 512  # tokens of prompt and answer together
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def fine_tune(
    model: Any,
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    method: Method,
    training: LoraTraining,
    adapter: Path,
    *,
    device: str = "cpu",
    progress: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """Train a LoRA adapter on `rows` (TRL's prompt-completion rows for `sft`, preference rows
    for `dpo`), save it to `adapter` (replaced atomically), and return the merged model and what
    training did (rows, steps, loss, seconds)."""
    trl = require("trl", "langchain-irl distill", "policy")
    peft = require("peft", "langchain-irl distill", "policy")
    datasets = require("datasets", "langchain-irl distill", "policy")
    if not rows:
        raise ValueError(f"no {method} rows to train on")
    started = time.perf_counter()
    lora = peft.LoraConfig(
        r=training.lora_rank,
        lora_alpha=training.lora_alpha,
        lora_dropout=training.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    if not progress:
        datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as scratch:  # TRL wants an output_dir; nothing is kept
        common = {
            "output_dir": scratch,
            "max_steps": training.steps,
            "per_device_train_batch_size": training.batch_size,
            "learning_rate": training.learning_rate,
            "max_length": training.max_length,
            "seed": training.seed,
            "data_seed": training.seed,
            "use_cpu": device == "cpu",
            # TRL's default bf16 autocast: kept on a GPU; on a CPU, float32 (exact, and fast
            # where the CPU has no bf16 units)
            **({"bf16": False} if device == "cpu" else {}),
            "gradient_checkpointing": False,  # small models: memory is not the limit, time is
            "report_to": "none",
            "save_strategy": "no",
            "logging_strategy": "no",
            "disable_tqdm": not progress,
        }
        dataset = datasets.Dataset.from_list(list(rows))
        if method == "sft":
            trainer = trl.SFTTrainer(
                model=model,
                args=trl.SFTConfig(**common),
                train_dataset=dataset,
                processing_class=tokenizer,
                peft_config=lora,
            )
        elif method == "dpo":
            trainer = trl.DPOTrainer(
                model=model,
                args=trl.DPOConfig(beta=training.beta, **common),
                train_dataset=dataset,
                processing_class=tokenizer,
                peft_config=lora,
            )
        else:
            raise ValueError(f"unknown method {method!r}; use sft or dpo")
        result = trainer.train()
    save_adapter(trainer.model, adapter)
    merged = trainer.model.merge_and_unload().eval()
    return merged, {
        "method": method,
        "rows": len(rows),
        "steps": int(result.global_step),
        "loss": float(result.training_loss),
        "seconds": round(time.perf_counter() - started, 1),
    }


def save_adapter(peft_model: Any, adapter: Path) -> None:
    """The adapter's folder, written beside its place and renamed into it."""
    adapter.parent.mkdir(parents=True, exist_ok=True)
    partial = adapter.with_name(f".partial-{adapter.name}")
    shutil.rmtree(partial, ignore_errors=True)
    peft_model.save_pretrained(partial)
    if adapter.exists():
        shutil.rmtree(adapter)
    os.replace(partial, adapter)


def merge_adapter(model: Any, adapter: Path) -> Any:
    """`model` with a saved adapter merged in (a finished round, replayed on resume)."""
    peft = require("peft", "langchain-irl distill", "policy")
    return peft.PeftModel.from_pretrained(model, adapter).merge_and_unload().eval()
