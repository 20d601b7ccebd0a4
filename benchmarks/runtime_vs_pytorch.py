"""Reward-model speed: the same encoder + head in PyTorch vs the ONNX runtime, side by side.

    python benchmarks/runtime_vs_pytorch.py [--model models/caption-humor] [--repeats 10]

Every variant runs the same weights: the pretrained encoder (exported here to fp32 and to int8 the
way `train` does) with the bundled model's head. Cases: one prompt with 16 short captions (~15
tokens), and one prompt with 16 candidates of ~256 tokens. Prints median wall time per `score`
call, the speed-up over PyTorch, the Spearman of each variant's rewards vs PyTorch fp32 on 2,000
real captions, the largest change of a score between scoring 16 captions at once and one at a
time (a score must be a function of its inputs), and peak RSS of a process that loads the bundled
model folder and scores (without importing torch). Needs the [train] extra.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from langchain_irl import RewardModel
from langchain_irl.evaluation.metrics import spearman
from langchain_irl.reward_model.card import HEAD_FILE, TOKENIZER_FILE
from langchain_irl.reward_model.encoder import OnnxEncoder
from langchain_irl.reward_model.features import candidate_features
from langchain_irl.train.encoder import export_encoder, load_encoder
from langchain_irl.train.head import head_features, head_forward

ROOT = Path(__file__).resolve().parents[1]
CAPTIONS = ROOT / "data" / "caption_contest" / "dev.jsonl"


class TorchRewardModel:
    """The same reward in PyTorch: the original encoder, the head's weights from head.onnx."""

    def __init__(self, model: RewardModel, max_tokens: int) -> None:
        from transformers import AutoTokenizer

        self.encoder, folder = load_encoder()
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.max_tokens = max_tokens
        self.features = model.card.head.features
        weights = {
            t.name: numpy_helper.to_array(t)
            for t in onnx.load(model.folder / HEAD_FILE).graph.initializer
        }
        self.layers = [
            (weights[f"w{i}"], weights[f"b{i}"])
            for i in range(sum(k.startswith("w") for k in weights))
        ]

    def score(self, prompt: str, candidates: list[str]) -> np.ndarray:
        with torch.inference_mode():
            texts = [prompt, *candidates]
            batch = self.tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            )
            embeddings = self.encoder(batch["input_ids"], batch["attention_mask"]).numpy()
        counts = batch["attention_mask"].sum(1).numpy()[1:] - 2
        phi = head_features(
            embeddings[:1], embeddings[1:], candidate_features(candidates, counts, self.features)
        )
        return head_forward(self.layers, phi)


def median_ms(function: Callable[[], object], repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def peak_rss_mb(model_dir: Path, prompt: str, short: list[str], long: list[str]) -> float:
    code = (
        "import sys, json\n"
        "sys.modules['torch'] = None\n"
        "from langchain_irl import RewardModel\n"
        f"m = RewardModel.load({str(model_dir)!r})\n"
        f"args = json.loads({json.dumps(json.dumps([prompt, short, long]))})\n"
        "m.score(args[0], args[1]); m.score(args[0], args[2])\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) parent across exec.
        "status = open('/proc/self/status').read().splitlines()\n"
        "print(next(int(l.split()[1]) for l in status if l.startswith('VmHWM')) / 1024)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return float(output.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "caption-humor")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(2)

    contests = [json.loads(line) for line in CAPTIONS.open(encoding="utf-8")]
    captions = [c["text"] for contest in contests for c in contest["captions"]]
    prompt = contests[-1]["description"]
    short = captions[:16]
    long = [" ".join(captions[100 + 40 * i : 140 + 40 * i]) for i in range(16)]

    shipped = RewardModel.load(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        torch_encoder, folder = load_encoder()
        export_encoder(torch_encoder, folder, Path(tmp) / "fp32.onnx")
        export_encoder(torch_encoder, folder, Path(tmp) / "int8.onnx", quantize=True)
        variants: dict[str, Callable[[int], Callable[[str, list[str]], np.ndarray]]] = {}

        def runtime(onnx_path: Path) -> Callable[[int], Callable[[str, list[str]], np.ndarray]]:
            def build(max_tokens: int) -> Callable[[str, list[str]], np.ndarray]:
                encoder = OnnxEncoder.from_files(onnx_path, args.model / TOKENIZER_FILE, max_tokens)
                return RewardModel(shipped.folder, shipped.card, encoder, shipped._head).score

            return build

        variants["pytorch fp32"] = lambda max_tokens: TorchRewardModel(shipped, max_tokens).score
        variants["onnxruntime fp32"] = runtime(Path(tmp) / "fp32.onnx")
        variants["onnxruntime int8"] = runtime(Path(tmp) / "int8.onnx")

        token_counts = [len(e.ids) for e in shipped.encoder._tokenizer.encode_batch(long)]
        print(
            f"model {args.model.name}; long candidates: {min(token_counts)}-{max(token_counts)} "
            "tokens "
            f"after truncation to {shipped.card.max_tokens}; 2 threads; median of {args.repeats}\n"
        )
        quality_texts = captions[:2000]
        rows = []
        for max_tokens in sorted({shipped.card.max_tokens, 256}):
            for name, build in variants.items():
                score = build(max_tokens)
                rows.append(
                    (
                        name,
                        max_tokens,
                        median_ms(lambda s=score: s(prompt, short), args.repeats),
                        median_ms(lambda s=score: s(prompt, long), args.repeats),
                        np.concatenate(
                            [score(prompt, quality_texts[i : i + 100]) for i in range(0, 2000, 100)]
                        ),
                        # a score must not depend on its batch: 16 at once vs one at a time
                        float(
                            np.abs(
                                score(prompt, short)
                                - np.array([score(prompt, [text])[0] for text in short])
                            ).max()
                        ),
                    )
                )
    print(
        f"{'variant':<28}{'max tok':>8}{'16 short ms':>13}{'x torch':>9}"
        f"{'16 long ms':>12}{'x torch':>9}{'spearman':>10}{'batch |diff|':>14}"
    )
    for name, max_tokens, short_ms, long_ms, rewards, batch_diff in rows:
        base = next(r for r in rows if r[0] == "pytorch fp32" and r[1] == max_tokens)
        print(
            f"{name:<28}{max_tokens:>8}{short_ms:>13.1f}{base[2] / short_ms:>9.2f}{long_ms:>12.1f}"
            f"{base[3] / long_ms:>9.2f}{spearman(base[4], rewards):>10.4f}{batch_diff:>14.2e}"
        )
    print(
        "\npeak RSS, load + score without torch: "
        f"{peak_rss_mb(args.model, prompt, short, long):.0f} MB"
    )


if __name__ == "__main__":
    main()
