"""Fine-tune the sentence encoder jointly with the reward head (what moves quality most).

Each step draws `batch` demonstrations, each with `samples_per_demo` policy samples of its input,
encodes them with the trainable encoder (dynamic padding: each batch is padded to its longest
text) and takes an AdamW step on the objective. A bi-encoder encodes each prompt and each
candidate once; a cross-encoder reads every (prompt, candidate) cell of the step as one sequence.
Texts are tokenized by the runtime's `TextReader`, so the encoder trains on exactly the token ids
it is served, one step ahead in a worker thread so that the device never waits for them.

Only the top `layers` transformer layers train (all of them, and the embeddings, when `layers` is
None). On CUDA the forward pass runs under autocast (bf16 where the GPU has it, else fp16 with loss
scaling); the weights stay fp32. Checkpoints (safetensors + JSON, no pickle) are written every
`checkpoint_every` steps; a run started again with the same checkpoint folder resumes where it
stopped, and draws the same batches it would have drawn.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Encoding
from tqdm.auto import tqdm

from langchain_irl.reward_model.card import Architecture
from langchain_irl.reward_model.encoder import TextReader, Truncation, content_tokens
from langchain_irl.reward_model.features import TRAINED_FEATURES, candidate_features
from langchain_irl.train.config import Device, FineTuneConfig
from langchain_irl.train.encoder import SentenceEncoder
from langchain_irl.train.head import Layer
from langchain_irl.train.head_training import RewardHead, cell_phi
from langchain_irl.train.losses import CandidateSets, objective_loss, pair_loss

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FineTuneReport:
    steps: int
    seconds: float
    pairs_per_second: float
    device: str


@dataclass(frozen=True)
class Tokens:
    """Padded token ids of some texts, and the head's scalar features of each (n, f)."""

    ids: torch.Tensor
    mask: torch.Tensor
    features: torch.Tensor

    @classmethod
    def of(cls, encodings: Sequence[Encoding], features: np.ndarray) -> Tokens:
        width = max(len(e.ids) for e in encodings)
        ids = torch.zeros((len(encodings), width), dtype=torch.long)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = torch.tensor(encoding.ids, dtype=torch.long)
        lengths = torch.tensor([len(e.ids) for e in encodings])
        mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
        return cls(ids, mask, torch.from_numpy(np.asarray(features, np.float32)))

    def to(self, device: torch.device) -> Tokens:
        return Tokens(self.ids.to(device), self.mask.to(device), self.features.to(device))


@dataclass(frozen=True)
class Batch:
    """One step's candidate matrix (rows, columns), tokenized on the CPU.

    A bi-encoder's batch holds each distinct candidate once (`texts`, with `cells` indexing them)
    and each row's prompt (`prompts`, `prompt_rows`); a cross-encoder's holds every cell as a
    (prompt, candidate) pair, row by row."""

    shape: tuple[int, int]
    texts: Tokens
    cells: torch.Tensor | None = None
    prompts: Tokens | None = None
    prompt_rows: torch.Tensor | None = None


class BatchReader:
    """Turns a candidate matrix into a `Batch`, as the runtime reads the texts."""

    def __init__(
        self,
        reader: TextReader,
        prompts: Sequence[str],
        texts: Sequence[str],
        groups: np.ndarray,
        *,
        architecture: Architecture = "bi-encoder",
        prompt_keeps: Truncation = "start",
        features: Sequence[str] = TRAINED_FEATURES,
    ) -> None:
        self.reader = reader
        self.features = features
        self.prompts = prompts
        self.texts = texts
        self.groups = groups
        self.architecture = architecture
        self.prompt_keeps = prompt_keeps

    def __call__(self, matrix: np.ndarray) -> Batch:
        row_prompts = self.groups[matrix[:, 0]]
        if self.architecture == "cross-encoder":
            pairs = [
                pair
                for row, prompt in zip(matrix, row_prompts, strict=True)
                for pair in self.reader.pairs(
                    self.prompts[prompt], [self.texts[i] for i in row], keep=self.prompt_keeps
                )
            ]
            encodings, counts = zip(*pairs, strict=True)
            cells = [self.texts[i] for i in matrix.reshape(-1)]
            features = candidate_features(cells, np.array(counts), self.features)
            return Batch(matrix.shape, Tokens.of(encodings, features))
        records, inverse = np.unique(matrix, return_inverse=True)
        prompt_ids, prompt_inverse = np.unique(row_prompts, return_inverse=True)
        texts = self._first_windows([self.texts[i] for i in records], "start", self.features)
        prompts = self._first_windows([self.prompts[i] for i in prompt_ids], self.prompt_keeps, ())
        return Batch(
            matrix.shape,
            texts,
            torch.from_numpy(inverse.reshape(matrix.shape)),
            prompts,
            torch.from_numpy(prompt_inverse),
        )

    def _first_windows(self, texts: list[str], keep: Truncation, features: Sequence[str]) -> Tokens:
        windows = [first for first, *_ in self.reader.windows(texts, keep=keep)]
        counts = np.array([content_tokens(w) for w in windows])
        return Tokens.of(windows, candidate_features(texts, counts, features))


def resolve_device(device: Device) -> torch.device:
    """`auto`: CUDA when this machine has it, else the CPU. `cuda` without CUDA is an error."""
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "--device cuda: PyTorch sees no CUDA device here (a CPU build, or no GPU); use "
            "--device cpu or auto"
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def fine_tune(
    encoder: SentenceEncoder,
    batches: BatchReader,
    is_demo: np.ndarray,
    head_layers: Sequence[Layer],
    objective: str,
    config: FineTuneConfig,
    *,
    off_topic: int = 0,
    source: np.ndarray | None = None,
    edit_weight: float = 1.0,
    seed: int = 0,
) -> tuple[list[Layer], FineTuneReport]:
    """Train `encoder` in place (it ends on the CPU); return the jointly trained head's layers
    and the throughput. `source` and `edit_weight`: the edit negatives, as in `train_head`."""
    sets = CandidateSets.from_groups(batches.groups, is_demo, source)
    if len(sets.demos) == 0:
        raise ValueError("no input has both a demonstration and a policy sample to fine-tune on")
    device = resolve_device(config.device)
    torch.manual_seed(seed)
    head = RewardHead.from_layers(head_layers)
    trainable = _trainable_parameters(encoder, config.layers)
    encoder.to(device)
    head.to(device)
    optimizer = torch.optim.AdamW(
        [
            {"params": trainable, "lr": config.encoder_learning_rate},
            {"params": list(head.parameters()), "lr": config.head_learning_rate},
        ],
        weight_decay=0.01,
    )
    start = _resume(config.checkpoint_dir, encoder, head, optimizer, device)
    precision = _autocast_dtype(device)
    scaler = torch.amp.GradScaler("cuda") if precision == torch.float16 else None

    def prepare(step: int) -> tuple[Batch, Batch | None]:
        # The same batches whether the run was resumed or not.
        rng = np.random.default_rng([seed, step])
        rows = rng.choice(len(sets.demos), size=min(config.batch, len(sets.demos)), replace=False)
        matrix = sets.draw(config.samples_per_demo, rng, rows, off_topic=off_topic, edits=True)
        pairs = sets.draw_pairs(len(rows), rng)
        return batches(matrix), batches(pairs) if len(pairs) else None

    encoder.train()
    started = time.perf_counter()
    progress = tqdm(
        range(start, config.steps),
        desc=f"fine-tuning ({device.type})",
        unit="step",
        initial=start,
        total=config.steps,
    )
    with ThreadPoolExecutor(1, "tokenize") as tokenizer:
        upcoming = tokenizer.submit(prepare, start)
        for step in progress:
            batch, pair_batch = upcoming.result()
            if step + 1 < config.steps:
                upcoming = tokenizer.submit(prepare, step + 1)
            torch.manual_seed(seed * 1_000_003 + step)  # the same dropout masks, resumed or not
            with torch.autocast(device.type, dtype=precision, enabled=precision is not None):
                rewards = _rewards(encoder, head, batch, device).float()
                loss = objective_loss(objective, rewards, sets.edit_columns, edit_weight)
                if pair_batch is not None:
                    pair_rewards = _rewards(encoder, head, pair_batch, device).float()
                    loss = loss + pair_loss(pair_rewards, edit_weight)
            optimizer.zero_grad()
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            torch.nn.utils.clip_grad_norm_([*trainable, *head.parameters()], 1.0)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            progress.set_postfix(loss=f"{loss.item():.3f}")
            if config.checkpoint_dir and (step + 1) % config.checkpoint_every == 0:
                _save(config.checkpoint_dir, encoder, head, optimizer, step + 1)
    encoder.eval()
    encoder.to("cpu")
    head.to("cpu")
    seconds = time.perf_counter() - started
    done = config.steps - start
    pairs = done * config.batch * config.samples_per_demo
    rate = pairs / seconds if seconds > 0 else 0.0
    report = FineTuneReport(config.steps, seconds, rate, device.type)
    logger.info("fine-tuned %d steps on %s in %.0f s (%.1f pairs/s)", done, device, seconds, rate)
    return head.to_layers(), report


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None  # CPU: fp32, so that a CPU rebuild is byte-reproducible
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _rewards(
    encoder: SentenceEncoder, head: RewardHead, batch: Batch, device: torch.device
) -> torch.Tensor:
    """Rewards (rows, columns): every column under its row's input."""
    texts = batch.texts.to(device)
    embeddings = encoder(texts.ids, texts.mask)
    features = texts.features
    if batch.prompts is None:  # a cross-encoder: one encoded pair per cell
        return head(torch.cat([embeddings, features], dim=1).reshape(*batch.shape, -1))
    assert batch.cells is not None and batch.prompt_rows is not None
    prompts = batch.prompts.to(device)
    prompt_embeddings = encoder(prompts.ids, prompts.mask)
    cells = batch.cells.to(device)
    phi = cell_phi(
        prompt_embeddings[batch.prompt_rows.to(device)], embeddings[cells], features[cells]
    )
    return head(phi)


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
    tensors = {f"encoder.{k}": v.cpu().contiguous() for k, v in encoder.state_dict().items()}
    tensors |= {f"head.{k}": v.cpu().contiguous() for k, v in head.state_dict().items()}
    state = optimizer.state_dict()
    for index, slots in state["state"].items():
        for name, value in slots.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).cpu().contiguous()
    temporary = folder / "checkpoint.tmp.safetensors"
    save_file(tensors, str(temporary))
    temporary.replace(folder / "checkpoint.safetensors")
    (folder / "checkpoint.json").write_text(json.dumps({"step": step}))


def _resume(
    folder: Path | None,
    encoder: SentenceEncoder,
    head: RewardHead,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> int:
    if folder is None or not (folder / "checkpoint.json").exists():
        return 0
    step = int(json.loads((folder / "checkpoint.json").read_text())["step"])
    tensors = load_file(str(folder / "checkpoint.safetensors"), device=str(device))
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
