"""The package's own promises about its source: `py.typed` means mypy agrees with the hints,
and the style the README asks of contributors (`ruff`) holds everywhere."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import ROOT


def test_mypy_finds_no_errors() -> None:
    api = pytest.importorskip("mypy.api", reason="mypy comes with the [dev] extra")
    report, errors, status = api.run(["--no-incremental", str(ROOT / "langchain_irl")])
    assert status == 0, report + errors


def test_ruff_finds_nothing() -> None:
    ruff = shutil.which("ruff") or pytest.skip("ruff comes with the [dev] extra")
    for command in (["check"], ["format", "--check"]):
        run = subprocess.run(
            [ruff, *command, str(ROOT)], capture_output=True, text=True, cwd=ROOT, check=False
        )
        assert run.returncode == 0, f"ruff {' '.join(command)}:\n{run.stdout}{run.stderr}"
