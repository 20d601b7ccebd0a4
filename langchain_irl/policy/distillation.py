"""`distill`: improve a local model against the learned reward, round after round, into a folder.

With `demonstrations`, round 0 first clones them (SFT on each demonstration's output, the
behaviour-cloning baseline) and the rounds start from the clone: measured on captions, cloning
then improving against the reward beat both cloning alone and improving the base model. Each
round samples n answers per training input from the current policy, scores them with the
reward, keeps the best (RAFT, `method="sft"`) or best-versus-worst pairs (`method="dpo"`), and
trains a LoRA adapter with TRL, merged into the policy for the next round. The output folder is a
Hugging Face model folder (merged weights as safetensors, tokenizer, chat template) that
`AutoModelForCausalLM.from_pretrained` loads, with `policy_card.json` beside the weights and the
rounds' records under `rounds/`:

    rounds/run.json                       what this folder is being trained with (checked on resume)
    rounds/round-0.adapter/, round-0.json the clone of the demonstrations (with `demonstrations`)
    rounds/held-out-before.*.jsonl        the base policy's answers to the held-out inputs
    rounds/round-1.samples.jsonl          answers, appended as they come (resumable)
    rounds/round-1.scored.jsonl           the same with rewards, one line per input
    rounds/round-1.adapter/               the round's LoRA adapter (PEFT, safetensors)
    rounds/round-1.json                   what the round did; written last: the round is done
    rounds/held-out-after-R.*.jsonl       the student's answers after R rounds

Run it again with the same arguments and it picks up where it stopped: a done round is replayed
from its adapter, a round in progress asks only for the answers it lacks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.messages import convert_to_openai_messages
from langchain_core.prompts import ChatPromptTemplate

from langchain_irl.engine.sampling import ChatRunnable
from langchain_irl.evaluation.metrics import paired_interval
from langchain_irl.policy.chat import Device, TransformersChat, load_causal_lm, torch_device
from langchain_irl.policy.exports import write_openai_exports
from langchain_irl.policy.rounds import (
    Messages,
    Scored,
    mean_reward,
    preference_rows,
    raft_rows,
    sample_and_score,
)
from langchain_irl.policy.training import LoraTraining, Method, fine_tune, merge_adapter
from langchain_irl.reward_model.model import RewardModel

logger = logging.getLogger(__name__)

CARD_FILE = "policy_card.json"
CARD_FORMAT = "langchain-irl-policy/1"


@dataclass(frozen=True)
class DistillConfig:
    """What `distill` does each round, and how it checks the result."""

    rounds: int = 1
    n: int = 4  # answers per input per round
    method: Method = "sft"  # sft: RAFT on the best answers; dpo: best against worst
    keep_percentile: float = 0.0  # sft: keep best answers at or above this percentile of them
    margin: float = 0.0  # dpo: least reward margin of a pair
    held_out: float = 0.2  # share of the inputs held back for the check (without validation)
    eval_samples: int = 4  # answers per held-out input, before and after
    temperature: float = 1.0
    max_tokens: int = 64  # new tokens per answer
    device: Device = "auto"
    seed: int = 0
    training: LoraTraining = field(default_factory=LoraTraining)

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.n < 2 or self.eval_samples < 1:
            raise ValueError("rounds and eval_samples must be at least 1, n at least 2")
        if not 0 <= self.held_out < 1:
            raise ValueError(f"held_out must be in [0, 1), got {self.held_out}")
        if not 0 <= self.keep_percentile <= 100:
            raise ValueError(f"keep_percentile must be in [0, 100], got {self.keep_percentile}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DistillResult:
    """The student's folder and its card (also in `folder / "policy_card.json"`)."""

    folder: Path
    card: dict[str, Any]

    def summary(self) -> str:
        held = self.card["held_out"]
        check = "no held-out inputs"
        if held:
            low, high = (f"{v:+.3f}" if v is not None else "?" for v in held["gain_95"])
            check = (
                f"held-out reward {held['reward_before']:+.3f} -> {held['reward_after']:+.3f} "
                f"(paired gain {held['gain']:+.3f}, 95% [{low}, {high}], "
                f"{held['inputs']} inputs x {held['answers_per_input']})"
            )
        return f"{self.card['rounds']} round(s) of {self.card['method']}: {check}"


def distill(
    base: str | Path,
    reward_model: RewardModel | str | Path,
    inputs: Sequence[Mapping[str, Any]],
    prompt: ChatPromptTemplate,
    out: str | Path,
    *,
    config: DistillConfig | None = None,
    validation: Sequence[Mapping[str, Any]] | None = None,
    base_chat: ChatRunnable | None = None,
    export_openai: str | Path | None = None,
    demonstrations: Sequence[Mapping[str, Any]] | None = None,
    progress: bool = True,
) -> DistillResult:
    """Fine-tune `base` (a local Hugging Face folder or `.gguf` file) against the reward.

    `inputs` are the values of `prompt`'s variables, one mapping per input; `validation` (same
    shape) are the held-out inputs, else `config.held_out` of `inputs` is held back (seeded).
    `base_chat` is a chat model serving the same base model faster (a llama.cpp server of the
    GGUF file): round 1 and the held-out check before training sample through it; later rounds
    sample from the local student, which no server holds. `export_openai` also writes every
    round's picks as OpenAI fine-tuning files there (`write_openai_exports`). `demonstrations`
    (the prompt's variables and an `output` each) are cloned first, in round 0, with the same
    LoRA training as a round; the check before training is of the base, before the clone, and
    round 1 then samples from the clone, not through `base_chat`.
    """
    config = config or DistillConfig()
    reward = RewardModel.of(reward_model)
    folder = Path(out)
    records = folder / "rounds"
    records.mkdir(parents=True, exist_ok=True)
    clone_rows = [demonstration_row(prompt, row) for row in demonstrations or ()]
    _check_run(records, base, reward, config, len(clone_rows))
    train, held = _split(
        _distinct([_messages(prompt, row) for row in inputs]),
        None if validation is None else _distinct([_messages(prompt, r) for r in validation]),
        config,
    )
    device = torch_device(config.device)
    model, tokenizer = load_causal_lm(base, config.device)

    def local(seed: int, n: int) -> TransformersChat:
        """The current policy (`model` as the rounds leave it) as a chat model."""
        return TransformersChat(
            model=model,
            tokenizer=tokenizer,
            model_name=str(base),
            n=n,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            seed=seed,
        )

    def check(chat: ChatRunnable, name: str) -> list[Scored]:
        """The held-out inputs' answers (none without held-out inputs)."""
        if not held:
            return []
        return sample_and_score(chat, reward, held, config.eval_samples, records, name)

    # Before and after: the local model, with the same seed per input (common random numbers, a
    # paired check), even when `base_chat` (another server) samples the first round.
    before = check(local(config.seed, config.eval_samples), "held-out-before")
    rounds: list[dict[str, Any]] = []
    picks: list[Scored] = []
    if clone_rows:
        model, cloned = _clone(model, tokenizer, clone_rows, records, config, device, progress)
        rounds.append(cloned)
    for number in range(1, config.rounds + 1):
        name = f"round-{number}"
        summary, adapter = records / f"{name}.json", records / f"{name}.adapter"
        if summary.exists() and adapter.exists():  # done: replay its adapter, train nothing
            model = merge_adapter(model, adapter)
            rounds.append(json.loads(summary.read_text("utf-8")))
            picks += _read_scored(records / f"{name}.scored.jsonl")
            continue
        chat: ChatRunnable = local(config.seed + number, config.n)
        if number == 1 and base_chat is not None and not clone_rows:  # it serves the base
            chat = base_chat
        scored = sample_and_score(chat, reward, train, config.n, records, name)
        rows = _training_rows(scored, config)
        if not rows:
            raise RuntimeError(_nothing_kept(number, scored, config))
        model, trained = fine_tune(
            model,
            tokenizer,
            rows,
            config.method,
            config.training,
            adapter,
            device=device,
            progress=progress,
        )
        stats = {"round": number, **_round_data(scored, rows), "training": trained}
        summary.write_text(json.dumps(stats, indent=2) + "\n", "utf-8")
        rounds.append(stats)
        picks += scored
        logger.info("round %d of %d done: %s", number, config.rounds, stats)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    after = check(local(config.seed, config.eval_samples), f"held-out-after-{config.rounds}")
    card = {
        "format": CARD_FORMAT,
        "base": str(base),
        "reward_model": reward.name,
        "reward_model_fingerprint": reward.fingerprint,
        "method": config.method,
        "rounds": config.rounds,
        "round_one_sampled_by": _describe(base_chat),
        "cloned_demonstrations": len(clone_rows),
        "data": {
            "train_inputs": len(train),
            "held_out_inputs": len(held),
            "held_out_from": "validation"
            if validation is not None
            else f"{config.held_out} of the inputs (seed {config.seed})",
            "rounds": rounds,
        },
        "held_out": _held_out(before, after),
        "config": config.to_json(),
    }
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", "utf-8")
    if export_openai is not None:
        write_openai_exports(
            picks, export_openai, keep_percentile=config.keep_percentile, margin=config.margin
        )
    return DistillResult(folder, card)


def export_best_of_n(
    chat: ChatRunnable,
    reward_model: RewardModel | str | Path,
    inputs: Sequence[Mapping[str, Any]],
    prompt: ChatPromptTemplate,
    out: str | Path,
    *,
    export: str | Path | None = None,
    n: int = 4,
    keep_percentile: float = 0.0,
    margin: float = 0.0,
    concurrency: int = 8,
) -> dict[str, int]:
    """One round without training, for a model trained elsewhere (a hosted one): n answers per
    input from `chat`, scored, kept in `out/rounds/round-1.*` (resumable), and the picks written
    as OpenAI fine-tuning files (`sft.jsonl`, `preference.jsonl`) into `export` (default `out`).
    Returns the rows of each file."""
    reward = RewardModel.of(reward_model)
    folder = Path(out)
    prompts = _distinct([_messages(prompt, row) for row in inputs])
    scored = sample_and_score(
        chat, reward, prompts, n, folder / "rounds", "round-1", concurrency=concurrency
    )
    return write_openai_exports(
        scored, export or folder, keep_percentile=keep_percentile, margin=margin
    )


def demonstration_row(prompt: ChatPromptTemplate, row: Mapping[str, Any]) -> dict[str, Any]:
    """A demonstration (`prompt`'s variables and its `output`) as TRL's conversational
    prompt-completion row: what behaviour cloning trains on."""
    if not isinstance(row.get("output"), str):
        raise ValueError(f"a demonstration needs an 'output' string, got keys {sorted(row)}")
    return {
        "prompt": _messages(prompt, row),
        "completion": [{"role": "assistant", "content": row["output"]}],
    }


def _clone(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    records: Path,
    config: DistillConfig,
    device: str,
    progress: bool,
) -> tuple[Any, dict[str, Any]]:
    """Round 0: the policy fine-tuned on the demonstrations, or replayed from its adapter."""
    summary, adapter = records / "round-0.json", records / "round-0.adapter"
    if summary.exists() and adapter.exists():
        return merge_adapter(model, adapter), json.loads(summary.read_text("utf-8"))
    model, trained = fine_tune(
        model, tokenizer, rows, "sft", config.training, adapter, device=device, progress=progress
    )
    stats = {"round": 0, "cloned": len(rows), "training": trained}
    summary.write_text(json.dumps(stats, indent=2) + "\n", "utf-8")
    return model, stats


def _messages(prompt: ChatPromptTemplate, row: Mapping[str, Any]) -> Messages:
    """The policy's prompt for one input, as role/content messages."""
    messages = convert_to_openai_messages(prompt.format_messages(**row))
    return [{"role": m["role"], "content": str(m["content"])} for m in messages]


def _distinct(prompts: Sequence[Messages]) -> list[Messages]:
    """The prompts without repeats, in order."""
    return list({json.dumps(p, sort_keys=True): p for p in prompts}.values())


def _split(
    prompts: list[Messages], validation: list[Messages] | None, config: DistillConfig
) -> tuple[list[Messages], list[Messages]]:
    """(training, held-out) prompts: all of them and the validation ones, else a seeded share
    of them held back (at least one when the share is above 0, never all)."""
    if not prompts:
        raise ValueError("no inputs to train on")
    if validation is not None:
        return prompts, validation
    count = min(len(prompts) - 1, max(1, round(config.held_out * len(prompts))))
    if config.held_out == 0 or count < 1:
        return prompts, []
    order = np.random.default_rng(config.seed).permutation(len(prompts))
    held = set(order[:count].tolist())
    return (
        [p for i, p in enumerate(prompts) if i not in held],
        [p for i, p in enumerate(prompts) if i in held],
    )


def _check_run(
    records: Path, base: str | Path, reward: RewardModel, config: DistillConfig, cloned: int
) -> None:
    """A folder being resumed was started with this base, reward, configuration and number of
    cloned demonstrations (only the number of rounds may grow, and the device change); a new one
    records them."""
    path = records / "run.json"
    run: dict[str, Any] = {
        "base": str(base),
        "reward_model": reward.fingerprint,
        "config": config.to_json(),
        **({"cloned_demonstrations": cloned} if cloned else {}),  # older folders: none
    }
    if not path.exists():
        path.write_text(json.dumps(run, indent=2) + "\n", "utf-8")
        return
    started = json.loads(path.read_text("utf-8"))
    changed = _differing(started, run) + _differing(started["config"], run["config"])
    changed = [key for key in changed if key not in ("config", "rounds", "device")]
    if changed:
        raise ValueError(
            f"{records.parent}: was started with other settings ({', '.join(changed)}); "
            "give a new --out, or the same settings to resume"
        )


def _differing(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(key for key in {*old, *new} if old.get(key) != new.get(key))


def _training_rows(scored: list[Scored], config: DistillConfig) -> list[dict[str, Any]]:
    if config.method == "sft":
        return raft_rows(scored, config.keep_percentile)
    return preference_rows(scored, config.margin)


def _nothing_kept(number: int, scored: list[Scored], config: DistillConfig) -> str:
    if config.method == "sft":
        return f"round {number}: every best answer of {len(scored)} inputs was empty"
    return (
        f"round {number}: no pair of {len(scored)} inputs differs by a reward margin of at least "
        f"{config.margin} (lower the margin, or raise n)"
    )


def _round_data(scored: list[Scored], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A round's data sizes and rewards: the policy's mean, and the mean of its best answers."""
    return {
        "inputs": len(scored),
        "answers": sum(len(s.samples) for s in scored),
        "kept": len(rows),
        "mean_reward": mean_reward(scored),
        "mean_best_reward": float(np.mean([max(s.rewards) for s in scored])),
    }


def _held_out(before: list[Scored], after: list[Scored]) -> dict[str, Any] | None:
    """The held-out check: mean reward of the answers before and after, and the paired gain
    per input (its mean over the input's answers) with a 95% interval."""
    if not before:
        return None
    gains = [
        float(np.mean(a.rewards) - np.mean(b.rewards)) for b, a in zip(before, after, strict=True)
    ]
    gain, low, high = paired_interval(gains)
    return {
        "inputs": len(before),
        "answers_per_input": len(before[0].samples),
        "reward_before": mean_reward(before),
        "reward_after": mean_reward(after),
        "gain": gain,
        "gain_95": [_finite(low), _finite(high)],  # None: too few inputs for an interval
    }


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def _read_scored(path: Path) -> list[Scored]:
    from langchain_irl.data.jsonl import read_records

    return read_records(path, lambda r: Scored(r["input"], r["samples"], r["rewards"]))


def _describe(chat: ChatRunnable | None) -> str:
    if chat is None:
        return "the local model"
    return f"{type(chat).__name__} {getattr(chat, 'model_name', '')}".strip()
