"""Train your own reward model: demonstrations JSONL + policy samples JSONL -> a model folder.

    python examples/train_your_own.py --out out/my-model [--contests 8] [--fine-tune-steps 0]

Uses the bundled caption contests as the data (the top-rated captions are the demonstrations, the
crowd's other entries the policy samples); with your own data, write the two JSONL files and call
`train` (or `langchain-irl train`) the same way. Needs the [train] extra.
"""

import argparse
from pathlib import Path

from langchain_irl import RewardModel, read_examples
from langchain_irl.bundled import data_file
from langchain_irl.data.converters import caption_contest, read_caption_contests
from langchain_irl.data.jsonl import write_jsonl
from langchain_irl.train.config import FineTuneConfig, TrainConfig
from langchain_irl.train.pipeline import train

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", type=Path, default=Path("out/my-model"))
parser.add_argument("--contests", type=int, default=8)
parser.add_argument("--fine-tune-steps", type=int, default=0)
args = parser.parse_args()

data = data_file("caption_contest/dev.jsonl")
numbers = [contest.number for contest in read_caption_contests(data)][: args.contests]
demos, samples = caption_contest(data, top=20, contests=numbers)
write_jsonl(args.out.parent / "demos.jsonl", (d.to_json() for d in demos))
write_jsonl(args.out.parent / "samples.jsonl", (s.to_json() for s in samples))

config = TrainConfig(
    objective="maxent",
    fine_tune=FineTuneConfig(steps=args.fine_tune_steps) if args.fine_tune_steps else None,
    validation_share=0.25,
)
card = train(
    read_examples(args.out.parent / "demos.jsonl"),
    read_examples(args.out.parent / "samples.jsonl"),
    args.out,
    config,
)
print(f"wrote {args.out}: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(card.metrics.items())))
model = RewardModel.load(args.out)
print(model.explain(demos[0].input, demos[0].output))
