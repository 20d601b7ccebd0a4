"""Export: ONNX matches the original PyTorch model; int8 keeps the reward ranking; heads match."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from transformers import AutoModel

from langchain_irl.evaluation.metrics import spearman
from langchain_irl.reward_model.encoder import OnnxEncoder
from langchain_irl.reward_model.model import RewardModel
from langchain_irl.train.encoder import (
    default_encoder_dir,
    export_encoder,
    load_encoder,
    tokenizer_json,
)
from langchain_irl.train.head import build_head, head_features, head_forward


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("export")
    encoder, folder = load_encoder()
    tokenizer_json(folder, work / "tokenizer.json")
    export_encoder(encoder, folder, work / "fp32.onnx")
    export_encoder(encoder, folder, work / "int8.onnx", quantize=True)
    return work


def _reference_embeddings(texts: list[str]) -> np.ndarray:
    """The original model as sentence-transformers runs it: default attention, mean, normalise."""
    from transformers import AutoTokenizer

    folder = default_encoder_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (states * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_onnx_matches_pytorch(exported: Path, captions: list[str]) -> None:
    texts = [*captions[:64], "", "x" * 2000, "Unicode: café ☕ 東京"]
    encoder = OnnxEncoder.from_files(exported / "fp32.onnx", exported / "tokenizer.json", 128)
    onnx_embeddings, _ = encoder.encode(texts)
    cosine = (onnx_embeddings * _reference_embeddings(texts)).sum(axis=1)
    assert cosine.min() >= 0.999


def test_export_is_deterministic(exported: Path, tmp_path: Path) -> None:
    encoder, folder = load_encoder()
    export_encoder(encoder, folder, tmp_path / "again.onnx")
    assert (tmp_path / "again.onnx").read_bytes() == (exported / "fp32.onnx").read_bytes()


def test_int8_keeps_the_reward_ranking(
    exported: Path, model: RewardModel, contests: list[dict]
) -> None:
    """The bundled head on fp32 vs int8 embeddings of real captions: Spearman >= 0.99."""
    fp32 = OnnxEncoder.from_files(exported / "fp32.onnx", exported / "tokenizer.json", 128)
    int8 = OnnxEncoder.from_files(exported / "int8.onnx", exported / "tokenizer.json", 128)
    rewards = {}
    for name, encoder in (("fp32", fp32), ("int8", int8)):
        per_contest = []
        for contest in contests[-5:]:
            prompt, _ = encoder.encode([contest["description"]])
            texts = [c["text"] for c in contest["captions"]]
            embeddings, counts = encoder.encode(texts)
            per_contest.append(model.score_embedded(prompt, embeddings, counts, texts))
        rewards[name] = np.concatenate(per_contest)
    assert spearman(rewards["fp32"], rewards["int8"]) >= 0.99
    assert (exported / "int8.onnx").stat().st_size < (exported / "fp32.onnx").stat().st_size / 3


def test_head_graph_matches_numpy(tmp_path: Path) -> None:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    dim, n_features = 8, 1
    layers = [
        (rng.normal(size=(2 * dim + n_features, 5)), rng.normal(size=5)),
        (rng.normal(size=(5, 1)), rng.normal(size=1)),
    ]
    onnx.save(build_head([layers], dim, n_features), tmp_path / "head.onnx")
    session = ort.InferenceSession(str(tmp_path / "head.onnx"))
    prompt, candidates = rng.normal(size=(1, dim)), rng.normal(size=(6, dim))
    features = rng.normal(size=(6, n_features))
    (graph,) = session.run(
        None,
        {
            "prompt_embedding": prompt.astype(np.float32),
            "candidate_embedding": candidates.astype(np.float32),
            "candidate_features": features.astype(np.float32),
        },
    )
    expected = head_forward(layers, head_features(prompt, candidates, features))
    np.testing.assert_allclose(graph, expected, rtol=1e-4, atol=1e-4)


def test_head_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="must map 17 inputs"):
        build_head([[(np.zeros((3, 1)), np.zeros(1))]], dim=8, n_features=1)
