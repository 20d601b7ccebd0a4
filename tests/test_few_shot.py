"""Reward-aware few-shot selection on real caption data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from langchain_core.prompts import (
    ChatPromptTemplate,
    FewShotChatMessagePromptTemplate,
    FewShotPromptTemplate,
    PromptTemplate,
)
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_irl import RewardExampleSelector, RewardModel, RewardRetriever
from tests.conftest import BUNDLED_MODEL

HELD_OUT = (641, 645, 648, 650, 654)


@pytest.fixture(scope="module")
def pool(contests: list[dict]) -> list[dict]:
    """Every rated caption of the contests the bundled model trained on, shuffled (so that file
    order, which is by rating, cannot help a ranking that ignores quality)."""
    examples = [
        {"input": contest["description"], "output": caption["text"], "rating": caption["mean"]}
        for contest in contests
        if contest["contest"] not in HELD_OUT
        for caption in contest["captions"]
    ]
    random.Random(0).shuffle(examples)
    return examples


@pytest.fixture(scope="module")
def selector(pool: list[dict], model: RewardModel) -> RewardExampleSelector:
    return RewardExampleSelector(examples=list(pool), reward_model=model, k=5)


def test_reward_aware_picks_are_rated_higher_than_similarity_only(
    selector: RewardExampleSelector, pool: list[dict], contests: list[dict], model: RewardModel
) -> None:
    similarity_only = selector.model_copy(update={"reward_weight": 0.0})
    reward_rating, similar_rating, reward_relevance, similar_relevance = [], [], [], []
    for contest in contests:
        if contest["contest"] not in HELD_OUT:
            continue
        for ranking, ratings, relevances in (
            (selector.rank(contest["description"], 10), reward_rating, reward_relevance),
            (similarity_only.rank(contest["description"], 10), similar_rating, similar_relevance),
        ):
            ratings += [pool[demo.index]["rating"] for demo in ranking]
            relevances += [demo.relevance for demo in ranking]
    print(
        f"\nmean human rating of picks: reward-aware {np.mean(reward_rating):.3f} vs "
        f"similarity-only {np.mean(similar_rating):.3f}; mean relevance "
        f"{np.mean(reward_relevance):.3f} vs {np.mean(similar_relevance):.3f}"
    )
    assert np.mean(reward_rating) > np.mean(similar_rating)
    assert np.mean(reward_relevance) > 0.8 * np.mean(similar_relevance)


def test_rank_reports_reward_for_the_new_input(
    selector: RewardExampleSelector, pool: list[dict], model: RewardModel
) -> None:
    query = "A cat chairs a board meeting."
    for demo in selector.rank(query, 3):
        expected = model.score(query, [pool[demo.index]["output"]])[0]
        assert demo.reward == pytest.approx(expected, abs=1e-5)
        expected_relevance = float(
            model.embed([pool[demo.index]["input"]])[0] @ model.embed([query])[0]
        )
        assert demo.relevance == pytest.approx(expected_relevance, abs=1e-5)


def test_linear_fast_path_matches_the_head(model: RewardModel) -> None:
    examples = [
        {"input": f"cartoon {i}", "output": f"caption number {i} " * (i % 4)} for i in range(30)
    ]
    selector = RewardExampleSelector(examples=examples, reward_model=model, k=30)
    assert model.interaction_weights is not None
    query = "A dog in a suit"
    ranked = {demo.index: demo.reward for demo in selector.rank(query)}
    expected = model.score(query, [e["output"] for e in examples])
    for index, reward in ranked.items():
        assert reward == pytest.approx(float(expected[index]), abs=1e-4)


def test_select_add_and_diversity(model: RewardModel) -> None:
    examples = [
        {"question": "A cat at a desk.", "answer": "I'm working from home."},
        {"question": "A cat at a desk.", "answer": "I'm working from home!"},
        {"question": "A fish on a bicycle.", "answer": "Needed one like a fish needs a bicycle."},
    ]
    selector = RewardExampleSelector.from_examples(
        examples, model, k=2, input_keys=["question"], output_key="answer"
    )
    assert len(selector.select_examples({"question": "A cat at a keyboard."})) == 2
    diverse = selector.model_copy(update={"lambda_mult": 0.1, "relevance_weight": 1.0})
    picked = diverse.select_examples({"question": "A cat at a keyboard."})
    assert {e["question"] for e in picked} == {"A cat at a desk.", "A fish on a bicycle."}
    selector.add_example({"question": "A cat at a keyboard.", "answer": "Meow-ware update."})
    assert len(selector.examples) == 4
    best = selector.rank("A cat at a keyboard.", 4)
    added = next(demo for demo in best if demo.index == 3)  # the added one is indexed
    assert added.relevance == pytest.approx(1.0, abs=1e-5)  # its input is the query itself
    assert added.relevance == max(demo.relevance for demo in best)


async def test_async_twins(model: RewardModel) -> None:
    selector = RewardExampleSelector(
        examples=[{"input": "A cat.", "output": "Meow."}], reward_model=model, k=3
    )
    await selector.aadd_example({"input": "A dog.", "output": "Woof."})
    assert selector.examples[-1] == {"input": "A dog.", "output": "Woof."}
    picked = await selector.aselect_examples({"input": "A dog."})
    # the async twins give what the sync methods give: all of them (k > the set), best first
    assert picked == selector.select_examples({"input": "A dog."})
    assert sorted(e["output"] for e in picked) == ["Meow.", "Woof."]


def test_bad_input_is_a_clear_error(model: RewardModel) -> None:
    with pytest.raises(KeyError, match="example 0 has no 'output' key"):
        RewardExampleSelector(examples=[{"input": "x"}], reward_model=model)
    with pytest.raises(ValueError, match="at least 1 item"):  # at construction, not at selection
        RewardExampleSelector(examples=[], reward_model=model)
    selector = RewardExampleSelector(examples=[{"input": "a", "output": "b"}], reward_model=model)
    with pytest.raises(KeyError, match=r"lack \['input'\]"):  # a wrong key is not guessed at
        selector.select_examples({"question": "x"})
    with pytest.raises(TypeError, match="takes the prompt's input variables as a dict"):
        selector.select_examples("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a string or chat messages"):
        selector.add_example({"input": 3, "output": "b"})
    with pytest.raises(TypeError, match="must be a string or chat messages"):
        selector.select_examples({"input": 3})


def test_copies_never_share_examples(model: RewardModel) -> None:
    original = RewardExampleSelector(
        examples=[{"input": "A cat.", "output": "Meow."}], reward_model=model, k=5
    )
    copy = original.model_copy()
    copy.add_example({"input": "A dog.", "output": "Woof."})
    assert len(copy.examples) == 2 and len(copy.select_examples({"input": "A dog."})) == 2
    assert len(original.examples) == 1 and len(original.select_examples({"input": "x"})) == 1
    replaced = original.model_copy(update={"examples": [{"input": "A", "output": "B"}] * 3})
    assert len(replaced.rank("A")) == 3  # the index follows the examples it was given


def test_chat_message_queries_render_like_demonstrations(model: RewardModel) -> None:
    messages = [("system", "Be funny."), ("human", "A cat chairs a board meeting.")]
    selector = RewardExampleSelector(
        examples=[
            {"input": messages, "output": "Any other business?"},
            {"input": "A fish on a bicycle.", "output": "Pedal faster."},
        ],
        reward_model=model,
        k=1,
        example_keys=["output"],
    )
    (picked,) = selector.select_examples({"input": messages})
    assert picked == {"output": "Any other business?"}  # example_keys filters what is returned
    (top,) = selector.rank(model.render(messages), 1)
    assert top.relevance == pytest.approx(1.0, abs=1e-5)  # the query rendered as the example was


def test_in_few_shot_prompt_templates(selector: RewardExampleSelector) -> None:
    prompt = FewShotPromptTemplate(
        example_selector=selector,
        example_prompt=PromptTemplate.from_template("Cartoon: {input}\nCaption: {output}"),
        suffix="Cartoon: {input}\nCaption:",
        input_variables=["input"],
    )
    text = prompt.format(input="A cat chairs a board meeting.")
    assert text.count("Caption:") == selector.k + 1
    chat = ChatPromptTemplate.from_messages(
        [
            ("system", "Write a funny caption."),
            FewShotChatMessagePromptTemplate(
                example_selector=selector,
                example_prompt=ChatPromptTemplate.from_messages(
                    [("human", "{input}"), ("ai", "{output}")]
                ),
                input_variables=["input"],
            ),
            ("human", "{input}"),
        ]
    )
    messages = chat.format_messages(input="A cat chairs a board meeting.")
    assert len(messages) == 1 + 2 * selector.k + 1


def test_from_jsonl(tmp_path: Path, model: RewardModel) -> None:
    path = tmp_path / "demos.jsonl"
    path.write_text(
        json.dumps({"input": [{"role": "user", "content": "A cat."}], "output": "Meow."}) + "\n"
    )
    selector = RewardExampleSelector.from_jsonl(path, model, k=1)
    assert selector.select_examples({"input": "A kitten."}) == [
        {"input": "A cat.", "output": "Meow."}
    ]


def test_retriever_documents(selector: RewardExampleSelector) -> None:
    retriever = RewardRetriever(selector=selector, k=3)
    documents = retriever.invoke("A cat chairs a board meeting.")
    assert len(documents) == 3
    assert {"input", "reward", "relevance", "score"} <= set(documents[0].metadata)
    assert len(retriever.invoke("A cat chairs a board meeting.", k=7)) == 7
    scores = [d.metadata["score"] for d in documents]
    assert scores == sorted(scores, reverse=True)


class TestRewardRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[RewardRetriever]:
        return RewardRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        examples = [{"input": f"cartoon {i}", "output": f"caption {i}"} for i in range(12)]
        model = RewardModel.load(BUNDLED_MODEL)
        return {"selector": RewardExampleSelector(examples=examples, reward_model=model)}

    @property
    def retriever_query_example(self) -> str:
        return "A cat chairs a board meeting."


def test_selection_while_examples_are_added_sees_one_snapshot(model: RewardModel) -> None:
    """add_example from one thread while others select: every selection is a consistent list
    (no IndexError from a new index over an old list), and no added example is lost."""
    import threading

    selector = RewardExampleSelector(
        examples=[{"input": "A cat.", "output": "Meow."}], reward_model=model, k=3
    )
    errors: list[BaseException] = []

    def select() -> None:
        try:
            for _ in range(30):
                for example in selector.select_examples({"input": "An animal."}):
                    assert set(example) == {"input", "output"}
        except BaseException as error:  # reported below, on the test's thread
            errors.append(error)

    def add(start: int) -> None:
        for i in range(start, start + 10):
            selector.add_example({"input": f"Animal {i}.", "output": f"Sound {i}."})

    threads = [threading.Thread(target=select) for _ in range(2)]
    threads += [threading.Thread(target=add, args=(start,)) for start in (0, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    assert len(selector.examples) == 21  # 1 + 2 x 10: none lost to a concurrent add
    assert len(selector.rank("Animal 5.", k=21)) == 21
