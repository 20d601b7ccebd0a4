"""Any Hugging Face encoder folder: BERT, BGE, E5, MPNet and DeBERTa-v2 export, load and score.

Each family is a tiny random-weight model built from its config inside the test, with a real
tokenizer of the family's kind (WordPiece, or SentencePiece-style Unigram for DeBERTa): nothing is
downloaded. Each must export to ONNX (fp32 and int8), embed like PyTorch does, and train into a
reward-model folder of either architecture that loads and scores.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from langchain_irl import RewardModel
from langchain_irl.data.converters import caption_contest
from langchain_irl.reward_model.encoder import OnnxEncoder
from langchain_irl.train.config import FineTuneConfig, TrainConfig
from langchain_irl.train.encoder import export_encoder, load_encoder, tokenizer_json
from langchain_irl.train.pipeline import train
from tests.conftest import CAPTIONS

transformers = pytest.importorskip("transformers")

WORDS = ["the", "a", "cat", "dog", "board", "meeting", "any", "other", "business", "rent", "is"]
TEXTS = ["Any other business?", "The rent is too high.", "a", "", "Meow! " * 40]


def _wordpiece(folder: Path, specials: dict[str, str], pair: str) -> int:
    vocab = [*dict.fromkeys(specials.values()), *WORDS, *string.printable.strip()]
    vocab += [f"##{c}" for c in string.printable.strip()]
    ids = {token: i for i, token in enumerate(dict.fromkeys(vocab))}
    tokenizer = Tokenizer(models.WordPiece(ids, unk_token=specials["unk"]))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    _post_process(tokenizer, specials, ids, pair)
    tokenizer.save(str(folder / "tokenizer.json"))
    return len(ids)


def _unigram(folder: Path, specials: dict[str, str]) -> int:
    pieces = [(token, 0.0) for token in dict.fromkeys(specials.values())]
    pieces += [(f"▁{w}", -2.0) for w in WORDS] + [("▁", -3.0)]
    pieces += [(c, -5.0) for c in string.printable.strip()]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=1))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    ids = {token: i for i, (token, _) in enumerate(pieces)}
    _post_process(tokenizer, specials, ids, "$A:0 {sep}:0 $B:1 {sep}:1")
    tokenizer.save(str(folder / "tokenizer.json"))
    return len(pieces)


def _post_process(tokenizer: Tokenizer, specials: dict, ids: dict, pair: str) -> None:
    cls, sep = specials["cls"], specials["sep"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls}:0 " + pair.format(sep=sep),
        special_tokens=[(cls, ids[cls]), (sep, ids[sep])],
    )


BERT_SPECIALS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
ROBERTA_SPECIALS = {"pad": "<pad>", "unk": "<unk>", "cls": "<s>", "sep": "</s>", "mask": "<mask>"}
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
    "max_position_embeddings": 160,
}


def _bert(folder: Path, pooling: str) -> None:
    vocab = _wordpiece(folder, BERT_SPECIALS, "$A:0 [SEP]:0 $B:1 [SEP]:1")
    _save(transformers.BertConfig(vocab_size=vocab, **TINY), folder)
    if pooling == "cls":  # BGE: sentence-transformers folder with CLS pooling and normalisation
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(
            json.dumps({"word_embedding_dimension": 32, "pooling_mode_cls_token": True})
        )
        kinds = ["Transformer", "Pooling", "Normalize"]
        paths = ["", "1_Pooling", "2_Normalize"]
        modules = [
            {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
            for i, (kind, path) in enumerate(zip(kinds, paths, strict=True))
        ]
        (folder / "modules.json").write_text(json.dumps(modules))


def _mpnet(folder: Path) -> None:
    vocab = _wordpiece(folder, ROBERTA_SPECIALS, "</s>:0 $A:0 </s>:0 </s>:0 $B:0 </s>:0")
    config = transformers.MPNetConfig(vocab_size=vocab, pad_token_id=0, **TINY)
    _save(config, folder)


def _deberta(folder: Path) -> None:
    vocab = _unigram(folder, BERT_SPECIALS)
    config = transformers.DebertaV2Config(
        vocab_size=vocab,
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        position_buckets=16,
        max_relative_positions=-1,
        **TINY,
    )
    _save(config, folder)


def _save(config: object, folder: Path) -> None:
    torch.manual_seed(0)
    transformers.AutoModel.from_config(config).save_pretrained(folder)


FAMILIES = {
    "bert": lambda folder: _bert(folder, "mean"),
    "e5": lambda folder: _bert(folder, "mean"),  # E5 and MiniLM: BERT with mean pooling
    "bge": lambda folder: _bert(folder, "cls"),  # BGE: BERT with CLS pooling
    "mpnet": _mpnet,
    "deberta-v2": _deberta,
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def encoder_folder(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp(request.param)
    FAMILIES[request.param](folder)
    return folder


def test_the_family_exports_and_embeds_as_pytorch_does(
    encoder_folder: Path, tmp_path: Path
) -> None:
    encoder, folder = load_encoder(encoder_folder)
    tokenizer_json(folder, tmp_path / "tokenizer.json")
    info = export_encoder(encoder, folder, tmp_path / "fp32.onnx")
    export_encoder(encoder, folder, tmp_path / "int8.onnx", quantize=True)
    assert info.dim == 32
    if encoder_folder.joinpath("modules.json").exists():
        assert info.pooling == "cls"
    onnx_encoder = OnnxEncoder.from_files(tmp_path / "fp32.onnx", tmp_path / "tokenizer.json", 64)
    embeddings, _ = onnx_encoder.encode(TEXTS)
    tokenizer = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    tokenizer.enable_truncation(64)
    for text, embedding in zip(TEXTS, embeddings, strict=True):
        ids = torch.tensor([tokenizer.encode(text).ids])
        with torch.no_grad():
            expected = encoder(ids, torch.ones_like(ids))[0].numpy()
        np.testing.assert_allclose(embedding, expected, atol=2e-5)
    int8 = OnnxEncoder.from_files(tmp_path / "int8.onnx", tmp_path / "tokenizer.json", 64)
    assert np.isfinite(int8.encode(TEXTS)[0]).all()


@pytest.mark.parametrize("architecture", ["bi-encoder", "cross-encoder"])
def test_the_family_trains_into_a_reward_model(
    encoder_folder: Path, architecture: str, tmp_path: Path
) -> None:
    demos, samples = caption_contest(
        CAPTIONS, top=4, sample_chunks=["middle"], contests={526, 528, 530}
    )
    config = TrainConfig(
        architecture=architecture,  # type: ignore[arg-type]
        encoder_dir=encoder_folder,
        max_tokens=48,
        validation_share=0.34,
        quantize=False,  # int8 export is checked above
        fine_tune=FineTuneConfig(steps=2, batch=2, device="cpu"),
    )
    train(demos, samples[:120], tmp_path / "model", config)  # checks export parity itself
    model = RewardModel.load(tmp_path / "model")
    assert model.card.head.kind == architecture
    assert model.card.encoder.name == encoder_folder.name
    scores = model.score(demos[0].input, ["Any other business?", "Meow."])
    np.testing.assert_array_equal(
        scores, model.score(demos[0].input, ["Any other business?", "Meow."])
    )
