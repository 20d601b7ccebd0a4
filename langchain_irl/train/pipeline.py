"""demonstrations + policy samples -> a verified reward-model folder, with held-out metrics.

The exported folder is re-loaded with the runtime (`RewardModel`) and the validation set re-scored
with it, so the card's metrics are those of the model exactly as users will run it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import numpy as np
import onnx
from tqdm.auto import tqdm

from langchain_irl.data.edits import edited_copies
from langchain_irl.data.formats import Example, check_matched
from langchain_irl.evaluation.metrics import reward_metrics, spearman, within_input_spearman
from langchain_irl.evaluation.report import matching_accuracy
from langchain_irl.reward_model.card import (
    DEMO_EMBEDDINGS_FILE,
    DEMOS_FILE,
    ENCODER_FILE,
    HEAD_FILE,
    PREFIX_HEAD_FILE,
    TOKENIZER_FILE,
    Architecture,
    Calibration,
    EncoderInfo,
    HeadInfo,
    ModelCard,
    PrefixHeadInfo,
)
from langchain_irl.reward_model.encoder import OnnxEncoder, TextReader, Truncation
from langchain_irl.reward_model.features import TRAINED_FEATURES, candidate_features
from langchain_irl.reward_model.model import RewardModel
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
from langchain_irl.train.prefix import Prefixes, fit_prefix_head, prefixes_of
from langchain_irl.train.supervised import supervised_head

logger = logging.getLogger(__name__)

# int8 is shipped only if it keeps the reward ranking of the fp32 encoder (Spearman on validation).
QUANTIZATION_MIN_SPEARMAN = 0.99
# The supervised ceiling's figures in the card, prefixed `supervised_`.
CEILING_METRICS = ("pairwise_accuracy", "spearman_gold", "best_of_16_gap_closed")
# Fewer held-out inputs than this and the card's metrics are mostly noise: say so.
MIN_VALIDATION_INPUTS = 10
# A folder keeps at most this many training demonstrations (a fixed sample beyond) for `explain`.
KEPT_DEMONSTRATIONS = 5000


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
    source: np.ndarray | None = None
    """For an edited copy, the index of the record it copies (-1: an original)."""

    def subset(self, mask: np.ndarray) -> EncodedSet:
        source = None
        if self.source is not None:  # renumbered; a copy goes with its source
            mask = mask & ((self.source < 0) | mask[np.maximum(self.source, 0)])
            position = np.cumsum(mask) - 1
            kept = self.source[mask]
            source = np.where(kept >= 0, position[np.maximum(kept, 0)], -1)
        return EncodedSet(
            self.prompts,
            self.prompt_embeddings,
            [t for t, m in zip(self.texts, mask, strict=True) if m],
            self.groups[mask],
            self.embeddings[mask],
            self.token_counts[mask],
            self.is_demo[mask],
            self.gold[mask],
            source,
        )

    @property
    def is_sample(self) -> np.ndarray:
        """Policy samples: neither demonstrations nor edited copies."""
        copies = np.zeros(len(self.texts), bool) if self.source is None else self.source >= 0
        return ~self.is_demo & ~copies

    def with_copies(
        self, source: np.ndarray, texts: list[str], embeddings: np.ndarray, counts: np.ndarray
    ) -> EncodedSet:
        """These records and edited copies of some of them (`source`: which one)."""
        own = np.full(len(self.texts), -1) if self.source is None else self.source
        return EncodedSet(
            self.prompts,
            self.prompt_embeddings,
            [*self.texts, *texts],
            np.concatenate([self.groups, self.groups[source]]),
            np.concatenate([self.embeddings, embeddings]),
            np.concatenate([self.token_counts, counts]),
            np.concatenate([self.is_demo, np.zeros(len(texts), bool)]),
            np.concatenate([self.gold, np.full(len(texts), np.nan)]),
            np.concatenate([own, source]),
        )

    @property
    def lengths(self) -> np.ndarray:
        """Each text's length in characters (the length controls of `reward_metrics`)."""
        return np.array([len(text) for text in self.texts], dtype=np.int64)

    def phi(self, feature_names: Sequence[str]) -> np.ndarray:
        features = candidate_features(self.texts, self.token_counts, feature_names)
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
    reading = Reading(architecture, prompt_keeps, candidate_chunks, batch_size)
    prompt_embeddings = None
    if architecture != "cross-encoder":
        prompt_embeddings, _ = encoder.encode(prompts, keep=prompt_keeps)
    embeddings, token_counts = embed_outputs(encoder, reading, prompts, groups, texts)
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


@dataclass(frozen=True)
class Reading:
    """How outputs are read: apart from their input (in `chunks` windows) or with it."""

    architecture: Architecture = "bi-encoder"
    prompt_keeps: Truncation = "start"
    chunks: int = 1
    batch_size: int = 512

    @classmethod
    def of(cls, config: TrainConfig) -> Reading:
        return cls(config.architecture, config.prompt_reading, config.candidate_chunks)


def embed_outputs(
    encoder: OnnxEncoder | CachedEncoder,
    reading: Reading,
    prompts: Sequence[str],
    groups: np.ndarray,
    texts: Sequence[str],
    what: str = "outputs",
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and tokens read of `texts[i]`, an output of `prompts[groups[i]]`: a
    bi-encoder's alone, a cross-encoder's with its input."""
    embeddings = np.empty((len(texts), encoder.dim), dtype=np.float32)
    counts = np.empty(len(texts), dtype=np.int64)
    with tqdm(total=len(texts), desc=f"embedding {what}", unit="text") as bar:
        if reading.architecture == "cross-encoder":
            for group in np.unique(groups):
                (members,) = np.nonzero(groups == group)
                embeddings[members], counts[members] = encoder.encode_pairs(
                    prompts[int(group)], [texts[int(i)] for i in members], keep=reading.prompt_keeps
                )
                bar.update(len(members))
            return embeddings, counts
        for start in range(0, len(texts), reading.batch_size):
            part = slice(start, start + reading.batch_size)
            embeddings[part], counts[part] = encoder.encode(
                list(texts[part]), keep="start", chunks=reading.chunks
            )
            bar.update(len(texts[part]))
    return embeddings, counts


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
    """Train, export, re-score with the runtime, write the folder atomically; return its card.

    Each stage below takes what it needs and returns what the later ones read."""
    _check_data(demos, samples)  # before seconds of loading and exporting the encoder
    head_info = HeadInfo(
        kind=config.architecture,
        features=config.features,
        hidden=config.hidden,
        members=config.members,
    )
    with tempfile.TemporaryDirectory(prefix="langchain-irl-") as tmp:
        work = Path(tmp)
        encoder = export_base_encoder(work, config)
        encoded = encode_and_split(encoder, demos, samples, config)
        layers = fit_head(encoded.training_groups, head_info, config)
        fine_tune_report = None
        if config.fine_tune is not None:
            tuned = fine_tune_encoder(encoder, encoded.training_groups, layers, work, config)
            encoder, fine_tune_report = tuned.encoder, tuned.report
            encoded = encode_and_split(encoder, demos, samples, config)  # by the tuned encoder
            layers = rescale_head(tuned.layers, encoded.training_groups, head_info)
        members = [layers, *more_members(encoded.training_groups, head_info, config)]
        members = standardised_members(members, encoded.training_groups, head_info)
        fitted = fit_prefix(encoder, encoded, members, head_info, config)
        prefix = fitted if fitted is not None and fitted.shipped else None
        _warn_if_few_validation_inputs(encoded.validation_inputs)
        summary = training_summary(demos, samples, config, encoded, fine_tune_report, fitted)
        card = _draft_card(out_dir, config, encoder.info, head_info, summary, prefix)
        files = {
            TOKENIZER_FILE: encoder.tokenizer_path,
            **export_heads(work, members, prefix, encoder.info, head_info),
            **write_demonstrations(work, encoded.train, encoder, config),
        }
        reference = ensemble_rewards(members, encoded.valid.phi(head_info.features))
        staging = Staging(work, card, files, encoded.valid, reference)
        shipped = verified_export(staging, encoder, prefix)
        if config.quantize:
            shipped = quantized_if_ranking_kept(staging, shipped, encoder)
        metrics = held_out_metrics(shipped, encoded, head_info, config)
        return ship(out_dir, shipped, metrics, _calibration(shipped.rewards, encoded.valid))


# -- stage results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedEncoder:
    """The PyTorch encoder and one fp32 ONNX export of it: the stages that embed text read the
    export, so they see the encoder as it was when exported (fine-tuning exports a new file)."""

    torch_encoder: SentenceEncoder
    source_dir: Path  # the Hugging Face folder it was loaded from
    info: EncoderInfo
    onnx_path: Path
    tokenizer_path: Path

    def runtime(self, config: TrainConfig) -> OnnxEncoder | CachedEncoder:
        """The export as the runtime runs it (behind the embedding cache when configured)."""
        files = (self.onnx_path, self.tokenizer_path)
        encoder = OnnxEncoder.from_files(*files, config.max_tokens, normalize=self.info.normalize)
        if config.embedding_cache is None:
            return encoder
        return CachedEncoder(encoder, config.embedding_cache, files)


@dataclass(frozen=True)
class EncodedSplit:
    """Every record embedded by one export, split by input into training and validation."""

    train: EncodedSet  # the training inputs' records (the folder keeps their demonstrations)
    valid: EncodedSet  # the held-out inputs' records (the card's metrics)
    training_groups: EncodedSet  # what the head and fine-tuning learn from
    inputs: int
    validation_inputs: int


@dataclass(frozen=True)
class FineTuned:
    encoder: ExportedEncoder  # the tuned encoder's export
    layers: list[Layer]  # the head trained with it, scaled for the features before tuning
    report: dict[str, object]  # the card's `training_data["fine_tune"]`


@dataclass(frozen=True)
class Shipped:
    """A staged folder, loaded with the runtime, and the validation rewards it gives."""

    model: RewardModel
    rewards: np.ndarray
    int8_reward_spearman: float | None = None  # None: no int8 encoder was tried


@dataclass(frozen=True)
class Staging:
    """A folder's parts before it ships, and what the runtime must reproduce: training's rewards
    (`reference`) for the validation records."""

    work: Path
    card: ModelCard  # the draft: no files, metrics or calibration yet
    files: dict[str, Path]  # every file but the encoder, by its name in the folder
    valid: EncodedSet
    reference: np.ndarray

    def load(self, variant: str, encoder: Path, info: EncoderInfo) -> Shipped:
        """Write the folder with `encoder` into `work`; load it with the runtime and score the
        validation records."""
        card = self.card.model_copy(update={"encoder": info})
        files = {ENCODER_FILE: encoder, **self.files}
        model = RewardModel.load(write_model_folder(self.work / f"staged-{variant}", card, files))
        return Shipped(model, runtime_rewards(model, self.valid))


# -- the stages, in the order `train` runs them -------------------------------------------------


def _check_data(demos: Sequence[Example], samples: Sequence[Example]) -> None:
    if not demos or not samples:
        raise ValueError("training needs at least one demonstration and one policy sample")
    check_matched(demos, samples)


def export_base_encoder(work: Path, config: TrainConfig) -> ExportedEncoder:
    """Load the pretrained encoder; write its tokenizer and fp32 ONNX export into `work`."""
    torch_encoder, source_dir = load_encoder(config.encoder_dir)
    tokenizer_json(source_dir, work / TOKENIZER_FILE)
    onnx_path = work / "fp32.onnx"
    info = export_encoder(torch_encoder, source_dir, onnx_path)
    return ExportedEncoder(torch_encoder, source_dir, info, onnx_path, work / TOKENIZER_FILE)


def encode_and_split(
    encoder: ExportedEncoder,
    demos: Sequence[Example],
    samples: Sequence[Example],
    config: TrainConfig,
) -> EncodedSplit:
    """Embed every record with `encoder`'s export; hold out a share of inputs."""
    data = encode_examples(
        encoder.runtime(config),
        demos,
        samples,
        config.prompt_format,
        config.prompt_reading,
        config.candidate_chunks,
        architecture=config.architecture,
    )
    valid = validation_mask(data.groups, config.validation_share, config.seed)
    train_set = data.subset(~valid)
    return EncodedSplit(
        train=train_set,
        valid=data.subset(valid),
        training_groups=build_training_groups(train_set, encoder, config),
        inputs=len(data.prompts),
        validation_inputs=len(np.unique(data.groups[valid])),
    )


def build_training_groups(
    train_set: EncodedSet, encoder: ExportedEncoder, config: TrainConfig
) -> EncodedSet:
    """The candidate groups the head and fine-tuning learn from: each training input's
    demonstrations and policy samples, and the edited copies (`config.edits`) of each
    demonstration and, with `config.edit_samples`, of each policy sample, embedded by the same
    export, so that fine-tuning re-embeds them too."""
    if not config.edits:
        return train_set
    edited = train_set.is_demo | (train_set.is_sample if config.edit_samples else False)
    records = np.flatnonzero(edited)
    copies = edited_copies([train_set.texts[i] for i in records], config.edits, config.seed)
    source = records[np.array([index for index, _, _ in copies], dtype=np.int64)]
    texts = [text for _, _, text in copies]
    embeddings, counts = embed_outputs(
        encoder.runtime(config),
        Reading.of(config),
        train_set.prompts,
        train_set.groups[source],
        texts,
        "edited copies",
    )
    return train_set.with_copies(source, texts, embeddings, counts)


def fit_head(records: EncodedSet, head_info: HeadInfo, config: TrainConfig) -> list[Layer]:
    """The head's layers on frozen features, by the configured objective."""
    if config.objective in OBJECTIVES:  # closed form: edited copies count as negatives
        phi = records.phi(head_info.features)
        return OBJECTIVES[config.objective](phi[records.is_demo], phi[~records.is_demo])
    data = CandidateFeatures.of(
        records.prompt_embeddings,
        records.groups,
        records.embeddings,
        candidate_features(records.texts, records.token_counts, head_info.features),
    )
    # A frozen cross-encoder read each output with its own input only; fine-tuning adds off-topic.
    off_topic = 0 if records.prompt_embeddings is None else config.off_topic
    return train_head(
        data,
        records.is_demo,
        config.objective,
        hidden=config.hidden,
        off_topic=off_topic,
        source=records.source,
        edit_weight=config.edit_weight,
        seed=config.seed,
    )


def fine_tune_encoder(
    encoder: ExportedEncoder,
    records: EncodedSet,
    layers: list[Layer],
    work: Path,
    config: TrainConfig,
) -> FineTuned:
    """Train `encoder.torch_encoder` (in place) jointly with the head; export the result as a
    new file (`encoder`'s own export stays that of the encoder before tuning)."""
    assert config.fine_tune is not None
    batches = BatchReader(
        TextReader.from_file(encoder.tokenizer_path, config.max_tokens),
        records.prompts,
        records.texts,
        records.groups,
        architecture=config.architecture,
        prompt_keeps=config.prompt_reading,
        features=config.features,
    )
    layers, report = fine_tune(
        encoder.torch_encoder,
        batches,
        records.is_demo,
        layers,
        config.objective,
        config.fine_tune,
        off_topic=config.off_topic,
        source=records.source,
        edit_weight=config.edit_weight,
        seed=config.seed,
    )
    onnx_path = work / "fine-tuned.onnx"
    info = export_encoder(encoder.torch_encoder, encoder.source_dir, onnx_path)
    tuned = ExportedEncoder(
        encoder.torch_encoder, encoder.source_dir, info, onnx_path, encoder.tokenizer_path
    )
    summary: dict[str, object] = {
        "steps": report.steps,
        "batch": config.fine_tune.batch,
        "samples_per_demo": config.fine_tune.samples_per_demo,
        "layers": config.fine_tune.layers or "all",
        "device": report.device,
    }  # no wall-clock figures: a rebuild writes the same card, byte for byte
    return FineTuned(tuned, layers, summary)


def rescale_head(layers: list[Layer], records: EncodedSet, head_info: HeadInfo) -> list[Layer]:
    """The head rescaled so that policy samples' rewards are standardised on `records`'
    features (fine-tuning moved them)."""
    phi_samples = records.phi(head_info.features)[records.is_sample]
    return standardised_layers(RewardHead.from_layers(layers), phi_samples)


def more_members(
    records: EncodedSet, head_info: HeadInfo, config: TrainConfig
) -> list[list[Layer]]:
    """The ensemble's other `config.members - 1` heads, each fit on the final features of a
    random 80% of the training inputs (its own seed): members that saw different data disagree
    where the data leaves the reward unsure."""
    rng = np.random.default_rng([config.seed, 1])
    inputs = np.unique(records.groups)
    members = []
    for member in range(1, config.members):
        chosen = rng.choice(inputs, size=max(1, round(0.8 * len(inputs))), replace=False)
        resampled = records.subset(np.isin(records.groups, chosen))
        seeded = config.model_copy(update={"seed": config.seed + member})
        members.append(fit_head(resampled, head_info, seeded))
    return members


def standardised_members(
    members: list[list[Layer]], records: EncodedSet, head_info: HeadInfo
) -> list[list[Layer]]:
    """The members, their last layers shifted and scaled alike so that the reward (their mean)
    scores policy samples mean 0, standard deviation 1, as a single head does."""
    if len(members) == 1:
        return members
    rewards = ensemble_rewards(members, records.phi(head_info.features)[records.is_sample])
    shift, scale = float(rewards.mean()), float(rewards.std()) or 1.0
    return [
        [*layers[:-1], (layers[-1][0] / scale, (layers[-1][1] - shift) / scale)]
        for layers in members
    ]


def ensemble_rewards(members: Sequence[Sequence[Layer]], phi: np.ndarray) -> np.ndarray:
    """The reward as the head graph computes it: the members' mean."""
    if len(members) == 1:
        return head_forward(members[0], phi)
    # The mean over axis 0 of 1-D rewards is an array; numpy's stubs also allow a scalar.
    mean = np.mean([head_forward(layers, phi) for layers in members], axis=0, dtype=np.float32)
    return cast(np.ndarray, mean)


@dataclass(frozen=True)
class PrefixFit:
    """The prefix head, its card entry, and (prompt, prefix, expected score) to verify the
    exported graph against."""

    layers: list[Layer]
    info: PrefixHeadInfo
    check: tuple[list[str], list[str], np.ndarray]
    shipped: bool = True  # False: on validation it judged beginnings no better than the reward


def fit_prefix(
    encoder: ExportedEncoder,
    encoded: EncodedSplit,
    members: Sequence[Sequence[Layer]],
    head_info: HeadInfo,
    config: TrainConfig,
) -> PrefixFit | None:
    """The prefix head (`train.prefix`), distilled from the reward's scores of whole training
    outputs, and its held-out Spearman correlation with the whole output's reward per prefix
    length, beside the reward's own on the same prefixes. None when not configured, or when no
    training output is longer than the shortest prefix."""
    if config.prefix_head == "never":
        return None
    runtime, reading = encoder.runtime(config), Reading.of(config)

    def prefixes(records: EncodedSet, seed: int) -> tuple[Prefixes, np.ndarray, np.ndarray]:
        """Prefixes of a fixed sample of `records`' outputs, their phi, and their sources'."""
        chosen = np.flatnonzero(records.is_demo | records.is_sample)
        if len(chosen) > config.prefix_outputs:
            rng = np.random.default_rng([config.seed, seed])
            chosen = np.sort(rng.choice(chosen, size=config.prefix_outputs, replace=False))
        cut = prefixes_of([records.texts[i] for i in chosen], config.prefix_tokens)
        sources = chosen[cut.source]
        groups = records.groups[sources]
        embeddings, counts = embed_outputs(
            runtime, reading, records.prompts, groups, cut.texts, "prefixes"
        )
        prompts = records.prompt_embeddings
        phi = head_features(
            None if prompts is None else prompts[groups],
            embeddings,
            candidate_features(cut.texts, counts, head_info.features),
        )
        return cut, phi, sources

    train_set = encoded.training_groups
    cut, phi, sources = prefixes(train_set, 2)
    if not cut.texts:
        shortest = min(config.prefix_tokens)
        logger.warning("no training output is longer than %d tokens: no prefix head", shortest)
        return None
    whole = ensemble_rewards(members, train_set.phi(head_info.features))
    cells = train_set.groups[sources] * (max(config.prefix_tokens) + 1) + cut.tokens
    layers = fit_prefix_head(phi, whole[sources], cells, members[0], seed=config.seed)
    valid = encoded.valid
    cut, phi, sources = prefixes(valid, 3)
    whole = ensemble_rewards(members, valid.phi(head_info.features))[sources]
    predicted, as_whole = head_forward(layers, phi), ensemble_rewards(members, phi)
    spearmans: dict[str, float] = {}
    for tokens in config.prefix_tokens:
        at = cut.tokens == tokens
        for name, scores in ((f"{tokens}", predicted), (f"reward@{tokens}", as_whole)):
            value = within_input_spearman(scores[at], whole[at], valid.groups[sources][at])
            if value is not None:
                spearmans[name] = value
    info = PrefixHeadInfo(tokens=config.prefix_tokens, hidden=config.hidden, spearman=spearmans)
    if config.prefix_head == "if-better" and not _beats_reward(spearmans, config.prefix_tokens):
        logger.warning(
            "the prefix head judged held-out beginnings no better than the reward itself "
            "(Spearman per length: %s): not shipped; speculative rejection will use the reward",
            spearmans,
        )
        return PrefixFit(layers, info, ([], [], np.zeros(0)), shipped=False)
    shown = slice(0, 32)
    check = (
        [valid.prompts[g] for g in valid.groups[sources][shown]],
        cut.texts[shown],
        predicted[shown],
    )
    return PrefixFit(layers, info, check)


def _beats_reward(spearmans: dict[str, float], lengths: Sequence[int]) -> bool:
    """Whether the prefix head's mean held-out Spearman over the prefix lengths beats the
    reward's own on the same prefixes (True without held-out figures: nothing to compare)."""
    pairs = [(spearmans[f"{t}"], spearmans[f"reward@{t}"]) for t in lengths if f"{t}" in spearmans]
    if not pairs:
        return True
    head, reward = np.mean(pairs, axis=0)
    return bool(head > reward)


def _warn_if_few_validation_inputs(validation_inputs: int) -> None:
    if validation_inputs < MIN_VALIDATION_INPUTS:
        logger.warning(
            "only %d validation inputs: the card's metrics are too noisy to trust (raise "
            "--validation-share, or give more inputs)",
            validation_inputs,
        )


def training_summary(
    demos: Sequence[Example],
    samples: Sequence[Example],
    config: TrainConfig,
    encoded: EncodedSplit,
    fine_tune_report: dict[str, object] | None,
    prefix: PrefixFit | None = None,
) -> dict[str, object]:
    """The card's `training_data`: counts, split, seed, the data's SHA-256, fine-tuning."""
    digest = hashlib.sha256()
    for record in [*demos, *samples]:
        digest.update(repr(record.to_json()).encode("utf-8"))
    summary: dict[str, object] = {
        "demonstrations": len(demos),
        "policy_samples": len(samples),
        "validation_share": config.validation_share,
        "seed": config.seed,
        "sha256": digest.hexdigest(),
        "validation_inputs": encoded.validation_inputs,
        "inputs": encoded.inputs,
    }
    if fine_tune_report is not None:
        summary["fine_tune"] = fine_tune_report
    if config.edits:
        source = encoded.training_groups.source
        copied = np.zeros(0, np.int64) if source is None else source[source >= 0]
        of_demos = int(encoded.training_groups.is_demo[copied].sum())
        summary["edits"] = {
            "names": list(config.edits),
            "weight": config.edit_weight,
            "copies": of_demos,
            "copies_of_samples": len(copied) - of_demos,
        }
    if prefix is not None and not prefix.shipped:  # why the folder has none
        summary["prefix_head_not_shipped"] = prefix.info.spearman
    return summary


def _draft_card(
    out_dir: str | Path,
    config: TrainConfig,
    encoder_info: EncoderInfo,
    head_info: HeadInfo,
    summary: dict[str, object],
    prefix: PrefixFit | None,
) -> ModelCard:
    """The card before verification: no files, metrics or calibration yet."""
    return ModelCard(
        name=config.name or Path(out_dir).name,
        description=config.description,
        encoder=encoder_info,
        head=head_info,
        max_tokens=config.max_tokens,
        prompt_format=config.prompt_format,
        prompt_keeps=config.prompt_reading,
        candidate_chunks=config.candidate_chunks,
        objective=config.objective,
        training_data=summary,
        prefix_head=None if prefix is None else prefix.info,
    )


def export_heads(
    work: Path,
    members: Sequence[Sequence[Layer]],
    prefix: PrefixFit | None,
    encoder_info: EncoderInfo,
    head_info: HeadInfo,
) -> dict[str, Path]:
    """The head graphs (the reward's members, and the prefix head if any), by their file name
    in the folder: every file returned is staged, verified by loading, and shipped."""
    heads = {HEAD_FILE: members}
    if prefix is not None:
        heads[PREFIX_HEAD_FILE] = [prefix.layers]
    for name, layers in heads.items():
        graph = build_head(layers, encoder_info.dim, len(head_info.features), head_info.kind)
        onnx.save(graph, work / name)
    return {name: work / name for name in heads}


def write_demonstrations(
    work: Path,
    records: EncodedSet,
    encoder: ExportedEncoder,
    config: TrainConfig,
    limit: int = KEPT_DEMONSTRATIONS,
) -> dict[str, Path]:
    """Training demonstrations (at most `limit`, a fixed sample) and their outputs' embeddings,
    for `RewardModel.explain`, by their file name in the folder. A cross-encoder's records hold
    pair embeddings: its outputs are embedded alone here, by `encoder`'s export."""
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
        embeddings, _ = encoder.runtime(config).encode([records.texts[i] for i in demos])
    else:
        embeddings = records.embeddings[demos]
    np.save(work / DEMO_EMBEDDINGS_FILE, embeddings.astype(np.float16))
    return {DEMOS_FILE: work / DEMOS_FILE, DEMO_EMBEDDINGS_FILE: work / DEMO_EMBEDDINGS_FILE}


def verified_export(
    staging: Staging, encoder: ExportedEncoder, prefix: PrefixFit | None = None
) -> Shipped:
    """The fp32 folder, once the runtime scores the validation records (and prefixes) as
    training did."""
    shipped = staging.load("fp32", encoder.onnx_path, encoder.info)
    _check_agreement("exported model", shipped.rewards, staging.reference)
    if prefix is not None:
        check = prefix.check
        runtime = np.array(
            [shipped.model.score_prefixes(p, [t])[0] for p, t in zip(*check[:2], strict=True)]
        )
        _check_agreement("exported prefix head", runtime, check[2])
    return shipped


def _check_agreement(what: str, runtime: np.ndarray, reference: np.ndarray) -> None:
    if not np.allclose(runtime, reference, atol=1e-3):
        worst = float(np.abs(runtime - reference).max())
        raise RuntimeError(f"{what} disagrees with training (max |diff| {worst:.2e})")


def quantized_if_ranking_kept(staging: Staging, fp32: Shipped, encoder: ExportedEncoder) -> Shipped:
    """The folder with an int8 encoder when it keeps training's reward ranking on validation,
    else `fp32`; either way with the agreement measured."""
    int8_path = staging.work / "int8.onnx"
    info = export_encoder(encoder.torch_encoder, encoder.source_dir, int8_path, quantize=True)
    int8 = staging.load("int8", int8_path, info)
    agreement = spearman(staging.reference, int8.rewards)
    if agreement >= QUANTIZATION_MIN_SPEARMAN:
        return replace(int8, int8_reward_spearman=agreement)
    logger.warning(
        "int8 encoder changes the reward ranking (Spearman %.4f < %.2f): shipping fp32",
        agreement,
        QUANTIZATION_MIN_SPEARMAN,
    )
    return replace(fp32, int8_reward_spearman=agreement)


def held_out_metrics(
    shipped: Shipped, encoded: EncodedSplit, head_info: HeadInfo, config: TrainConfig
) -> dict[str, float]:
    """The card's metrics, measured on the validation records with the shipped folder."""
    valid = encoded.valid
    metrics: dict[str, float] = {}
    if shipped.int8_reward_spearman is not None:
        metrics["int8_reward_spearman"] = shipped.int8_reward_spearman
    metrics |= reward_metrics(
        shipped.rewards, valid.groups, valid.is_demo, valid.gold, lengths=valid.lengths
    )
    matching = matching_accuracy(
        shipped.model, valid.prompts, valid.groups, valid.texts, valid.is_demo
    )
    if matching is not None:
        metrics["matching_accuracy"] = matching
    return metrics | supervised_ceiling(encoded.train, valid, head_info, config)


def _calibration(rewards: np.ndarray, valid_set: EncodedSet) -> Calibration:
    return Calibration(
        demo_scores=tuple(np.round(rewards[valid_set.is_demo], 5).tolist()),
        sample_scores=tuple(np.round(rewards[~valid_set.is_demo], 5).tolist()),
    )


def ship(
    out_dir: str | Path, shipped: Shipped, metrics: dict[str, float], calibration: Calibration
) -> ModelCard:
    """Write the shipped folder, its card completed, to `out_dir` (atomically); its card."""
    card = shipped.model.card.model_copy(update={"metrics": metrics, "calibration": calibration})
    write_model_folder(out_dir, card, {name: shipped.model.folder / name for name in card.files})
    return card


# -- helpers ------------------------------------------------------------------------------------


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
    features: Sequence[str] = TRAINED_FEATURES,
    hidden: Sequence[int] = (),
    seed: int = 0,
) -> np.ndarray | None:
    """`valid_set`'s rewards under the same head on the same features, trained on `train_set`'s
    gold scores instead of its demonstrations (None without gold scores)."""
    layers = supervised_head(
        train_set.phi(features), train_set.groups, train_set.gold, hidden=hidden, seed=seed
    )
    return None if layers is None else head_forward(layers, valid_set.phi(features))


def runtime_rewards(model: RewardModel, records: EncodedSet) -> np.ndarray:
    """Score every record with the exported runtime, as users call it."""
    return model.score_by_input(records.prompts, records.groups, records.texts)
