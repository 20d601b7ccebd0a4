"""Fine-tune the sentence encoder jointly with the reward head (what moves quality most).

Each step draws `batch` demonstrations, each with `samples_per_demo` policy samples of its input,
encodes prompts and candidates with the trainable encoder (dynamic padding: each batch is padded
to its longest text), and takes an AdamW step on the objective. Only the top `layers` transformer
layers train (all of them, and the embeddings, when `layers` is None). Checkpoints (safetensors +
JSON, no pickle) are written every `checkpoint_every` steps; a run started again with the same
checkpoint folder resumes where it stopped, and draws the same batches it would have drawn.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from langchain_irl.train.config import FineTuneConfig
from langchain_irl.train.encoder import SentenceEncoder
from langchain_irl.train.head import Layer
from langchain_irl.train.head_training import RewardHead, cell_phi
from langchain_irl.train.losses import CandidateSets, objective_loss

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FineTuneReport:
    steps: int
    seconds: float
    pairs_per_second: float


def fine_tune(
    encoder: SentenceEncoder,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    texts: Sequence[str],
    groups: np.ndarray,
    is_demo: np.ndarray,
    head_layers: Sequence[Layer],
    objective: str,
    config: FineTuneConfig,
    *,
    max_tokens: int,
    off_topic: int = 0,
    prompt_tokenizer: PreTrainedTokenizerBase | None = None,
    seed: int = 0,
) -> tuple[list[Layer], FineTuneReport]:
    """Train `encoder` in place; return the jointly trained head's layers and the throughput.

    `prompt_tokenizer` encodes the prompts (e.g. one that truncates on the left), default
    `tokenizer`."""
    sets = CandidateSets.from_groups(groups, is_demo)
    if len(sets.demos) == 0:
        raise ValueError("no input has both a demonstration and a policy sample to fine-tune on")
    torch.manual_seed(seed)
    head = RewardHead.from_layers(head_layers)
    trainable = _trainable_parameters(encoder, config.layers)
    optimizer = torch.optim.AdamW(
        [
            {"params": trainable, "lr": config.encoder_learning_rate},
            {"params": list(head.parameters()), "lr": config.head_learning_rate},
        ],
        weight_decay=0.01,
    )
    start = _resume(config.checkpoint_dir, encoder, head, optimizer)
    encoder.train()
    started = time.perf_counter()
    progress = tqdm(
        range(start, config.steps),
        desc="fine-tuning",
        unit="step",
        initial=start,
        total=config.steps,
    )
    for step in progress:
        # The same batches and dropout masks whether the run was resumed or not.
        rng = np.random.default_rng([seed, step])
        torch.manual_seed(seed * 1_000_003 + step)
        rows = rng.choice(len(sets.demos), size=min(config.batch, len(sets.demos)), replace=False)
        matrix = sets.draw(config.samples_per_demo, rng, rows, off_topic=off_topic)
        rewards = _rewards(
            encoder,
            head,
            (prompt_tokenizer or tokenizer, tokenizer),
            prompts,
            texts,
            groups,
            matrix,
            max_tokens,
        )
        loss = objective_loss(objective, rewards)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*trainable, *head.parameters()], 1.0)
        optimizer.step()
        progress.set_postfix(loss=f"{float(loss):.3f}")
        if config.checkpoint_dir and (step + 1) % config.checkpoint_every == 0:
            _save(config.checkpoint_dir, encoder, head, optimizer, step + 1)
    encoder.eval()
    seconds = time.perf_counter() - started
    done = config.steps - start
    pairs = done * config.batch * config.samples_per_demo
    report = FineTuneReport(config.steps, seconds, pairs / seconds if seconds > 0 else 0.0)
    logger.info(
        "fine-tuned %d steps in %.0f s (%.1f pairs/s)", done, seconds, report.pairs_per_second
    )
    return head.to_layers(), report


def _rewards(
    encoder: SentenceEncoder,
    head: RewardHead,
    tokenizers: tuple[PreTrainedTokenizerBase, PreTrainedTokenizerBase],
    prompts: Sequence[str],
    texts: Sequence[str],
    groups: np.ndarray,
    matrix: np.ndarray,
    max_tokens: int,
) -> torch.Tensor:
    """Rewards (rows, columns): every column under its row's input (each text encoded once)."""
    records, inverse = np.unique(matrix, return_inverse=True)
    prompt_ids, prompt_inverse = np.unique(groups[matrix[:, 0]], return_inverse=True)
    prompt_tokenizer, tokenizer = tokenizers
    candidate_embeddings, token_counts = _encode(
        encoder, tokenizer, [texts[i] for i in records], max_tokens
    )
    prompt_embeddings, _ = _encode(
        encoder, prompt_tokenizer, [prompts[i] for i in prompt_ids], max_tokens
    )
    cells = torch.from_numpy(inverse.reshape(matrix.shape))
    features = torch.log1p(token_counts.float())[:, None]
    phi = cell_phi(
        prompt_embeddings[torch.from_numpy(prompt_inverse)],
        candidate_embeddings[cells],
        features[cells],
    )
    return head(phi)


def _encode(
    encoder: SentenceEncoder,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    max_tokens: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer(
        texts,
        padding=True,
        truncation=True,
        max_length=max_tokens,
        return_tensors="pt",
        return_special_tokens_mask=True,
    )
    content = (batch["attention_mask"] * (1 - batch["special_tokens_mask"])).sum(dim=1)
    return encoder(batch["input_ids"], batch["attention_mask"]), content


def _trainable_parameters(encoder: SentenceEncoder, layers: int | None) -> list[torch.nn.Parameter]:
    for parameter in encoder.parameters():
        parameter.requires_grad = layers is None
    if layers is None:
        return list(encoder.parameters())
    blocks = _transformer_blocks(encoder)
    chosen = [p for block in blocks[len(blocks) - layers :] for p in block.parameters()]
    for parameter in chosen:
        parameter.requires_grad = True
    return chosen


def _transformer_blocks(encoder: SentenceEncoder) -> list[torch.nn.Module]:
    for module in encoder.model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1:
            return list(module)
    raise ValueError("could not find the encoder's transformer layers; fine-tune all layers")


def _save(
    folder: Path,
    encoder: SentenceEncoder,
    head: RewardHead,
    optimizer: torch.optim.Optimizer,
    step: int,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"encoder.{k}": v.contiguous() for k, v in encoder.state_dict().items()}
    tensors |= {f"head.{k}": v.contiguous() for k, v in head.state_dict().items()}
    state = optimizer.state_dict()
    for index, slots in state["state"].items():
        for name, value in slots.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).contiguous()
    temporary = folder / "checkpoint.tmp.safetensors"
    save_file(tensors, str(temporary))
    temporary.replace(folder / "checkpoint.safetensors")
    (folder / "checkpoint.json").write_text(json.dumps({"step": step}))


def _resume(
    folder: Path | None,
    encoder: SentenceEncoder,
    head: RewardHead,
    optimizer: torch.optim.Optimizer,
) -> int:
    if folder is None or not (folder / "checkpoint.json").exists():
        return 0
    step = int(json.loads((folder / "checkpoint.json").read_text())["step"])
    tensors = load_file(str(folder / "checkpoint.safetensors"))
    encoder.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")})
    head.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("head.")})
    state = optimizer.state_dict()
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    state["state"] = slots
    optimizer.load_state_dict(state)
    logger.info("resumed fine-tuning from %s at step %d", folder, step)
    return step
