"""`RewardModel`: scores (prompt, candidate) pairs with onnxruntime, numpy and a tokenizer."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tqdm.auto import tqdm

from langchain_irl.bundled import model_path
from langchain_irl.reward_model.attribution import (
    DEFAULT_MAX_SPANS,
    Attribution,
    Side,
    attribute,
)
from langchain_irl.reward_model.card import (
    DEMO_EMBEDDINGS_FILE,
    DEMOS_FILE,
    ENCODER_FILE,
    HEAD_FILE,
    PREFIX_HEAD_FILE,
    TOKENIZER_FILE,
    ModelCard,
    ModelFolderError,
    read_card,
)
from langchain_irl.reward_model.encoder import OnnxEncoder, make_session
from langchain_irl.reward_model.features import candidate_features
from langchain_irl.reward_model.rendering import PromptInput, render_prompt


@dataclass(frozen=True)
class Neighbour:
    """A training demonstration close to the explained candidate."""

    input: str
    output: str
    similarity: float  # cosine of the two outputs' embeddings
    reward: float  # the demonstration's reward for the explained prompt


@dataclass(frozen=True)
class Explanation:
    score: float
    percentile: float | None  # among held-out demonstrations; None without calibration
    neighbours: list[Neighbour]

    def __str__(self) -> str:
        percentile = "" if self.percentile is None else f" (p{self.percentile:.0f} of demos)"
        lines = [f"reward {self.score:+.3f}{percentile}; nearest demonstrations:"]
        lines += [
            f"  sim {n.similarity:.2f}  reward {n.reward:+.2f}  {n.output[:80]!r}"
            for n in self.neighbours
        ]
        return "\n".join(lines)


class RewardModel:
    """A learned reward r(x, y), loaded from a verified reward-model folder.

    A folder holds `encoder.onnx`, `head.onnx`, `tokenizer.json` and `card.json` (with the
    SHA-256 of every file), and optionally `prefix_head.onnx` (see `score_prefixes`); loading
    verifies it and refuses, with the reason, a folder that is incomplete, changed or of another
    schema. Inference needs onnxruntime, numpy and a
    tokenizer: no torch.

    **Setup**

    ```bash
    pip install langchain-irl
    langchain-irl models  # the bundled reward models
    ```

    **Instantiate**

    ```python
    from langchain_irl import RewardModel

    rm = RewardModel.load("caption-humor")  # a bundled name, or any model folder
    rm = RewardModel.load("models/my-model", num_threads=2)
    with RewardModel.load("helpful") as rm:  # close() stops its encoding threads
        ...
    ```

    **Score**

    ```python
    rm.score("A cat chairs a board meeting.", ["Any other business?", "Meow."])
    # array([ 1.31, -0.42], dtype=float32): higher is better
    rm.percentile(1.31)  # % of held-out demonstrations scoring at or below
    rm.explain("A cat chairs a board meeting.", "Any other business?")  # nearest demos
    rm.attribute("A cat chairs a board meeting.", "Any other business?").top(3)  # which words
    ```

    **Async**

    ```python
    await rm.ascore("A cat chairs a board meeting.", ["Meow."])
    ```

    **Embeddings**

    ```python
    rm.embed(["any text"]).shape  # (1, 384): the encoder's normalised embeddings
    ```

    A score is a function of (prompt, candidate, model) alone: each text is encoded on its own,
    so a candidate scores the same, bit for bit, whatever else is scored with it. Thread-safe:
    one instance may score from many threads at once. `close()` (or a `with` block) stops its
    encoding threads; a closed model still scores, in the caller's thread.
    """

    def __init__(
        self,
        folder: Path,
        card: ModelCard,
        encoder: OnnxEncoder,
        head: ort.InferenceSession,
        prefix_head: ort.InferenceSession | None = None,
    ) -> None:
        self.folder = folder
        self.card = card
        self.encoder = encoder
        self._head = head
        self._prefix_head = prefix_head
        calibration = card.calibration
        self._demo_scores = np.sort(calibration.demo_scores) if calibration else None

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        num_threads: int | None = None,
        providers: Sequence[Any] | None = None,
    ) -> RewardModel:
        """Verify the folder (schema version, completeness, SHA-256 of every file), then load it.

        `path`: a reward-model folder, or the name of a bundled model (`langchain-irl models`
        lists them), e.g. `RewardModel.load("caption-humor")`.

        `num_threads`: texts encoded at once, one onnxruntime thread each (default: the cores
        this process may run on, by its CPU affinity).
        `providers`: onnxruntime execution providers for the encoder, e.g.
        `["CUDAExecutionProvider", "CPUExecutionProvider"]` on a machine with a GPU (default: CPU).
        Raises `ModelFolderError` naming the file and the reason when the folder is not usable.
        """
        folder = model_path(path)
        card = read_card(folder)
        try:
            encoder = OnnxEncoder.from_files(
                folder / ENCODER_FILE,
                folder / TOKENIZER_FILE,
                card.max_tokens,
                num_threads=num_threads,
                normalize=card.encoder.normalize,
                providers=providers,
            )
            head = make_session(folder / HEAD_FILE, num_threads=1)  # tiny: threads only cost
            prefix_head = None
            if card.prefix_head is not None:
                prefix_head = make_session(folder / PREFIX_HEAD_FILE, num_threads=1)
        except Exception as exc:  # onnxruntime and tokenizers raise their own error types
            raise ModelFolderError(f"{folder}: could not be loaded: {exc}") from exc
        outputs = 1 if card.head.members == 1 else 2
        if len(head.get_outputs()) != outputs:
            raise ModelFolderError(
                f"{folder / HEAD_FILE}: {len(head.get_outputs())} output(s), the card's "
                f"{card.head.members} member(s) need {outputs}"
            )
        if encoder.dim != card.encoder.dim:
            raise ModelFolderError(
                f"{folder / ENCODER_FILE}: embeds to {encoder.dim} dimensions, card says "
                f"{card.encoder.dim}"
            )
        return cls(folder, card, encoder, head, prefix_head)

    @classmethod
    def of(cls, model: RewardModel | str | Path) -> RewardModel:
        """`model` itself, or the model a bundled name or a folder holds (loaded)."""
        return model if isinstance(model, RewardModel) else cls.load(model)

    def close(self) -> None:
        """Stop the encoder's threads. Idempotent."""
        self.encoder.close()

    def __enter__(self) -> RewardModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def name(self) -> str:
        return self.card.name

    @functools.cached_property
    def fingerprint(self) -> str:
        """Identifies the model's exact contents (its card lists every file's SHA-256)."""
        return f"{self.name}@{hashlib.sha256(self.card.to_json().encode()).hexdigest()[:16]}"

    def render(self, prompt: PromptInput) -> str:
        """The prompt text this model conditions on, by the card's `prompt_format` rule."""
        return render_prompt(prompt, self.card.prompt_format)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts as candidates: float32 array of shape (len(texts), dim)."""
        return self.embed_candidates(texts)[0]

    def embed_candidates(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Candidate embeddings (n, dim) and the tokens read of each, as the card says
        (`candidate_chunks` windows of `max_tokens`)."""
        return self.encoder.encode(texts, chunks=self.card.candidate_chunks)

    def embed_prompts(self, prompts: Sequence[str]) -> np.ndarray:
        """Embed rendered prompts, truncated as the card says (`prompt_keeps`)."""
        return self.encoder.encode(prompts, keep=self.card.prompt_keeps)[0]

    def score(self, prompt: PromptInput, candidates: Sequence[str]) -> np.ndarray:
        """One reward per candidate (float32, higher is better), all for the same prompt.

        The prompt (a string, or chat messages rendered by the card's rule) is encoded once.
        """
        if isinstance(candidates, str) or not isinstance(candidates, Sequence):
            raise TypeError(
                f"candidates must be a list of strings, got {type(candidates).__name__}"
            )
        if not candidates:
            return np.zeros(0, dtype=np.float32)
        return self.scorer(prompt).score_candidates(candidates).rewards

    def score_members(self, prompt: PromptInput, candidates: Sequence[str]) -> np.ndarray:
        """Each ensemble member's rewards, (len(candidates), members): `score` is their mean and
        their standard deviation a measure of doubt (`selection="conservative"`). A single-head
        model's is (n, 1), its rewards."""
        if not candidates:
            return np.zeros((0, self.card.head.members), dtype=np.float32)
        return self.scorer(prompt).score_candidates(candidates).members

    def score_prefixes(self, prompt: PromptInput, prefixes: Sequence[str]) -> np.ndarray:
        """What each output beginning promises: its prefix head's prediction of the whole
        output's reward (see `PrefixHeadInfo`), or, in a folder without one, `score` of the
        beginning itself. Speculative rejection judges streams by it."""
        if not prefixes:
            return np.zeros(0, dtype=np.float32)
        return self.scorer(prompt).score_prefixes(prefixes)

    def score_by_input(
        self,
        prompts: Sequence[PromptInput],
        groups: np.ndarray,
        texts: Sequence[str],
        *,
        progress: bool = False,
    ) -> np.ndarray:
        """Score many texts, each against its input (`prompts[groups[i]]`): one `score` call per
        input, so each prompt is encoded once and each score is what `score` gives."""
        rewards = np.empty(len(texts), dtype=np.float32)
        for group in tqdm(np.unique(groups), desc="scoring", unit="input", disable=not progress):
            (members,) = np.nonzero(groups == group)
            rewards[members] = self.score(prompts[int(group)], [texts[i] for i in members.tolist()])
        return rewards

    def scorer(self, prompt: PromptInput) -> PromptScorer:
        """A scorer for one prompt, scoring candidates whenever they arrive (a bi-encoder's
        prompt is encoded now, once)."""
        return PromptScorer(self, self.render(prompt))

    @property
    def is_cross_encoder(self) -> bool:
        """Whether the model reads (prompt, candidate) as one sequence (see `HeadInfo`)."""
        return self.card.head.kind == "cross-encoder"

    async def ascore(self, prompt: PromptInput, candidates: Sequence[str]) -> np.ndarray:
        """`score` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.score, prompt, candidates)

    def score_embedded(
        self,
        prompt_embedding: np.ndarray,
        candidate_embeddings: np.ndarray,
        token_counts: np.ndarray,
        texts: Sequence[str],
    ) -> np.ndarray:
        """A bi-encoder's rewards from precomputed embeddings (and the candidates' token counts
        and texts, which the head's features read); `prompt_embedding` is (1, dim) or (n, dim).
        A cross-encoder has no such split: use `score`."""
        if self.is_cross_encoder:
            raise TypeError(f"{self.name!r} is a cross-encoder: it scores texts, not embeddings")
        return self._run_head(
            prompt_embedding=prompt_embedding,
            candidate_embedding=candidate_embeddings,
            candidate_features=candidate_features(texts, token_counts, self.card.head.features),
        )

    def _run_head(self, **inputs: np.ndarray) -> np.ndarray:
        return self._head_outputs(**inputs)[0]

    def _run_prefix_head(self, **inputs: np.ndarray) -> np.ndarray:
        assert self._prefix_head is not None
        feed = {name: np.ascontiguousarray(v, dtype=np.float32) for name, v in inputs.items()}
        return np.asarray(self._prefix_head.run(None, feed)[0], dtype=np.float32).reshape(-1)

    def _head_outputs(self, **inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rewards (n,) and each ensemble member's (n, members); a single head's (n, 1)."""
        feed = {name: np.ascontiguousarray(v, dtype=np.float32) for name, v in inputs.items()}
        outputs = self._head.run(None, feed)
        rewards = np.asarray(outputs[0], dtype=np.float32).reshape(-1)
        if self.card.head.members == 1:
            return rewards, rewards[:, None]
        return rewards, np.asarray(outputs[1], dtype=np.float32)

    def explain(self, prompt: PromptInput, candidate: str, k: int = 3) -> Explanation:
        """The candidate's reward, its percentile among demonstrations, and the k training
        demonstrations whose outputs are closest to it, with their rewards for this prompt."""
        scorer = self.scorer(prompt)
        scored = scorer.score_candidates([candidate])
        score = float(scored.rewards[0])
        percentile = None if self._demo_scores is None else float(self.percentile(score))
        demos, demo_embeddings = self._demonstrations
        neighbours = []
        if demos:
            # a cross-encoder's scorer embeds the (prompt, candidate) pair: compare outputs alone
            own = self.embed([candidate])[0] if self.is_cross_encoder else scored.embeddings[0]
            similarity = demo_embeddings @ own
            nearest = np.argsort(-similarity)[:k]
            demo_rewards = scorer.score_candidates([demos[i]["output"] for i in nearest]).rewards
            neighbours = [
                Neighbour(demos[i]["input"], demos[i]["output"], float(similarity[i]), float(r))
                for i, r in zip(nearest, demo_rewards, strict=True)
            ]
        return Explanation(score, percentile, neighbours)

    def attribute(
        self,
        prompt: PromptInput,
        candidate: str,
        *,
        side: Side = "candidate",
        max_spans: int = DEFAULT_MAX_SPANS,
    ) -> Attribution:
        """Which words of the candidate (or, with `side="prompt"`, of the prompt) the reward
        credits: each word's contribution r(full) - r(without that word), by occlusion through
        this model's ONNX graphs (deterministic, no torch). Texts longer than `max_spans` words
        are cut into that many runs of words.

        ```python
        attribution = rm.attribute("A cat chairs a board meeting.", "Any other business? Meow.")
        attribution.top(3)  # caption-humor: [("other", -0.5), ("business?", 0.49), ("Any", -0.47)]
        print(attribution.highlighted())  # green raises the reward, red lowers it
        ```
        """
        return attribute(self, prompt, candidate, side=side, max_spans=max_spans)

    @functools.cached_property
    def _demonstrations(self) -> tuple[list[dict], np.ndarray]:
        if DEMOS_FILE not in self.card.files or DEMO_EMBEDDINGS_FILE not in self.card.files:
            return [], np.zeros((0, self.card.encoder.dim), np.float32)
        demos = json.loads((self.folder / DEMOS_FILE).read_text(encoding="utf-8"))
        embeddings = np.load(self.folder / DEMO_EMBEDDINGS_FILE, allow_pickle=False)
        return demos, embeddings.astype(np.float32)

    @functools.cached_property
    def interaction_weights(self) -> np.ndarray | None:
        """For a linear head, the w with r(x, y) = r(0, y) + e_x . (w * e_y); None otherwise.

        It lets a caller score many fixed candidates against each new prompt with one
        matrix-vector product (see `RewardExampleSelector`). Read off the head graph itself: with
        e_y = 1 and no features, prompt e_x = unit vector d changes the reward by exactly w[d].
        """
        if self.card.head.hidden or self.is_cross_encoder:
            return None
        dim = self.card.encoder.dim
        ones, no_tokens, no_texts = np.ones((dim, dim), np.float32), np.zeros(dim), [""] * dim
        with_unit = self.score_embedded(np.eye(dim, dtype=np.float32), ones, no_tokens, no_texts)
        baseline = self.score_embedded(np.zeros((1, dim), np.float32), ones, no_tokens, no_texts)
        return (with_unit - baseline).astype(np.float32)

    def percentile(self, score: float | np.ndarray) -> float | np.ndarray:
        """Share (in %) of held-out demonstrations that score at or below `score`."""
        if self._demo_scores is None:
            raise ValueError(f"reward model {self.name!r} has no calibration in its card")
        try:
            values = np.asarray(score, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"percentile takes a reward (a number), got {score!r}") from exc
        if not np.isfinite(values).all():
            raise ValueError(f"percentile takes a finite reward, got {score!r}")
        ranks = np.searchsorted(self._demo_scores, values, side="right")
        result = 100.0 * ranks / len(self._demo_scores)
        return float(result) if np.ndim(result) == 0 else result

    def __repr__(self) -> str:
        return f"RewardModel(name={self.name!r}, folder={str(self.folder)!r})"


class PromptScorer:
    """Scores candidates for one rendered prompt (see `RewardModel.scorer`).

    A bi-encoder's prompt is encoded once, here; a cross-encoder reads it again with each
    candidate, as one sequence."""

    def __init__(self, model: RewardModel, prompt: str) -> None:
        self.model = model
        self.prompt = prompt
        self.prompt_embedding = None if model.is_cross_encoder else model.embed_prompts([prompt])

    def score_prefixes(self, prefixes: Sequence[str]) -> np.ndarray:
        """`RewardModel.score_prefixes` for this prompt."""
        if self.model._prefix_head is None:
            return self.score_candidates(prefixes).rewards
        feed, _ = self._head_inputs(prefixes)
        return self.model._run_prefix_head(**feed)

    def score_candidates(self, candidates: Sequence[str]) -> CandidateScores:
        """Rewards, each ensemble member's rewards, and embeddings to compare the candidates
        with each other: each candidate's own (bi-encoder), or each (prompt, candidate) pair's
        (cross-encoder). One encoder pass per candidate."""
        feed, embeddings = self._head_inputs(candidates)
        rewards, members = self.model._head_outputs(**feed)
        return CandidateScores(rewards, members, embeddings)

    def _head_inputs(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """What the heads read of `texts` (with this prompt), and the texts' embeddings."""
        model = self.model
        if self.prompt_embedding is not None:
            embeddings, token_counts = model.embed_candidates(texts)
            prompt = {"prompt_embedding": self.prompt_embedding}
            candidates = {"candidate_embedding": embeddings}
        else:
            embeddings, token_counts = model.encoder.encode_pairs(
                self.prompt, texts, keep=model.card.prompt_keeps
            )
            prompt, candidates = {}, {"pair_embedding": embeddings}
        features = candidate_features(texts, token_counts, model.card.head.features)
        return {**prompt, **candidates, "candidate_features": features}, embeddings


@dataclass(frozen=True)
class CandidateScores:
    """What a `PromptScorer` makes of some candidates."""

    rewards: np.ndarray
    """(n,) the reward: the ensemble members' mean."""
    members: np.ndarray
    """(n, members) each member's reward; a single head's is the reward itself, (n, 1)."""
    embeddings: np.ndarray
    """(n, dim) the candidates' embeddings (a cross-encoder's: each pair's)."""

    @property
    def spread(self) -> np.ndarray:
        """(n,) the members' standard deviation: how much they disagree (0 for a single head)."""
        return self.members.std(axis=1)
