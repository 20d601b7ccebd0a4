"""The API reference builds from the docstrings, strictly, and every public option is described."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.retrievers import BaseRetriever
from pydantic import BaseModel

from langchain_irl import BestOfN, RewardExampleSelector, RewardRetriever, SpeculativeRejection
from langchain_irl.engine import BestOfNOptions
from tests.conftest import ROOT


def test_the_api_reference_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    if shutil.which("mkdocs") is None and not _module("mkdocs"):
        pytest.skip("mkdocs is not installed (the [dev] extra installs it)")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    page = (site / "api" / "best_of_n" / "index.html").read_text()
    for section in ("Setup", "Instantiate", "Invoke", "Stream", "Async", "Tools"):
        assert section in page, section
    for section in ("Structured output", "Token usage", "Response metadata"):
        assert section in page, section
    for option in ("selection_seed", "max_concurrency", "candidate_retries", "speculative"):
        assert option in page, option
    for name in ("reward_model", "few_shot", "middleware", "engine", "data", "optimize"):
        assert (site / "api" / name / "index.html").is_file(), name


@pytest.mark.parametrize(
    ("model", "inherited"),
    [
        (BestOfN, BaseChatModel),
        (BestOfNOptions, BaseModel),
        (SpeculativeRejection, BaseModel),
        (RewardExampleSelector, BaseModel),
        (RewardRetriever, BaseRetriever),
    ],
)
def test_every_public_field_is_described(model: type[BaseModel], inherited: type) -> None:
    own = set(model.model_fields) - set(getattr(inherited, "model_fields", {}))
    undescribed = sorted(name for name in own if not model.model_fields[name].description)
    assert not undescribed, f"{model.__name__}: fields without a docstring: {undescribed}"


def _module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
