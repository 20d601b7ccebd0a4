"""Best-of-n for an assistant: the bundled `helpful` reward picks among real AlpacaEval answers.

    python examples/helpful_best_of_n.py [--n 16] [--instructions 8]
    OPENAI_BASE_URL=http://localhost:8000/v1 python examples/helpful_best_of_n.py --model my-model

With no endpoint, it serves 24 AlpacaEval instructions that `helpful` never saw on the project's
loopback OpenAI-compatible server: each request is answered with answers drawn from the 51 real
answers of other models to that instruction (the judge's reference answers excluded; the two
adversarial entries, built to fool a judge, included). It then prints what GPT-4-turbo, the judge
the reward never saw, thought of each pick, beside a random answer and the best answer available.
"""

import argparse
import contextlib
import os

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from langchain_irl import BestOfN, RewardModel
from langchain_irl.bundled import data_file
from langchain_irl.data.converters import ALPACA_REFERENCE, read_alpaca_eval
from langchain_irl.testing.server import OpenAICompatibleServer

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"))
parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL", "loopback"))
parser.add_argument("--n", type=int, default=16)
parser.add_argument("--instructions", type=int, default=8)
args = parser.parse_args()

records = read_alpaca_eval(data_file("alpaca_eval/heldout.jsonl.gz"))[: args.instructions]
answers = {
    r["instruction"]: {g: o for g, o in r["outputs"].items() if g != ALPACA_REFERENCE}
    for r in records
}

with contextlib.ExitStack() as stack:
    base_url = args.base_url
    if base_url is None:
        pools = {
            prompt: [text for text, _ in outputs.values()] for prompt, outputs in answers.items()
        }
        server = stack.enter_context(OpenAICompatibleServer(answers_by_prompt=pools))
        base_url = server.base_url
    llm = ChatOpenAI(model=args.model, base_url=base_url, api_key="unused", temperature=1.0)
    best_of_n = BestOfN(
        llm=llm, reward_model=RewardModel.load("helpful"), n=args.n, selection_seed=0
    )
    chain = ChatPromptTemplate.from_messages([("human", "{instruction}")]) | best_of_n
    replies = (chain | StrOutputParser()).batch([{"instruction": p} for p in answers])

print(f"{'judge_win of the pick':>22} {'random':>7} {'best':>6}  instruction")
totals = [0.0, 0.0, 0.0]
for (prompt, outputs), reply in zip(answers.items(), replies, strict=True):
    by_text = {text: judge for text, judge in outputs.values()}
    judged = [judge for judge in by_text.values() if judge is not None]
    picked = by_text.get(reply)
    row = (picked or 0.0, sum(judged) / len(judged), max(judged))
    totals = [t + v for t, v in zip(totals, row, strict=True)]
    shown = "unjudged" if picked is None else f"{picked:.3f}"
    print(f"{shown:>22} {row[1]:7.3f} {row[2]:6.3f}  {prompt[:60]!r}")
mean = [t / len(replies) for t in totals]
print(f"{mean[0]:22.3f} {mean[1]:7.3f} {mean[2]:6.3f}  mean over {len(replies)} instructions")
