"""The report page in a real browser: headless Chromium, driven over the DevTools protocol.

It opens the report of a bundled model from a file and checks what a person would see: no console
errors, every image loaded, every section heading, no sideways scrolling on a laptop screen. A
screenshot and a printed PDF are saved as test artifacts (`$TEST_ARTIFACTS`, default
build/test-artifacts/). Skipped, with the reason, where Chromium or the `websockets` package is
missing (`.ci/run` installs Chromium where it can).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from langchain_irl import RewardModel
from langchain_irl.data.converters import caption_contest
from langchain_irl.evaluation.html_report import HEADINGS, write_report
from langchain_irl.testing.browser import chromium, find_browser
from tests.conftest import CAPTIONS, ROOT

pytestmark = pytest.mark.skipif(find_browser() is None, reason="no Chromium on this machine")
pytest.importorskip("websockets", reason="needs websockets (the dev extra)")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    demos, samples = caption_contest(
        CAPTIONS, top=10, sample_chunks=["middle"], contests={641, 645}
    )
    with RewardModel.load("caption-humor") as model:
        return write_report(
            model, tmp_path_factory.mktemp("report"), demos, samples, attributed=20, probed=60
        )


def test_the_report_opens_in_a_browser_without_errors(report: Path) -> None:
    with chromium(width=1280) as page:
        facts = page.open(report)
        assert page.errors() == []
        assert len(facts["images"]) >= 3 and all(loaded for _, loaded in facts["images"]), facts
        assert facts["headings"] == list(HEADINGS)
        assert facts["width"] <= 1280  # fits a laptop screen: no sideways scrolling
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "report-caption-humor.png").write_bytes(page.screenshot())
        pdf = page.pdf()
        assert pdf.startswith(b"%PDF")  # it prints
        (ARTIFACTS / "report-caption-humor.pdf").write_bytes(pdf)


def test_a_broken_image_is_seen(report: Path, tmp_path: Path) -> None:
    broken = tmp_path / "index.html"
    broken.write_text(report.read_text(encoding="utf-8").replace("calibration.png", "gone.png"))
    with chromium() as page:
        facts = page.open(broken)
        assert ["gone.png", False] in facts["images"]
        assert page.errors()  # the failed load is reported
