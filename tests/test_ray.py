"""Ray Data jobs on a local Ray cluster (2 CPUs), started and stopped here."""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from langchain_irl import RewardModel
from langchain_irl.batch.collection import read_partitions, sample_id
from langchain_irl.cli.main import main
from langchain_irl.data.collect import openai_sampler
from langchain_irl.testing.faults import crash_once
from langchain_irl.testing.server import OpenAICompatibleServer

ray = pytest.importorskip("ray")
K = 4


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def caption_rows(contests: list[dict]) -> list[dict]:
    return [
        {"input": contest["description"], "output": caption["text"]}
        for contest in contests[:3]
        for caption in contest["captions"][:40]
    ]


def test_map_batches_rewards_equal_score(
    cluster: None, caption_rows: list[dict], model: RewardModel
) -> None:
    from langchain_irl.ray import score_dataset

    dataset = ray.data.from_items(caption_rows)
    scored = score_dataset(dataset, model.folder, actors=2, batch_size=16, num_cpus=0.5)
    rows = scored.take_all()
    assert len(rows) == len(caption_rows)
    for prompt in {row["input"] for row in caption_rows}:
        mine = [row for row in rows if row["input"] == prompt]
        expected = model.score(prompt, [row["output"] for row in mine])
        np.testing.assert_array_equal([row["reward"] for row in mine], expected)  # bit for bit
        np.testing.assert_allclose([row["percentile"] for row in mine], model.percentile(expected))


def test_score_command_same_rows_with_and_without_ray(
    cluster: None, caption_rows: list[dict], tmp_path: Path
) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({**r, "id": i}) + "\n" for i, r in enumerate(caption_rows)))
    plain, distributed = tmp_path / "plain.jsonl", tmp_path / "ray.jsonl"
    args = ["score", "caption-humor", "--input", str(rows), "--batch-size", "32"]
    assert main([*args, "--out", str(plain)]) == 0
    assert main([*args, "--out", str(distributed), "--ray", "--actors", "2"]) == 0
    assert plain.read_text() == distributed.read_text()
    first = json.loads(plain.read_text().splitlines()[0])
    assert set(first) == {"input", "output", "id", "reward", "percentile"}


def _collect(server: OpenAICompatibleServer, out: Path, factory: object, inputs: int) -> list:
    from langchain_irl.ray import collect_dataset

    dataset = ray.data.from_items([{"input": f"question {i}"} for i in range(inputs)])
    job = collect_dataset(
        dataset, factory, out, K, actors=2, batch_size=5, attempts=10, partitions=8, num_cpus=0.5
    )
    return job.take_all()


def _check_exactly_k(out: Path, inputs: int) -> None:
    records = read_partitions(out)
    ids = Counter(record["id"] for record in records)
    assert max(ids.values()) == 1  # nothing written twice
    per_input = Counter(record["input"] for record in records)
    assert per_input == {f"question {i}": K for i in range(inputs)}
    assert set(ids) == {sample_id(f"question {i}", j) for i in range(inputs) for j in range(K)}


def test_collection_with_failures_ends_with_exactly_k(cluster: None, tmp_path: Path) -> None:
    answers = [f"answer {i}" for i in range(10)]
    with OpenAICompatibleServer(answers, failure_rate=0.3, seed=3) as server:
        factory = functools.partial(
            openai_sampler, "loopback", base_url=server.base_url, api_key="unused", retries=0
        )
        report = _collect(server, tmp_path / "samples", factory, inputs=30)
        assert server.faults_injected > 5
    assert all(row["samples"] == K for row in report)
    _check_exactly_k(tmp_path / "samples", 30)
    # a rerun finds everything done: no request, nothing written
    with OpenAICompatibleServer(answers) as again:
        factory = functools.partial(
            openai_sampler, "loopback", base_url=again.base_url, api_key="unused", retries=0
        )
        rerun = _collect(again, tmp_path / "samples", factory, inputs=30)
        assert again.request_count == 0 and sum(row["written"] for row in rerun) == 0


def test_an_actor_killed_mid_job_loses_and_repeats_nothing(cluster: None, tmp_path: Path) -> None:
    marker = tmp_path / "crashed"
    with OpenAICompatibleServer([f"answer {i}" for i in range(10)]) as server:
        real = functools.partial(
            openai_sampler, "loopback", base_url=server.base_url, api_key="unused", retries=0
        )
        factory = functools.partial(crash_once, real, marker, 3)
        report = _collect(server, tmp_path / "samples", factory, inputs=20)
    assert marker.exists()  # an actor did die, after writing samples of its batch
    assert all(row["samples"] == K for row in report)
    _check_exactly_k(tmp_path / "samples", 20)


def test_best_of_n_command_writes_trl_records(
    cluster: None, alpaca_answers: dict[str, list[str]], tmp_path: Path
) -> None:
    prompts = list(alpaca_answers)[:6]
    (tmp_path / "prompts.jsonl").write_text(
        "".join(json.dumps({"input": p}) + "\n" for p in prompts)
    )
    with OpenAICompatibleServer(answers_by_prompt=alpaca_answers) as server:
        for ray_flag in ([], ["--ray", "--actors", "1"]):
            sft, pairs = (
                tmp_path / f"sft{len(ray_flag)}.jsonl",
                tmp_path / f"pairs{len(ray_flag)}.jsonl",
            )
            args = ["best-of-n", "--input", str(tmp_path / "prompts.jsonl")]
            args += ["--sft", str(sft), "--pairs", str(pairs), "--reward-model", "helpful"]
            args += ["--openai-model", "loopback", "--base-url", server.base_url, "--n", "6"]
            assert main([*args, "--margin", "0.5", *ray_flag]) == 0
            sft_rows = [json.loads(line) for line in sft.read_text().splitlines()]
            pair_rows = [json.loads(line) for line in pairs.read_text().splitlines()]
            # TRL's documented columns: prompt-completion (SFTTrainer), preference (DPOTrainer)
            assert {r["prompt"] for r in sft_rows} == set(prompts)
            assert all(set(r) == {"prompt", "completion", "reward"} for r in sft_rows)
            assert all(r["completion"] in alpaca_answers[r["prompt"]] for r in sft_rows)
            assert pair_rows and all({"prompt", "chosen", "rejected"} <= set(r) for r in pair_rows)
            assert all(r["chosen_reward"] - r["rejected_reward"] >= 0.5 for r in pair_rows)
            helpful = RewardModel.load("helpful")
            for row in pair_rows:
                chosen, rejected = helpful.score(row["prompt"], [row["chosen"], row["rejected"]])
                assert chosen == pytest.approx(row["chosen_reward"], abs=1e-5)
                assert chosen - rejected >= 0.5
