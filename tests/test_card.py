"""A reward-model folder is refused, with the file and the reason, whenever it is not intact."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from langchain_irl import ModelFolderError, RewardModel
from langchain_irl.reward_model.card import SCHEMA_VERSION, read_card


def _edit_card(folder: Path, **changes: object) -> None:
    card = json.loads((folder / "card.json").read_text())
    card.update(changes)
    (folder / "card.json").write_text(json.dumps(card))


def test_bundled_model_loads_and_names_its_parts(model_copy: Path) -> None:
    card = read_card(model_copy)
    assert card.schema_version == SCHEMA_VERSION
    assert set(card.files) == {
        "encoder.onnx",
        "head.onnx",
        "tokenizer.json",
        "demonstrations.json",
        "demonstrations.npy",
        "prefix_head.onnx",
    }
    assert card.encoder.name == "all-MiniLM-L6-v2"
    assert card.head.members == 5 and card.prefix_head is not None
    assert card.calibration is not None and card.metrics


def test_a_local_folder_shadowing_a_bundled_name_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "helpful").mkdir()  # e.g. an experiment folder in the working directory
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFolderError, match="shadows the bundled model 'helpful'"):
        RewardModel.load("helpful")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match="no such reward-model folder"):
        RewardModel.load(tmp_path / "nope")


def test_not_a_folder(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x01")
    with pytest.raises(ModelFolderError, match="not a folder"):
        RewardModel.load(path)


def test_missing_card(model_copy: Path) -> None:
    (model_copy / "card.json").unlink()
    with pytest.raises(ModelFolderError, match=r"card\.json: missing"):
        RewardModel.load(model_copy)


def test_card_not_json(model_copy: Path) -> None:
    (model_copy / "card.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match="not valid JSON"):
        RewardModel.load(model_copy)


@pytest.mark.parametrize("version", [0, SCHEMA_VERSION + 1, "1", None])
def test_other_schema_version(model_copy: Path, version: object) -> None:
    _edit_card(model_copy, schema_version=version)
    with pytest.raises(ModelFolderError, match="schema version"):
        RewardModel.load(model_copy)


def test_invalid_card_field(model_copy: Path) -> None:
    _edit_card(model_copy, max_tokens=-5)
    with pytest.raises(ModelFolderError, match="max_tokens"):
        RewardModel.load(model_copy)


@pytest.mark.parametrize("name", ["encoder.onnx", "head.onnx", "tokenizer.json"])
def test_missing_file(model_copy: Path, name: str) -> None:
    (model_copy / name).unlink()
    with pytest.raises(ModelFolderError, match=rf"{name}: missing"):
        RewardModel.load(model_copy)


@pytest.mark.parametrize("name", ["encoder.onnx", "head.onnx", "tokenizer.json"])
def test_changed_byte(model_copy: Path, name: str) -> None:
    path = model_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match=rf"{name}: SHA-256 mismatch"):
        RewardModel.load(model_copy)


def test_card_must_list_required_files(model_copy: Path) -> None:
    card = json.loads((model_copy / "card.json").read_text())
    del card["files"]["head.onnx"]
    (model_copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelFolderError, match=r"does not list required file 'head\.onnx'"):
        RewardModel.load(model_copy)


def test_extra_unlisted_graph(model_copy: Path) -> None:
    (model_copy / "extra.onnx").write_bytes((model_copy / "head.onnx").read_bytes())
    with pytest.raises(ModelFolderError, match=r"extra\.onnx: graph not listed"):
        RewardModel.load(model_copy)


@pytest.mark.parametrize("name", ["../head.onnx", "/etc/passwd", "sub/head.onnx", ".."])
def test_path_traversal_in_card(model_copy: Path, name: str) -> None:
    card = json.loads((model_copy / "card.json").read_text())
    card["files"][name] = "0" * 64
    (model_copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelFolderError, match="not a plain file name"):
        RewardModel.load(model_copy)


def test_symlink_out_of_folder(model_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.onnx"
    os.replace(model_copy / "head.onnx", outside)
    (model_copy / "head.onnx").symlink_to(outside)
    with pytest.raises(ModelFolderError, match="symbolic link"):
        RewardModel.load(model_copy)


def test_valid_hash_but_not_a_graph(model_copy: Path) -> None:
    """A file that is listed with its true hash but is no ONNX graph is refused, not crashed on."""
    from langchain_irl.reward_model.card import sha256_file

    (model_copy / "head.onnx").write_bytes(b"not a graph")
    _edit_card(
        model_copy,
        files={
            **json.loads((model_copy / "card.json").read_text())["files"],
            "head.onnx": sha256_file(model_copy / "head.onnx"),
        },
    )
    with pytest.raises(ModelFolderError, match="could not be loaded"):
        RewardModel.load(model_copy)
