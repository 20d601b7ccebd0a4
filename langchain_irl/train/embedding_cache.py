"""An on-disk cache of embeddings, so that re-training on the same texts skips the encoder.

Frozen embeddings of ~29,000 long AlpacaEval answers take minutes on two cores; every training run
with the same encoder needs the same ones. Entries are keyed by SHA-256 of (the encoder's files,
how the text is read, the text), so a changed encoder or reading never returns stale vectors.

Storage is append-only and pickle-free, one pair of files per encoder: `<encoder>.f32` holds rows
of `dim + 1` float32 (the embedding and the tokens read), `<encoder>.keys` one hex key per line,
written after its row. A crash can leave at most a partial last row, cut off on the next open.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from filelock import FileLock

from langchain_irl.reward_model.card import sha256_file
from langchain_irl.reward_model.encoder import OnnxEncoder, Truncation


class CachedEncoder:
    """`OnnxEncoder.encode` with an on-disk cache in `folder` (same results, bit for bit)."""

    def __init__(self, encoder: OnnxEncoder, folder: Path, encoder_files: Sequence[Path]) -> None:
        self.encoder = encoder
        self.dim = encoder.dim
        digest = hashlib.sha256(f"max_tokens={encoder.max_tokens}".encode())
        for path in encoder_files:
            digest.update(sha256_file(path).encode())
        name = digest.hexdigest()[:24]
        folder.mkdir(parents=True, exist_ok=True)
        self._vectors = folder / f"{name}.f32"
        self._keys = folder / f"{name}.keys"
        self._lock = FileLock(str(folder / f"{name}.lock"))
        self._row_bytes = 4 * (self.dim + 1)
        self._index: dict[str, int] = {}
        self._rows = np.zeros((0, self.dim + 1), np.float32)
        self._load()

    def __len__(self) -> int:
        return len(self._index)

    def encode(
        self, texts: Sequence[str], *, keep: Truncation = "start", chunks: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        keys = [_key(text, keep, chunks) for text in texts]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self._index}.values())
        if missing:
            embeddings, counts = self.encoder.encode(
                [texts[i] for i in missing], keep=keep, chunks=chunks
            )
            self._store([keys[i] for i in missing], embeddings, counts)
        return self._lookup(keys)

    def encode_pairs(
        self, prompt: str, candidates: Sequence[str], *, keep: Truncation = "start"
    ) -> tuple[np.ndarray, np.ndarray]:
        keys = [_key(f"{prompt}\x00{text}", f"pair-{keep}", 1) for text in candidates]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self._index}.values())
        if missing:
            embeddings, counts = self.encoder.encode_pairs(
                prompt, [candidates[i] for i in missing], keep=keep
            )
            self._store([keys[i] for i in missing], embeddings, counts)
        return self._lookup(keys)

    def _store(self, keys: list[str], embeddings: np.ndarray, counts: np.ndarray) -> None:
        self._append(keys, np.concatenate([embeddings, counts[:, None].astype(np.float32)], 1))

    def _lookup(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = self._rows[[self._index[k] for k in keys]]
        return rows[:, :-1].copy(), rows[:, -1].astype(np.int64)

    def _load(self) -> None:
        with self._lock:
            keys = self._keys.read_text().split() if self._keys.exists() else []
            size = self._vectors.stat().st_size if self._vectors.exists() else 0
            complete = min(len(keys), size // self._row_bytes)
            if size != complete * self._row_bytes:  # a crash mid-append: drop the partial tail
                with self._vectors.open("r+b") as handle:
                    handle.truncate(complete * self._row_bytes)
            if len(keys) != complete:
                self._keys.write_text("".join(f"{k}\n" for k in keys[:complete]))
            data = np.fromfile(self._vectors, np.float32) if complete else np.zeros(0, np.float32)
        self._rows = data.reshape(complete, self.dim + 1)
        self._index = {key: row for row, key in enumerate(keys[:complete])}

    def _append(self, keys: list[str], rows: np.ndarray) -> None:
        with self._lock:
            with self._vectors.open("ab") as handle:
                handle.write(np.ascontiguousarray(rows, np.float32).tobytes())
            with self._keys.open("a") as handle:
                handle.write("".join(f"{k}\n" for k in keys))
        start = len(self._rows)
        self._rows = np.concatenate([self._rows, rows.astype(np.float32)])
        self._index.update({key: start + i for i, key in enumerate(keys)})


def _key(text: str, keep: str, chunks: int) -> str:
    return hashlib.sha256(f"{keep}\x00{chunks}\x00{text}".encode()).hexdigest()
