"""Preference pairs -> a harmlessness reward model -> best-of-n on held-out HH-RLHF dialogues.

    python examples/hh_harmless.py --out out/hh-harmless [--pairs 1384] [--fine-tune-steps 0]

Trains on Anthropic HH-RLHF harmless-base pairs (Bradley-Terry, the dialogue rendered as a
transcript), then, for held-out dialogues, lets BestOfN choose between the two replies the HH base
model actually gave, and reports how often it picks the one crowdworkers preferred. Needs the
[train] extra. Content warning: the dialogues contain offensive material.
"""

import argparse
import random
from pathlib import Path

from langchain_core.language_models.fake_chat_models import FakeListChatModel

from langchain_irl import BestOfN, Example, RewardModel
from langchain_irl.bundled import data_file
from langchain_irl.data.converters import hh_rlhf
from langchain_irl.train.config import FineTuneConfig, TrainConfig
from langchain_irl.train.pipeline import train

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", type=Path, default=Path("out/hh-harmless"))
parser.add_argument("--pairs", type=int, default=1384)
parser.add_argument("--held-out", type=int, default=200)
parser.add_argument("--fine-tune-steps", type=int, default=0)
args = parser.parse_args()

pairs = hh_rlhf(data_file("hh_rlhf_harmless/dev.jsonl.gz"))[: args.pairs]
random.Random(0).shuffle(pairs)
held_out, training = pairs[: args.held_out], pairs[args.held_out :]
card = train(
    [Example(p.input, p.chosen) for p in training],
    [Example(p.input, p.rejected) for p in training],
    args.out,
    TrainConfig(
        objective="bt",
        prompt_format="transcript",
        max_tokens=256,
        fine_tune=FineTuneConfig(steps=args.fine_tune_steps) if args.fine_tune_steps else None,
    ),
)
print(f"trained {args.out}: validation pairwise accuracy {card.metrics['pairwise_accuracy']:.3f}")

model = RewardModel.load(args.out)
picked_chosen = 0
for pair in held_out:
    replies = FakeListChatModel(responses=[pair.chosen, pair.rejected])
    best = BestOfN(llm=replies, reward_model=model, n=2, max_concurrency=1)
    picked_chosen += best.invoke(pair.input).text == pair.chosen
print(
    f"best-of-2 picked the crowdworkers' choice in {picked_chosen} of {len(held_out)} "
    "held-out dialogues"
)
