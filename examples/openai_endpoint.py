"""Best-of-n with any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, Ollama, ...).

    OPENAI_BASE_URL=http://localhost:8000/v1 OPENAI_API_KEY=... \
        python examples/openai_endpoint.py --model my-model [--n 8]

ChatOpenAI's own `n` is used: one request returns all n candidates, the prompt billed once.
"""

import argparse
import os

from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from langchain_irl import BestOfN, RewardModel

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"))
parser.add_argument("--n", type=int, default=8)
args = parser.parse_args()

llm = ChatOpenAI(model=args.model, base_url=args.base_url, temperature=1.0)
best = BestOfN(llm=llm, reward_model=RewardModel.load("caption-humor"), n=args.n)
prompt = ChatPromptTemplate.from_messages(
    [("system", "Write a funny caption."), ("human", "{cartoon}")]
)
message = (prompt | best).invoke({"cartoon": "A cat chairs a board meeting."})
meta = message.response_metadata["best_of_n"]
print(f"best of {meta['n_succeeded']} in {meta['requests']} request(s): {message.text}")
print(
    f"reward {meta['chosen_reward']:+.2f} (p{meta['chosen_percentile']:.0f}); "
    f"usage {message.usage_metadata}"
)
