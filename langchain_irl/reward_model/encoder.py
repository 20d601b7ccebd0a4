"""`OnnxEncoder`: text -> sentence embedding with an ONNX graph and a `tokenizers` tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

# Texts are cut to this many characters per allowed token before tokenising: it bounds the work a
# megabyte-long input can cause, and no real tokenizer averages more characters per token.
CHARS_PER_TOKEN_BOUND = 64


def make_session(path: Path, num_threads: int | None = None) -> ort.InferenceSession:
    """A CPU onnxruntime session with full graph optimisation; `num_threads` intra-op threads."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxEncoder:
    """Embeds texts in length-sorted batches padded to the batch's longest text (dynamic padding),
    each within `batch_size` texts and `batch_tokens` padded tokens.

    Long texts are truncated to `max_tokens`, never an error; empty strings are valid. Thread-safe.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        max_tokens: int,
        batch_size: int = 64,
        batch_tokens: int = 1024,
    ) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.dim = int(session.get_outputs()[0].shape[-1])
        self._input_names = {i.name for i in session.get_inputs()}
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_tokens)

    @classmethod
    def from_files(
        cls,
        onnx_path: Path,
        tokenizer_path: Path,
        max_tokens: int,
        *,
        num_threads: int | None = None,
        batch_size: int = 64,
        batch_tokens: int = 1024,
    ) -> OnnxEncoder:
        session = make_session(onnx_path, num_threads)
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        return cls(session, tokenizer, max_tokens, batch_size, batch_tokens)

    def _batches(self, sorted_lengths: np.ndarray) -> list[slice]:
        """Consecutive runs of length-sorted texts within `batch_size` rows and `batch_tokens`
        padded tokens: few padding tokens, and activations (peak memory) stay bounded."""
        batches = []
        start = 0
        while start < len(sorted_lengths):
            end = start + 1
            while (
                end < len(sorted_lengths)
                and end - start < self.batch_size
                and (end - start + 1) * sorted_lengths[end] <= self.batch_tokens
            ):
                end += 1
            batches.append(slice(start, end))
            start = end
        return batches

    def count_tokens(self, text: str) -> int:
        """Content tokens of the whole `text` (special tokens not counted)."""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return len(encoding.ids) + sum(len(part.ids) for part in encoding.overflowing)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings, float32 (n, dim), and each text's content-token count after truncation."""
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] is {type(text).__name__}, expected str")
        limit = self.max_tokens * CHARS_PER_TOKEN_BOUND
        encodings = self._tokenizer.encode_batch([text[:limit] for text in texts])
        lengths = np.array([len(e.ids) for e in encodings], dtype=np.int64)
        special = np.array([sum(e.special_tokens_mask) for e in encodings], dtype=np.int64)
        embeddings = np.empty((len(texts), self.dim), dtype=np.float32)
        order = np.argsort(lengths, kind="stable")
        for batch in self._batches(lengths[order]):
            rows = order[batch]
            width = max(int(lengths[rows].max()), 1)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, i in enumerate(rows):
                ids[row, : lengths[i]] = encodings[i].ids
                mask[row, : lengths[i]] = 1
            inputs = {"input_ids": ids, "attention_mask": mask}
            feed = {name: value for name, value in inputs.items() if name in self._input_names}
            embeddings[rows] = self._session.run(None, feed)[0]
        return embeddings, lengths - special
