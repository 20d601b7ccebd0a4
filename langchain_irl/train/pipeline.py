"""demonstrations + policy samples -> a verified reward-model folder, with held-out metrics.

The exported folder is re-loaded with the runtime (`RewardModel`) and the validation set re-scored
with it, so the card's metrics are those of the model exactly as users will run it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from tqdm.auto import tqdm

from langchain_irl.data.formats import Example, check_matched
from langchain_irl.evaluation.metrics import reward_metrics, spearman
from langchain_irl.evaluation.report import matching_accuracy
from langchain_irl.reward_model.card import (
    DEMO_EMBEDDINGS_FILE,
    DEMOS_FILE,
    ENCODER_FILE,
    HEAD_FILE,
    TOKENIZER_FILE,
    Architecture,
    Calibration,
    HeadInfo,
    ModelCard,
)
from langchain_irl.reward_model.encoder import OnnxEncoder, TextReader, Truncation
from langchain_irl.reward_model.model import RewardModel, candidate_features
from langchain_irl.reward_model.rendering import PromptFormat
from langchain_irl.train.artifact import write_model_folder
from langchain_irl.train.config import TrainConfig
from langchain_irl.train.embedding_cache import CachedEncoder
from langchain_irl.train.encoder import (
    SentenceEncoder,
    export_encoder,
    load_encoder,
    tokenizer_json,
)
from langchain_irl.train.finetune import BatchReader, fine_tune
from langchain_irl.train.head import Layer, build_head, head_features, head_forward
from langchain_irl.train.head_training import (
    CandidateFeatures,
    RewardHead,
    standardised_layers,
    train_head,
)
from langchain_irl.train.objectives import OBJECTIVES
from langchain_irl.train.supervised import supervised_head

logger = logging.getLogger(__name__)

# int8 is shipped only if it keeps the reward ranking of the fp32 encoder (Spearman on validation).
QUANTIZATION_MIN_SPEARMAN = 0.99
# The supervised ceiling's figures in the card, prefixed `supervised_`.
CEILING_METRICS = ("pairwise_accuracy", "spearman_gold", "best_of_16_gap_closed")
# Fewer held-out inputs than this and the card's metrics are mostly noise: say so.
MIN_VALIDATION_INPUTS = 10


@dataclass
class EncodedSet:
    """Records encoded once: candidate embeddings, their input's index, labels and gold scores."""

    prompts: list[str]
    prompt_embeddings: np.ndarray | None  # None for a cross-encoder: `embeddings` read the input
    texts: list[str]
    groups: np.ndarray
    embeddings: np.ndarray
    token_counts: np.ndarray
    is_demo: np.ndarray
    gold: np.ndarray

    def subset(self, mask: np.ndarray) -> EncodedSet:
        return EncodedSet(
            self.prompts,
            self.prompt_embeddings,
            [t for t, m in zip(self.texts, mask, strict=True) if m],
            self.groups[mask],
            self.embeddings[mask],
            self.token_counts[mask],
            self.is_demo[mask],
            self.gold[mask],
        )

    @property
    def lengths(self) -> np.ndarray:
        """Each text's length in characters (the length controls of `reward_metrics`)."""
        return np.array([len(text) for text in self.texts], dtype=np.int64)

    def phi(self, feature_names: Sequence[str]) -> np.ndarray:
        features = candidate_features(self.token_counts, feature_names)
        prompts = None if self.prompt_embeddings is None else self.prompt_embeddings[self.groups]
        return head_features(prompts, self.embeddings, features)


def encode_examples(
    encoder: OnnxEncoder | CachedEncoder,
    demos: Sequence[Example],
    samples: Sequence[Example],
    prompt_format: PromptFormat,
    prompt_keeps: Truncation = "start",
    candidate_chunks: int = 1,
    batch_size: int = 512,
    architecture: Architecture = "bi-encoder",
) -> EncodedSet:
    """Encode every record once: a bi-encoder's prompts and outputs apart, a cross-encoder's
    (prompt, output) pairs."""
    records = [*demos, *samples]
    rendered = [record.prompt(prompt_format) for record in records]
    prompts = sorted(set(rendered))
    index = {prompt: i for i, prompt in enumerate(prompts)}
    texts = [record.output for record in records]
    groups = np.array([index[p] for p in rendered], dtype=np.int64)
    if architecture == "cross-encoder":
        embeddings, token_counts = _encode_pairs(encoder, prompts, groups, texts, prompt_keeps)
        prompt_embeddings = None
    else:
        prompt_embeddings, embeddings, token_counts = _encode_apart(
            encoder, prompts, texts, prompt_keeps, candidate_chunks, batch_size
        )
    return EncodedSet(
        prompts=prompts,
        prompt_embeddings=prompt_embeddings,
        texts=texts,
        groups=groups,
        embeddings=embeddings,
        token_counts=token_counts,
        is_demo=np.arange(len(records)) < len(demos),
        gold=np.array([np.nan if r.score is None else r.score for r in records], dtype=np.float64),
    )


def _encode_pairs(
    encoder: OnnxEncoder | CachedEncoder,
    prompts: list[str],
    groups: np.ndarray,
    texts: list[str],
    prompt_keeps: Truncation,
) -> tuple[np.ndarray, np.ndarray]:
    embeddings = np.empty((len(texts), encoder.dim), dtype=np.float32)
    counts = np.empty(len(texts), dtype=np.int64)
    with tqdm(total=len(texts), desc="embedding pairs", unit="pair") as bar:
        for group, prompt in enumerate(prompts):
            (members,) = np.nonzero(groups == group)
            embeddings[members], counts[members] = encoder.encode_pairs(
                prompt, [texts[i] for i in members], keep=prompt_keeps
            )
            bar.update(len(members))
    return embeddings, counts


def _encode_apart(
    encoder: OnnxEncoder | CachedEncoder,
    prompts: list[str],
    texts: list[str],
    prompt_keeps: Truncation,
    candidate_chunks: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with tqdm(total=len(prompts) + len(texts), desc="embedding", unit="text") as bar:

        def encode(
            batch: list[str], keep: Truncation, chunks: int
        ) -> tuple[np.ndarray, np.ndarray]:
            embeddings = np.empty((len(batch), encoder.dim), dtype=np.float32)
            counts = np.empty(len(batch), dtype=np.int64)
            for start in range(0, len(batch), batch_size):
                part = slice(start, start + batch_size)
                embeddings[part], counts[part] = encoder.encode(
                    batch[part], keep=keep, chunks=chunks
                )
                bar.update(len(batch[part]))
            return embeddings, counts

        prompt_embeddings, _ = encode(prompts, prompt_keeps, 1)
        embeddings, token_counts = encode(texts, "start", candidate_chunks)
    return prompt_embeddings, embeddings, token_counts


def validation_mask(groups: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Hold out a share of inputs (never the same input in training and validation)."""
    unique = np.unique(groups)
    rng = np.random.default_rng(seed)
    n_valid = max(1, round(share * len(unique))) if share > 0 else 0
    held_out = rng.permutation(unique)[:n_valid]
    return np.isin(groups, held_out)


def train(
    demos: Sequence[Example], samples: Sequence[Example], out_dir: str | Path, config: TrainConfig
) -> ModelCard:
    """Train, export, re-score with the runtime, write the folder atomically; return its card."""
    if not demos or not samples:
        raise ValueError("training needs at least one demonstration and one policy sample")
    check_matched(demos, samples)  # before seconds of loading and exporting the encoder
    head_info = HeadInfo(kind=config.architecture, hidden=config.hidden)
    summary = _data_summary(demos, samples, config)
    with tempfile.TemporaryDirectory(prefix="langchain-irl-") as tmp:
        work = Path(tmp)
        torch_encoder, encoder_dir = load_encoder(config.encoder_dir)
        tokenizer_json(encoder_dir, work / TOKENIZER_FILE)
        fp32_info = export_encoder(torch_encoder, encoder_dir, work / "fp32.onnx")

        def encode() -> EncodedSet:  # with the encoder exported last
            encoder = _onnx_encoder(work, config, fp32_info.normalize)
            return encode_examples(
                encoder,
                demos,
                samples,
                config.prompt_format,
                config.prompt_reading,
                config.candidate_chunks,
                architecture=config.architecture,
            )

        data = encode()
        valid = validation_mask(data.groups, config.validation_share, config.seed)
        train_set, valid_set = data.subset(~valid), data.subset(valid)
        layers = fit_head(train_set, head_info, config)
        if config.fine_tune is not None:
            layers, report = _fine_tune(torch_encoder, work, train_set, layers, config)
            summary["fine_tune"] = report
            export_encoder(torch_encoder, encoder_dir, work / "fp32.onnx")
            data = encode()
            train_set, valid_set = data.subset(~valid), data.subset(valid)
            head = RewardHead.from_layers(layers)  # rescale on the fine-tuned features
            layers = standardised_layers(
                head, train_set.phi(head_info.features)[~train_set.is_demo]
            )
        summary["validation_inputs"] = validation_inputs = len(np.unique(data.groups[valid]))
        if validation_inputs < MIN_VALIDATION_INPUTS:
            logger.warning(
                "only %d validation inputs: the card's metrics are too noisy to trust (raise "
                "--validation-share, or give more inputs)",
                validation_inputs,
            )
        summary["inputs"] = len(data.prompts)

        reference = head_forward(layers, valid_set.phi(head_info.features))
        encoder = functools.partial(_onnx_encoder, work, config, fp32_info.normalize)
        _write_demonstrations(work, train_set, encoder)
        head_graph = build_head([layers], fp32_info.dim, len(head_info.features), head_info.kind)
        onnx.save(head_graph, work / HEAD_FILE)
        card = ModelCard(
            name=config.name or Path(out_dir).name,
            description=config.description,
            encoder=fp32_info,
            head=head_info,
            max_tokens=config.max_tokens,
            prompt_format=config.prompt_format,
            prompt_keeps=config.prompt_reading,
            candidate_chunks=config.candidate_chunks,
            objective=config.objective,
            training_data=summary,
        )
        model = _stage(work, "fp32", card)
        rewards = runtime_rewards(model, valid_set)
        if not np.allclose(rewards, reference, atol=1e-3):
            worst = float(np.abs(rewards - reference).max())
            raise RuntimeError(f"exported model disagrees with training (max |diff| {worst:.2e})")
        metrics: dict[str, float] = {}
        if config.quantize:
            int8_info = export_encoder(
                torch_encoder, encoder_dir, work / "int8.onnx", quantize=True
            )
            int8_model = _stage(work, "int8", card.model_copy(update={"encoder": int8_info}))
            int8_rewards = runtime_rewards(int8_model, valid_set)
            metrics["int8_reward_spearman"] = agreement = spearman(reference, int8_rewards)
            if agreement >= QUANTIZATION_MIN_SPEARMAN:
                model, rewards = int8_model, int8_rewards
            else:
                logger.warning(
                    "int8 encoder changes the reward ranking (Spearman %.4f < %.2f): shipping fp32",
                    agreement,
                    QUANTIZATION_MIN_SPEARMAN,
                )
        metrics |= reward_metrics(
            rewards, valid_set.groups, valid_set.is_demo, valid_set.gold, lengths=valid_set.lengths
        )
        matching = matching_accuracy(
            model, valid_set.prompts, valid_set.groups, valid_set.texts, valid_set.is_demo
        )
        if matching is not None:
            metrics["matching_accuracy"] = matching
        metrics |= supervised_ceiling(train_set, valid_set, head_info, config)
        calibration = Calibration(
            demo_scores=tuple(np.round(rewards[valid_set.is_demo], 5).tolist()),
            sample_scores=tuple(np.round(rewards[~valid_set.is_demo], 5).tolist()),
        )
        card = model.card.model_copy(update={"metrics": metrics, "calibration": calibration})
        write_model_folder(out_dir, card, {name: model.folder / name for name in card.files})
    return card


def fit_head(records: EncodedSet, head_info: HeadInfo, config: TrainConfig) -> list[Layer]:
    """The head's layers on frozen features, by the configured objective."""
    if config.objective in OBJECTIVES:
        phi = records.phi(head_info.features)
        return OBJECTIVES[config.objective](phi[records.is_demo], phi[~records.is_demo])
    data = CandidateFeatures.of(
        records.prompt_embeddings,
        records.groups,
        records.embeddings,
        candidate_features(records.token_counts, head_info.features),
    )
    # A frozen cross-encoder read each output with its own input only; fine-tuning adds off-topic.
    off_topic = 0 if records.prompt_embeddings is None else config.off_topic
    return train_head(
        data,
        records.is_demo,
        config.objective,
        hidden=config.hidden,
        off_topic=off_topic,
        seed=config.seed,
    )


def supervised_ceiling(
    train_set: EncodedSet, valid_set: EncodedSet, head_info: HeadInfo, config: TrainConfig
) -> dict[str, float]:
    """The card's `supervised_*` figures (empty without gold scores)."""
    rewards = supervised_rewards(
        train_set, valid_set, head_info.features, config.hidden, config.seed
    )
    if rewards is None:
        return {}
    ceiling = reward_metrics(rewards, valid_set.groups, valid_set.is_demo, valid_set.gold)
    return {f"supervised_{name}": ceiling[name] for name in CEILING_METRICS if name in ceiling}


def supervised_rewards(
    train_set: EncodedSet,
    valid_set: EncodedSet,
    features: Sequence[str] = ("log_tokens",),
    hidden: Sequence[int] = (),
    seed: int = 0,
) -> np.ndarray | None:
    """`valid_set`'s rewards under the same head on the same features, trained on `train_set`'s
    gold scores instead of its demonstrations (None without gold scores)."""
    layers = supervised_head(
        train_set.phi(features), train_set.groups, train_set.gold, hidden=hidden, seed=seed
    )
    return None if layers is None else head_forward(layers, valid_set.phi(features))


def _fine_tune(
    torch_encoder: SentenceEncoder,
    work: Path,
    records: EncodedSet,
    layers: list[Layer],
    config: TrainConfig,
) -> tuple[list[Layer], dict[str, object]]:
    assert config.fine_tune is not None
    batches = BatchReader(
        TextReader.from_file(work / TOKENIZER_FILE, config.max_tokens),
        records.prompts,
        records.texts,
        records.groups,
        architecture=config.architecture,
        prompt_keeps=config.prompt_reading,
    )
    layers, report = fine_tune(
        torch_encoder,
        batches,
        records.is_demo,
        layers,
        config.objective,
        config.fine_tune,
        off_topic=config.off_topic,
        seed=config.seed,
    )
    return layers, {
        "steps": report.steps,
        "batch": config.fine_tune.batch,
        "samples_per_demo": config.fine_tune.samples_per_demo,
        "layers": config.fine_tune.layers or "all",
        "device": report.device,
    }  # no wall-clock figures: a rebuild writes the same card, byte for byte


def _write_demonstrations(
    work: Path,
    records: EncodedSet,
    encoder: Callable[[], OnnxEncoder | CachedEncoder],
    limit: int = 5000,
) -> None:
    """Training demonstrations (at most `limit`, a fixed sample) and their outputs' embeddings,
    for `RewardModel.explain`. A cross-encoder's records hold pair embeddings: its outputs are
    embedded alone here, by the encoder `encoder` builds (called for a cross-encoder only)."""
    demos = np.flatnonzero(records.is_demo)
    if len(demos) > limit:
        demos = np.sort(np.random.default_rng(0).choice(demos, size=limit, replace=False))
    entries = [
        {
            "input": records.prompts[records.groups[i]],
            "output": records.texts[i],
            "tokens": int(records.token_counts[i]),
        }
        for i in demos
    ]
    (work / DEMOS_FILE).write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    if records.prompt_embeddings is None:
        embeddings, _ = encoder().encode([records.texts[i] for i in demos])
    else:
        embeddings = records.embeddings[demos]
    np.save(work / DEMO_EMBEDDINGS_FILE, embeddings.astype(np.float16))


def _onnx_encoder(work: Path, config: TrainConfig, normalize: bool) -> OnnxEncoder | CachedEncoder:
    files = (work / "fp32.onnx", work / TOKENIZER_FILE)
    encoder = OnnxEncoder.from_files(*files, config.max_tokens, normalize=normalize)
    if config.embedding_cache is None:
        return encoder
    return CachedEncoder(encoder, config.embedding_cache, files)


def _stage(work: Path, variant: str, card: ModelCard) -> RewardModel:
    """Write a complete folder with the `variant` encoder into `work`; load it with the runtime."""
    files = {
        ENCODER_FILE: work / f"{variant}.onnx",
        HEAD_FILE: work / HEAD_FILE,
        TOKENIZER_FILE: work / TOKENIZER_FILE,
        DEMOS_FILE: work / DEMOS_FILE,
        DEMO_EMBEDDINGS_FILE: work / DEMO_EMBEDDINGS_FILE,
    }
    return RewardModel.load(write_model_folder(work / f"staged-{variant}", card, files))


def runtime_rewards(model: RewardModel, records: EncodedSet) -> np.ndarray:
    """Score every record with the exported runtime, as users call it."""
    return model.score_by_input(records.prompts, records.groups, records.texts)


def _data_summary(
    demos: Sequence[Example], samples: Sequence[Example], config: TrainConfig
) -> dict[str, object]:
    digest = hashlib.sha256()
    for record in [*demos, *samples]:
        digest.update(repr(record.to_json()).encode("utf-8"))
    return {
        "demonstrations": len(demos),
        "policy_samples": len(samples),
        "validation_share": config.validation_share,
        "seed": config.seed,
        "sha256": digest.hexdigest(),
    }
