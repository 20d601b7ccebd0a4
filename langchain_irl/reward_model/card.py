"""The model card (`card.json`) and the checks that guard loading a reward-model folder.

A reward-model folder holds exactly the files its card lists, each with its SHA-256. Loading
verifies everything here, before any graph reaches onnxruntime, and refuses with a
`ModelFolderError` that names the file and the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION = 1
CARD_FILE = "card.json"
ENCODER_FILE = "encoder.onnx"
HEAD_FILE = "head.onnx"
TOKENIZER_FILE = "tokenizer.json"
REQUIRED_FILES = (ENCODER_FILE, HEAD_FILE, TOKENIZER_FILE)
# Optional, for `RewardModel.explain`: training demonstrations and their output embeddings.
DEMOS_FILE = "demonstrations.json"
DEMO_EMBEDDINGS_FILE = "demonstrations.npy"
# Optional, for speculative rejection: the whole output's reward predicted from its beginning.
PREFIX_HEAD_FILE = "prefix_head.onnx"


class ModelFolderError(ValueError):
    """A reward-model folder is missing, incomplete, corrupted or of another schema version."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EncoderInfo(_Strict):
    """The pretrained sentence encoder inside `encoder.onnx`."""

    name: str
    source: str = Field(description="where the weights came from (a folder, a package)")
    dim: int = Field(gt=0)
    pooling: Literal["mean", "cls"] = "mean"
    normalize: bool = True
    quantization: Literal["none", "int8-dynamic-per-channel"] = "none"


Architecture = Literal["bi-encoder", "cross-encoder"]
Feature = Literal["log_tokens", "log_words", "log_distinct_words", "ends_finished"]
"""A scalar the head reads beside the embeddings (`reward_model.features`)."""


class HeadInfo(_Strict):
    """The reward head inside `head.onnx`.

    - `bi-encoder`: the input and the output are encoded apart, reward = MLP([e_y, e_x * e_y,
      features]); an input is encoded once per call, whatever the number of candidates.
    - `cross-encoder`: (input, output) is read as one sequence, reward = MLP([e_xy, features]);
      every candidate is read with its input, so attention sees both at once.
    """

    kind: Architecture = "bi-encoder"
    features: tuple[Feature, ...] = ("log_tokens",)
    hidden: tuple[int, ...] = ()
    members: int = Field(default=1, ge=1)
    """Heads of an ensemble over the same features (the trained head, and heads fit on random
    80% subsets of the training inputs): the reward is their mean, their spread a measure of
    doubt. 1: a single head."""


class PrefixHeadInfo(_Strict):
    """`prefix_head.onnx`: the same inputs as `head.onnx` (an output's beginning in place of the
    output), trained to predict the whole output's reward from its first `tokens` tokens
    (distilled from the reward's own scores of whole training outputs)."""

    tokens: tuple[int, ...] = Field(min_length=1)
    hidden: tuple[int, ...] = ()
    spearman: dict[str, float] = {}
    """Per prefix length (tokens, as a string): held-out Spearman correlation, within an input,
    of the prefix head's score with the reward of the whole output, and `reward@t` the same for
    the reward itself scoring the prefix (what a folder without a prefix head does)."""


class Calibration(_Strict):
    """Held-out reward distributions: a raw score reads as a percentile of demonstrations."""

    demo_scores: tuple[float, ...] = Field(min_length=1)
    sample_scores: tuple[float, ...] = ()


class ModelCard(_Strict):
    """Everything needed to run and to judge a reward model; serialised as `card.json`."""

    schema_version: int = SCHEMA_VERSION
    name: str
    description: str = ""
    encoder: EncoderInfo
    head: HeadInfo = HeadInfo()
    max_tokens: int = Field(gt=0, le=8192)
    prompt_format: Literal["last_user", "transcript"] = "last_user"
    prompt_keeps: Literal["start", "end"] = "start"
    """Which part of a prompt longer than `max_tokens` the encoder reads: a dialogue's end holds
    the turn the reply answers."""
    candidate_chunks: int = Field(default=1, ge=1, le=64)
    """Windows of `max_tokens` read from a candidate's start, their embeddings averaged: long
    answers are read past their first window."""
    objective: str
    training_data: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    """Held-out metrics measured when the model was trained (its validation inputs). Where the data
    carries gold scores, `supervised_*` are the same figures for the same head trained on those
    scores instead of the demonstrations: the ceiling IRL is measured against."""
    evaluations: dict[str, dict[str, float]] = {}
    """Later evaluations on named data sets (`langchain-irl eval --record NAME`)."""
    calibration: Calibration | None = None
    prefix_head: PrefixHeadInfo | None = None
    """The prefix head in `prefix_head.onnx`, if the folder has one (see `PrefixHeadInfo`)."""
    files: dict[str, str] = {}

    @model_validator(mode="after")
    def _prefix_head_has_its_file(self) -> ModelCard:
        if self.files and (self.prefix_head is not None) != (PREFIX_HEAD_FILE in self.files):
            raise ValueError(f"prefix_head and the file {PREFIX_HEAD_FILE} go together")
        return self

    @model_validator(mode="after")
    def _cross_encoder_reads_one_window(self) -> ModelCard:
        if self.head.kind == "cross-encoder" and self.candidate_chunks != 1:
            raise ValueError("a cross-encoder reads one window per (input, output) pair")
        return self

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def record_evaluation(folder: str | Path, name: str, metrics: dict[str, float]) -> ModelCard:
    """Add (or replace) the evaluation `name` in a verified folder's card, atomically."""
    root = Path(folder)
    card = read_card(root)
    card = card.model_copy(update={"evaluations": {**card.evaluations, name: metrics}})
    temporary = root / f".{CARD_FILE}.tmp"
    temporary.write_text(card.to_json(), encoding="utf-8")
    os.replace(temporary, root / CARD_FILE)
    return card


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(folder: str | Path) -> ModelCard:
    """Read and fully verify a reward-model folder; return its card.

    Raises `ModelFolderError` naming the file and the reason when anything is wrong.
    """
    root = Path(folder)
    if not root.exists():
        from langchain_irl.bundled import bundled_models

        names = ", ".join(bundled_models()) or "none"
        raise ModelFolderError(
            f"{root}: no such reward-model folder, nor a bundled model of that name "
            f"(bundled: {names})"
        )
    if not root.is_dir():
        raise ModelFolderError(
            f"{root}: not a folder (a reward model is a folder with {CARD_FILE})"
        )
    card_path = root / CARD_FILE
    if not card_path.exists() and len(root.parts) == 1:
        from langchain_irl.bundled import bundled_models

        if root.name in bundled_models():
            raise ModelFolderError(
                f"{root}: a folder of this name in the working directory has no {CARD_FILE}, and "
                f"it shadows the bundled model {root.name!r}; run elsewhere, or pass the bundled "
                f"folder ({bundled_models()[root.name]})"
            )
    _check_plain_file(root, CARD_FILE)
    try:
        raw = json.loads(card_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{card_path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ModelFolderError(f"{card_path}: expected a JSON object, got {type(raw).__name__}")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ModelFolderError(
            f"{card_path}: schema version {version!r}; this langchain-irl reads version "
            f"{SCHEMA_VERSION} (retrain or export the model with a matching version)"
        )
    try:
        card = ModelCard.model_validate(raw)
    except ValidationError as exc:
        raise ModelFolderError(f"{card_path}: invalid card: {exc}") from exc
    _check_files(root, card)
    return card


def _check_files(root: Path, card: ModelCard) -> None:
    for required in REQUIRED_FILES:
        if required not in card.files:
            raise ModelFolderError(f"{root / CARD_FILE}: does not list required file {required!r}")
    for name, expected in card.files.items():
        _check_plain_file(root, name)
        actual = sha256_file(root / name)
        if actual != expected:
            raise ModelFolderError(
                f"{root / name}: SHA-256 mismatch (card says {expected[:12]}…, file is "
                f"{actual[:12]}…): the file was changed or corrupted"
            )
    for path in root.iterdir():
        if path.suffix == ".onnx" and path.name not in card.files:
            raise ModelFolderError(f"{path}: graph not listed in {CARD_FILE}; refusing to load it")


def _check_plain_file(root: Path, name: str) -> None:
    # Card file names are bare names: no directories, no traversal, no links out of the folder.
    if not name or Path(name).name != name or name in {".", ".."}:
        raise ModelFolderError(f"{root / CARD_FILE}: file name {name!r} is not a plain file name")
    path = root / name
    if path.is_symlink():
        raise ModelFolderError(f"{path}: is a symbolic link; model files must be regular files")
    if not path.exists():
        raise ModelFolderError(f"{path}: missing")
    if not path.is_file():
        raise ModelFolderError(f"{path}: not a regular file")
