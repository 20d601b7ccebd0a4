"""Fine-tuning throughput: the project's loop vs a plain PyTorch loop over the same model.

    python benchmarks/fine_tune_throughput.py [--steps 20] [--batch 16]

Both train all-MiniLM-L6-v2 + a linear head on caption pairs (demo vs one sample) with the same
objective and optimiser. The plain loop tokenises every text on its own and pads to max_tokens;
the project's loop tokenises each batch at once, pads to the batch's longest text, and encodes each
distinct prompt once. Prints pairs/s for both.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer

from langchain_irl.data.converters import caption_contest
from langchain_irl.reward_model.encoder import TextReader
from langchain_irl.train.encoder import load_encoder
from langchain_irl.train.finetune import BatchReader, FineTuneConfig, fine_tune
from langchain_irl.train.head_training import RewardHead
from langchain_irl.train.losses import CandidateSets, objective_loss

ROOT = Path(__file__).resolve().parents[1]
MAX_TOKENS = 128


def plain_loop(records, prompts, groups, is_demo, steps: int, batch: int) -> float:  # type: ignore[no-untyped-def]
    encoder, folder = load_encoder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    head = RewardHead(2 * 384 + 1)
    optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=2e-5)
    sets = CandidateSets.from_groups(groups, is_demo)
    encoder.train()

    def embed(text: str) -> tuple[torch.Tensor, int]:
        tokens = tokenizer(
            text, padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )
        count = int(tokens["attention_mask"].sum()) - 2
        return encoder(tokens["input_ids"], tokens["attention_mask"])[0], count

    start = time.perf_counter()
    for step in range(steps):
        rng = np.random.default_rng(step)
        matrix = sets.draw(1, rng, rng.choice(len(sets.demos), size=batch, replace=False))
        rewards = []
        for row in matrix:
            prompt, _ = embed(prompts[groups[row[0]]])
            row_rewards = []
            for index in row:
                candidate, count = embed(records[index])
                phi = torch.cat(
                    [
                        candidate,
                        prompt * candidate,
                        torch.tensor([np.log1p(count)], dtype=torch.float32),
                    ]
                )
                row_rewards.append(head(phi[None])[0])
            rewards.append(torch.stack(row_rewards))
        loss = objective_loss("maxent", torch.stack(rewards))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(2)
    numbers = [
        json.loads(line)["contest"] for line in (ROOT / "data/caption_contest/dev.jsonl").open()
    ]
    demos, samples = caption_contest(ROOT / "data/caption_contest/dev.jsonl", contests=numbers[:10])
    records = [*demos, *samples]
    prompts = sorted({r.input for r in records})
    groups = np.array([prompts.index(r.input) for r in records])
    is_demo = np.arange(len(records)) < len(demos)
    texts = [r.output for r in records]

    encoder, folder = load_encoder()
    batches = BatchReader(
        TextReader.from_file(folder / "tokenizer.json", MAX_TOKENS), prompts, texts, groups
    )
    head = [(np.zeros((2 * 384 + len(batches.features), 1), np.float32), np.zeros(1, np.float32))]
    config = FineTuneConfig(steps=args.steps, batch=args.batch)
    _, report = fine_tune(encoder, batches, is_demo, head, "maxent", config)
    plain = plain_loop(texts, prompts, groups, is_demo, args.steps, args.batch)
    print(f"\n{'loop':<44}{'pairs/s':>9}")
    print(f"{'plain PyTorch (per text, pad to 128)':<44}{plain:>9.1f}")
    print(f"{'langchain-irl fine_tune (batched, dynamic pad)':<44}{report.pairs_per_second:>9.1f}")
    print(f"speed-up: {report.pairs_per_second / plain:.2f}x")


if __name__ == "__main__":
    main()
