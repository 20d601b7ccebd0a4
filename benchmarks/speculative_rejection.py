"""Speculative best-of-16 as the README shows it, at its defaults, vs best-of-16 vs one call.

AlpacaEval instructions the bundled `helpful` reward never saw, each served by the loopback
OpenAI-compatible server with its own 51 real answers (the judge's reference excluded): every
stream waits for its first token a time drawn from `--first-token` (0.1 to 1.0 s), then writes at
a fixed token rate; `ChatOpenAI` streams them. The models are built exactly as the README builds
them, `BestOfN(llm=ChatOpenAI(...), reward_model=helpful, n=16, speculative=True)`, with no other
option (so `max_concurrency` is its default). For each token rate, side by side:

- tokens: the server's own count of what it wrote (a closed stream stops there);
- wall time per call;
- quality: GPT-4-turbo's `judge_win` of the picked answer (0 for NullModel's, which has none),
  and the share of best-of-16's gain over one call that is kept;
- overshoot: tokens a cut stream wrote past the checkpoint that cut it (client's count: median
  and 90th percentile), and what the server wrote that no client read (per call).

    python benchmarks/speculative_rejection.py [--instructions 24] [--token-rates 100 400]
        [--schedules]   # also the alternative schedules, for the tokens-vs-quality curve
    python benchmarks/speculative_rejection.py --sweep   # offline, many schedules (checkpoints,
        # keep, min_survivors) on every held-out instruction cut into disjoint draws of 16: the
        # lock-step algorithm, and the engine's rule under the streaming timing at each token
        # rate; PNG models/speculative_schedules.png. How the defaults are chosen, before the
        # streaming run confirms them.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from langchain_irl import BestOfN, RewardModel
from langchain_irl.data.converters import ALPACA_REFERENCE, held_out, read_alpaca_eval
from langchain_irl.data.edits import first_words
from langchain_irl.engine.options import SpeculativeRejection
from langchain_irl.evaluation.plots import line_plot
from langchain_irl.testing.server import OpenAICompatibleServer

ROOT = Path(__file__).resolve().parents[1]
SCHEDULES = {
    "12/24/48/96, keep 1/2, min 2 (the previous defaults)": SpeculativeRejection(
        checkpoints=(12, 24, 48, 96), keep=1 / 2, min_survivors=2
    ),
    "16/32/64/128, keep 1/2, min 1 (the defaults before)": SpeculativeRejection(
        checkpoints=(16, 32, 64, 128), keep=1 / 2, min_survivors=1
    ),
}
SWEEP = [  # (checkpoints, keep, min_survivors) for --sweep
    (checkpoints, keep, survivors)
    for checkpoints in [
        (8, 16, 32, 64),
        (8, 16, 32, 64, 128),
        (12, 24, 48),
        (12, 24, 48, 96),
        (16, 32, 64),
        (16, 32, 64, 128),
        (24, 48, 96),
        (32, 64, 128),
    ]
    for keep in (1 / 4, 1 / 3, 1 / 2)
    for survivors in (1, 2, 3, 4)
]


@dataclass
class Measured:
    tokens: float  # the server's count, per call
    seconds: float  # per call
    quality: float  # mean judge_win of the pick
    overshoots: list[int]  # per cut stream, tokens read past its checkpoint
    unread: float  # per call: written by the server, never read by the client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "data/alpaca_eval/dev.jsonl.gz")
    parser.add_argument("--model", default="helpful", help="a bundled name or a folder")
    parser.add_argument("--instructions", type=int, default=24)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--token-rates", type=float, nargs="+", default=[100.0, 400.0])
    parser.add_argument("--first-token", type=float, nargs=2, default=[0.1, 1.0])
    parser.add_argument("--schedules", action="store_true", help="also other schedules")
    parser.add_argument("--plot", type=Path, default=ROOT / "models/speculative_rejection.png")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="instead: the lock-step algorithm offline under many schedules, on every held-out "
        "instruction (how the defaults are chosen)",
    )
    parser.add_argument(
        "--sweep-plot", type=Path, default=ROOT / "models/speculative_schedules.png"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # duplicate-candidate notices: not what is measured here
    records = read_alpaca_eval(args.data)
    chosen = held_out([r["instruction"] for r in records], 0.2, seed=0)  # never trained on
    records = sorted(
        (r for r in records if r["instruction"] in chosen), key=lambda r: r["instruction"]
    )[: None if args.sweep else args.instructions]
    served = {
        r["instruction"]: {g: o for g, o in r["outputs"].items() if g != ALPACA_REFERENCE}
        for r in records
    }
    judge = {
        (prompt, text): judge_win or 0.0
        for prompt, outputs in served.items()
        for text, judge_win in outputs.values()
    }
    pools = {prompt: [text for text, _ in outputs.values()] for prompt, outputs in served.items()}
    reward_model = RewardModel.load(args.model)
    judged = _Judged(reward_model)
    if args.sweep:
        first_token = (args.first_token[0], args.first_token[1])
        _sweep(judged, served, judge, args.n, args.token_rates, first_token, args.sweep_plot)
        return
    first, last = args.first_token

    tables: dict[float, dict[str, Measured]] = {}
    for rate in args.token_rates:
        with OpenAICompatibleServer(
            answers_by_prompt=pools,
            token_rate=rate,
            latency=first,
            jitter=last - first,
            in_turn=True,  # every configuration sees the same 16 answers: paired
        ) as server:
            llm = ChatOpenAI(model="loopback", base_url=server.base_url, api_key="unused")
            readme = {"llm": llm, "reward_model": reward_model, "n": args.n}
            runs: dict[str, BaseChatModel] = {
                "single call": llm,
                f"best-of-{args.n}": BestOfN(**readme),
                f"speculative best-of-{args.n} (README defaults)": BestOfN(
                    **readme, speculative=True
                ),
            }
            if args.schedules:
                runs |= {
                    f"speculative, {name}": BestOfN(**readme, speculative=schedule)
                    for name, schedule in SCHEDULES.items()
                }
            tables[rate] = asyncio.run(_measure_all(runs, pools, judge, server))
            drawn = {prompt: server.answers_in_turn(prompt, args.n) for prompt in pools}
        tables[rate]["lock-step ideal (offline: no latency, no overshoot)"] = _lockstep_ideal(
            judged, list(drawn.items()), judge, SpeculativeRejection()
        )
        tables[rate]["engine's rule offline (this timing, instant scoring)"] = _timed_ideal(
            judged, list(drawn.items()), judge, SpeculativeRejection(), rate, (first, last)
        )

    print(
        f"{len(pools)} held-out AlpacaEval instructions, {args.n} candidates, reward "
        f"{reward_model.name}, first token after {first:g}-{last:g} s, README defaults "
        f"(max_concurrency {BestOfN.model_fields['max_concurrency'].default})"
    )
    for rate, results in tables.items():
        _print_table(rate, results, f"best-of-{args.n}")
    series = {
        f"{name} @ {rate:g} tok/s": ([m.tokens], [m.quality])
        for rate, results in tables.items()
        for name, m in results.items()
        if name.startswith(("speculative", "lock-step"))
    }
    for rate, results in tables.items():
        single, full = results["single call"], results[f"best-of-{args.n}"]
        series[f"single call -> best-of-{args.n} @ {rate:g} tok/s"] = (
            [single.tokens, full.tokens],
            [single.quality, full.quality],
        )
    line_plot(
        series,
        args.plot,
        f"speculative rejection at the README's defaults ({len(pools)} instructions)",
        "output tokens the server wrote per call",
        "mean judge_win of the pick",
    )
    print(f"plot: {args.plot}")


async def _measure_all(
    runs: dict[str, BaseChatModel],
    pools: dict[str, list[str]],
    judge: dict[tuple[str, str], float],
    server: OpenAICompatibleServer,
) -> dict[str, Measured]:
    results = {}
    for name, model in runs.items():
        server.reset_counts()
        start = time.perf_counter()
        replies = [await model.ainvoke(prompt) for prompt in pools]  # one call at a time
        seconds = (time.perf_counter() - start) / len(pools)
        await asyncio.sleep(0.5)  # let the server notice the last closed streams
        speculative = [
            r.response_metadata["best_of_n"]["speculative"]
            for r in replies
            if "speculative" in r.response_metadata.get("best_of_n", {})
        ]
        overshoots = [c["overshoot"] for s in speculative for c in s["candidates"] if c["cut_at"]]
        read = sum(s["generated_tokens"] for s in speculative)
        picks = zip(pools, replies, strict=True)
        results[name] = Measured(
            tokens=server.tokens_sent / len(pools),
            seconds=seconds,
            quality=float(np.mean([judge.get((p, r.text), 0.0) for p, r in picks])),
            overshoots=overshoots,
            unread=(server.tokens_sent - read) / len(pools) if speculative else 0.0,
        )
    return results


class _Judged:
    """The reward's score of each whole answer and each prefix, computed once per (prompt, text,
    checkpoint): a sweep of schedules over the same answers reads them many times."""

    def __init__(self, reward_model: RewardModel) -> None:
        self.reward_model = reward_model
        self._scores: dict[tuple[str, str, int | None], float] = {}

    def scores(self, prompt: str, texts: list[str], checkpoint: int | None) -> np.ndarray:
        """Whole answers' rewards (`checkpoint` None), else the prefix judge's score of their
        first `checkpoint` tokens (the prefix head, where the folder has one)."""
        missing = sorted({t for t in texts if (prompt, t, checkpoint) not in self._scores})
        if missing:
            scorer = self.reward_model.scorer(prompt)
            if checkpoint is None:
                scored = scorer.score_candidates(missing).rewards
            else:
                scored = scorer.score_prefixes([first_words(t, checkpoint) for t in missing])
            self._scores |= {
                (prompt, t, checkpoint): float(v) for t, v in zip(missing, scored, strict=True)
            }
        return np.array([self._scores[(prompt, t, checkpoint)] for t in texts])

    def verdict(
        self, judge: dict[tuple[str, str], float], prompt: str, survivors: list[str]
    ) -> float:
        """The judge's verdict on the survivor the whole-answer reward picks."""
        pick = survivors[int(np.argmax(self.scores(prompt, survivors, None)))]
        return judge.get((prompt, pick), 0.0)


def _lockstep_ideal(
    judged: _Judged,
    draws: list[tuple[str, list[str]]],
    judge: dict[tuple[str, str], float],
    schedule: SpeculativeRejection,
) -> Measured:
    """The original algorithm on the same answers, computed offline: every candidate reaches a
    checkpoint together, the best `keep` share of those still writing goes on, nothing is written
    past a cut. What the reward's prefixes allow, with no network in the way."""
    tokens, quality = [], []
    for prompt, answers in draws:
        words = [answer.split(" ") for answer in answers]  # the server's tokens
        alive, spent = list(range(len(answers))), [len(w) for w in words]
        for checkpoint in schedule.checkpoints:
            writing = [i for i in alive if len(words[i]) > checkpoint]
            if len(alive) <= schedule.min_survivors or not writing:
                break
            rewards = judged.scores(prompt, [answers[i] for i in writing], checkpoint)
            keep = max(
                schedule.passing(len(writing)), schedule.min_survivors - (len(alive) - len(writing))
            )
            ranked = [writing[j] for j in np.argsort(-rewards, kind="stable")]
            for i in ranked[keep:]:
                spent[i] = checkpoint
            alive = [i for i in alive if i not in ranked[keep:]]
        tokens.append(sum(spent))
        quality.append(judged.verdict(judge, prompt, [answers[i] for i in alive]))
    return Measured(float(np.mean(tokens)), float("nan"), float(np.mean(quality)), [], 0.0)


def _timed_ideal(
    judged: _Judged,
    draws: list[tuple[str, list[str]]],
    judge: dict[tuple[str, str], float],
    schedule: SpeculativeRejection,
    rate: float,
    first_token: tuple[float, float],
) -> Measured:
    """The engine's rule, no barrier, on the same answers under the streaming run's timing,
    computed offline: each stream's first token after a uniform draw from `first_token` (the same
    draws for every schedule), then `rate` tokens/s; each prefix, scored the instant it is
    written, against those scored at its checkpoint so far; every stream still writing below the
    `keep` share cut, unless fewer than `min_survivors` would be left (`SpeculativeRejection.
    losers`, as in the engine). No scoring latency, so no overshoot: what judging without a
    barrier, under this timing, costs against the lock-step ideal."""
    rng = np.random.default_rng(0)
    tokens, quality = [], []
    for prompt, answers in draws:
        lengths = [len(answer.split(" ")) for answer in answers]  # the server's tokens
        start = rng.uniform(*first_token, size=len(answers))
        done = [start[i] + lengths[i] / rate for i in range(len(answers))]
        prefix = {
            checkpoint: dict(
                zip(
                    reached,
                    judged.scores(prompt, [answers[i] for i in reached], checkpoint),
                    strict=True,
                )
            )
            for checkpoint in schedule.checkpoints
            if (reached := [i for i, n in enumerate(lengths) if n >= checkpoint])
        }
        arrivals = sorted(
            (start[i] + checkpoint / rate, checkpoint, i)
            for checkpoint, scores in prefix.items()
            for i in scores
        )
        cut: dict[int, float] = {}  # stream -> when
        scored: dict[int, dict[int, float]] = {checkpoint: {} for checkpoint in prefix}
        for now, checkpoint, i in arrivals:
            if i in cut:
                continue
            here = scored[checkpoint]
            here[i] = prefix[checkpoint][i]
            for loser in schedule.losers(here):
                writing = loser not in cut and done[loser] > now
                if writing and len(answers) - len(cut) - 1 >= schedule.min_survivors:
                    cut[loser] = now
        spent = [
            min(lengths[i], int((cut[i] - start[i]) * rate)) if i in cut else lengths[i]
            for i in range(len(answers))
        ]
        alive = [i for i in range(len(answers)) if i not in cut]
        tokens.append(sum(spent))
        quality.append(judged.verdict(judge, prompt, [answers[i] for i in alive]))
    return Measured(float(np.mean(tokens)), float("nan"), float(np.mean(quality)), [], 0.0)


def _sweep(
    judged: _Judged,
    served: dict[str, dict[str, tuple[str, float | None]]],
    judge: dict[tuple[str, str], float],
    n: int,
    rates: list[float],
    first_token: tuple[float, float],
    plot: Path,
) -> None:
    """Every schedule of SWEEP offline, on every held-out instruction's answers cut into disjoint
    draws of n (seeded): the lock-step algorithm, and the engine's rule under the streaming run's
    timing at each token rate (`_timed_ideal`); tokens against quality, to choose the defaults
    by. The plot is the lock-step one."""
    rng = np.random.default_rng(0)
    draws = []
    for prompt, outputs in served.items():
        texts = [text for text, _ in outputs.values()]
        order = rng.permutation(len(texts)).tolist()
        draws += [
            (prompt, [texts[i] for i in order[start : start + n]])
            for start in range(0, len(texts) - n + 1, n)
        ]
    single = float(np.mean([judge.get((p, t), 0.0) for p, answers in draws for t in answers]))
    full = _lockstep_ideal(judged, draws, judge, SpeculativeRejection(keep=1.0))
    print(
        f"offline sweep: {len(served)} held-out instructions, {len(draws)} draws of {n} answers; "
        f"one call {single:.3f}, best-of-{n} {full.quality:.3f} ({full.tokens:.0f} tokens); "
        f"tokens of best-of-{n} / tokens written, and the share of its gain kept: lock-step, then "
        f"the engine's rule with the first token after {first_token[0]:g}-{first_token[1]:g} s\n"
    )
    columns = ["lock-step", *(f"{rate:g} tok/s" for rate in rates)]
    print(f"{'checkpoints':22} {'keep':>5} {'min':>4} " + " ".join(f"{c:>16}" for c in columns))
    series: dict[str, tuple[list[float], list[float]]] = {}
    default = SpeculativeRejection()
    for checkpoints, keep, survivors in SWEEP:
        schedule = SpeculativeRejection(checkpoints=checkpoints, keep=keep, min_survivors=survivors)
        measured = [_lockstep_ideal(judged, draws, judge, schedule)] + [
            _timed_ideal(judged, draws, judge, schedule, rate, first_token) for rate in rates
        ]
        ratios = [full.tokens / m.tokens for m in measured]
        kept = [(m.quality - single) / (full.quality - single) for m in measured]
        mark = "  <- defaults" if schedule == default else ""
        cells = " ".join(f"{r:>8.2f}x {k:>6.0%}" for r, k in zip(ratios, kept, strict=True))
        print(f"{'/'.join(map(str, checkpoints)):22} {keep:>5.2f} {survivors:>4} {cells}{mark}")
        xs, ys = series.setdefault(f"{'/'.join(map(str, checkpoints))}, min {survivors}", ([], []))
        xs.append(ratios[0])
        ys.append(kept[0])
    line_plot(
        series,
        plot,
        f"lock-step speculative best-of-{n}, offline ({len(draws)} draws); points: keep",
        f"tokens of best-of-{n} / tokens written",
        f"share of best-of-{n}'s judge gain kept",
    )
    print(f"plot: {plot}")


def _print_table(rate: float, results: dict[str, Measured], full_name: str) -> None:
    single, full = results["single call"], results[full_name]
    gain = full.quality - single.quality
    print(f"\n{rate:g} tokens/s per stream")
    print(
        f"{'':44} {'tokens/call':>11} {'s/call':>7} {'judge_win':>9} {'tokens vs bo16':>15} "
        f"{'gain kept':>10} {'overshoot median/p90':>21} {'unread/call':>12}"
    )
    for name, m in results.items():
        ratio = full.tokens / m.tokens if m.tokens else float("inf")
        kept = (m.quality - single.quality) / gain if gain else float("nan")
        overshoot = (
            f"{np.median(m.overshoots):.0f} / {np.percentile(m.overshoots, 90):.0f}"
            if m.overshoots
            else "-"
        )
        print(
            f"{name:44} {m.tokens:>11.0f} {m.seconds:>7.2f} {m.quality:>9.3f} {ratio:>14.2f}x "
            f"{kept:>9.0%} {overshoot:>21} {m.unread:>12.1f}"
        )


if __name__ == "__main__":
    main()
