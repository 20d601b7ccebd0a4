"""`OnnxEncoder`: text -> sentence embedding with an ONNX graph and a `tokenizers` tokenizer."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

Truncation = Literal["start", "end"]
# Texts are cut to this many characters per allowed token before tokenising: it bounds the work a
# megabyte-long input can cause, and no real tokenizer averages more characters per token.
CHARS_PER_TOKEN_BOUND = 64


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (a Ray actor reserving one CPU, a
    container's cpuset), not the machine's count, so that threads never oversubscribe."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def make_session(
    path: Path, num_threads: int | None = None, providers: Sequence[Any] | None = None
) -> ort.InferenceSession:
    """An onnxruntime session with full graph optimisation; `num_threads` intra-op threads.

    `providers`: onnxruntime execution providers, e.g. `["CUDAExecutionProvider",
    "CPUExecutionProvider"]` (default: CPU only)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    chosen = list(providers) if providers else ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), options, providers=chosen)


def content_tokens(encoding: Encoding) -> int:
    """Tokens of an encoding that are text, not special tokens."""
    return len(encoding.ids) - sum(encoding.special_tokens_mask)


class TextReader:
    """How the encoder reads text: token windows of at most `max_tokens`, from a text's start or
    its end, and (prompt, candidate) pairs as one sequence. Training and inference both read
    through it, so a fine-tuned encoder sees exactly the token ids it will see when served."""

    def __init__(self, tokenizer: Tokenizer, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self._tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)
        # The same tokenizer, keeping the end of a text (a dialogue's last turns) when it cuts.
        self._tail_tokenizer = Tokenizer.from_str(self._tokenizer.to_str())
        self._tail_tokenizer.enable_truncation(max_length=max_tokens, direction="left")

    @classmethod
    def from_file(cls, path: Path, max_tokens: int) -> TextReader:
        return cls(Tokenizer.from_file(str(path)), max_tokens)

    def count_tokens(self, text: str) -> int:
        """Content tokens of the whole `text` (special tokens not counted)."""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return len(encoding.ids) + sum(len(part.ids) for part in encoding.overflowing)

    def windows(
        self, texts: Sequence[str], *, keep: Truncation = "start", chunks: int = 1
    ) -> list[list[Encoding]]:
        """Up to `chunks` consecutive windows of each text, from the end `keep` names."""
        _check_texts(texts)
        if chunks < 1:
            raise ValueError(f"chunks must be at least 1, got {chunks}")
        limit = chunks * self.max_tokens * CHARS_PER_TOKEN_BOUND
        if keep == "end":
            encodings = self._tail_tokenizer.encode_batch([text[-limit:] for text in texts])
        else:
            encodings = self._tokenizer.encode_batch([text[:limit] for text in texts])
        return [[encoding, *encoding.overflowing][:chunks] for encoding in encodings]

    def pairs(
        self, prompt: str, candidates: Sequence[str], *, keep: Truncation = "start"
    ) -> list[tuple[Encoding, int]]:
        """Each (prompt, candidate) as one sequence of at most `max_tokens` (special tokens
        included), with the candidate tokens it holds.

        Each side may take half the room; a side that needs less leaves the rest to the other.
        The prompt is cut at the end `keep` does not name, the candidate at its end (its start
        is what it says first)."""
        _check_texts([prompt, *candidates])
        room = max(2, self.max_tokens - self._tokenizer.num_special_tokens_to_add(is_pair=True))
        limit = room * CHARS_PER_TOKEN_BOUND
        prompt_text = prompt[-limit:] if keep == "end" else prompt[:limit]
        prompt_reader = self._tail_tokenizer if keep == "end" else self._tokenizer
        prompts = prompt_reader.encode_batch(
            [prompt_text] * len(candidates), add_special_tokens=False
        )
        answers = self._tokenizer.encode_batch(
            [text[:limit] for text in candidates], add_special_tokens=False
        )
        pairs = []
        for prompt_encoding, answer in zip(prompts, answers, strict=True):
            prompt_take = min(len(prompt_encoding.ids), max(room // 2, room - len(answer.ids)))
            answer_take = min(len(answer.ids), room - prompt_take)
            prompt_encoding.truncate(prompt_take, direction="left" if keep == "end" else "right")
            answer.truncate(answer_take)
            pair = self._tokenizer.post_process(prompt_encoding, answer, add_special_tokens=True)
            pairs.append((pair, answer_take))
        return pairs


def _check_texts(texts: Sequence[str]) -> None:
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] is {type(text).__name__}, expected str")


class OnnxEncoder:
    """Embeds each text on its own: no padding, and (for int8 graphs) its own activation scale.

    A text's embedding is therefore a function of the text alone, bit for bit, whatever else is
    being encoded with it; batched runs would let dynamic int8's per-tensor scale and padding
    leak other texts into it. Throughput comes from running texts in parallel instead, one
    onnxruntime thread each, over `workers` threads. Long texts are truncated to `max_tokens`,
    never an error; empty strings are valid. Thread-safe.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        max_tokens: int,
        workers: int,
        *,
        normalize: bool = True,
    ) -> None:
        self._session = session
        self.reader = TextReader(tokenizer, max_tokens)
        self.max_tokens = max_tokens
        self.normalize = normalize  # the graph's output is unit length: pooled chunks are too
        self.dim = int(session.get_outputs()[0].shape[-1])
        self._input_names = {i.name for i in session.get_inputs()}
        self._workers = ThreadPoolExecutor(workers, "onnx-encoder") if workers > 1 else None

    @classmethod
    def from_files(
        cls,
        onnx_path: Path,
        tokenizer_path: Path,
        max_tokens: int,
        *,
        num_threads: int | None = None,
        normalize: bool = True,
        providers: Sequence[Any] | None = None,
    ) -> OnnxEncoder:
        """`num_threads`: windows encoded at once (default: the cores this process may run on)."""
        session = make_session(onnx_path, num_threads=1, providers=providers)
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        workers = num_threads or available_cores()
        return cls(session, tokenizer, max_tokens, workers, normalize=normalize)

    def close(self) -> None:
        """Stop the encoding threads (the encoder encodes in the caller's thread afterwards)."""
        workers, self._workers = self._workers, None
        if workers is not None:
            workers.shutdown(wait=True)

    def count_tokens(self, text: str) -> int:
        """Content tokens of the whole `text` (special tokens not counted)."""
        return self.reader.count_tokens(text)

    def encode(
        self, texts: Sequence[str], *, keep: Truncation = "start", chunks: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings, float32 (n, dim), and each text's content-token count that was read.

        `keep`: which part of a text longer than `max_tokens` is read, its start or its end.
        `chunks`: read up to this many consecutive windows of `max_tokens` from that end and pool
        them (the mean of their embeddings, re-normalised): a long answer is read past its start.
        """
        windows = self.reader.windows(texts, keep=keep, chunks=chunks)
        rows = self._embed_all([window for text_windows in windows for window in text_windows])
        embeddings = np.zeros((len(texts), self.dim), np.float32)
        counts = np.zeros(len(texts), dtype=np.int64)
        start = 0
        for index, text_windows in enumerate(windows):
            stop = start + len(text_windows)
            embeddings[index] = self._pool(rows[start:stop])
            counts[index] = sum(content_tokens(w) for w in text_windows)
            start = stop
        return embeddings, counts

    def encode_pairs(
        self, prompt: str, candidates: Sequence[str], *, keep: Truncation = "start"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of each (prompt, candidate) read as one sequence (a cross-encoder's
        input), float32 (n, dim), and the candidate tokens read of each (`TextReader.pairs`)."""
        pairs = self.reader.pairs(prompt, candidates, keep=keep)
        rows = self._embed_all([encoding for encoding, _ in pairs])
        embeddings = np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)
        return embeddings.astype(np.float32), np.array([n for _, n in pairs], dtype=np.int64)

    def _embed_all(self, encodings: list[Encoding]) -> list[np.ndarray]:
        workers = self._workers
        if workers is not None and len(encodings) > 1:
            return list(workers.map(self._embed_one, encodings))
        return [self._embed_one(encoding) for encoding in encodings]

    def _pool(self, rows: list[np.ndarray]) -> np.ndarray:
        if len(rows) == 1:
            return rows[0]
        pooled = np.mean(rows, axis=0)
        norm = float(np.linalg.norm(pooled))
        return pooled / norm if self.normalize and norm > 0 else pooled

    def _embed_one(self, encoding: Encoding) -> np.ndarray:
        ids = np.array([encoding.ids], dtype=np.int64)
        inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        feed = {name: value for name, value in inputs.items() if name in self._input_names}
        return self._session.run(None, feed)[0][0]
