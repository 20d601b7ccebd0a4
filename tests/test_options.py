"""The options every best-of-n adapter shares: typed, named for what they do, loadable by name."""

from __future__ import annotations

import typing

import pytest
from langchain_core.language_models import FakeListChatModel

from langchain_irl import BestOfN, RewardModel
from langchain_irl.engine import BestOfNOptions
from langchain_irl.engine.options import BestOfNSettings
from langchain_irl.middleware import BestOfNMiddleware


def test_the_middleware_settings_are_the_options_fields() -> None:
    typed = set(typing.get_type_hints(BestOfNSettings))
    assert typed == set(BestOfNOptions.model_fields) - {"reward_model", "n"}


def test_seed_is_a_deprecated_alias_of_selection_seed(model: RewardModel) -> None:
    llm = FakeListChatModel(responses=["a", "b"])
    with pytest.warns(DeprecationWarning, match="selection_seed"):
        best = BestOfN(llm=llm, reward_model=model, selection="softmax", seed=3)
    assert best.selection_seed == 3
    with pytest.warns(DeprecationWarning, match="selection_seed"):
        middleware = BestOfNMiddleware(model, seed=5)  # type: ignore[call-arg]
    assert middleware.options.selection_seed == 5


def test_a_reward_model_by_name_or_folder(model: RewardModel) -> None:
    llm = FakeListChatModel(responses=["a"])
    assert BestOfN(llm=llm, reward_model="caption-humor").reward_model.name == "caption-humor"
    by_folder = BestOfNMiddleware(model.folder, n=2).options.reward_model
    assert by_folder.fingerprint == model.fingerprint
    with pytest.raises(ValueError, match="no-such-model"):
        BestOfN(llm=llm, reward_model="no-such-model")


def test_a_reward_model_closes(model: RewardModel) -> None:
    with RewardModel.load(model.folder) as closing:
        before = closing.score("a cat", ["meow", "woof"])
    assert closing.encoder._workers is None  # its threads are stopped
    assert (closing.score("a cat", ["meow", "woof"]) == before).all()  # and it still scores
    closing.close()  # idempotent
