"""What a user gets from pip: the wheel carries the bundled models and data, and the README's
commands and snippets work after a non-editable install, from any directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib

from langchain_irl.testing import OpenAICompatibleServer
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
_ASKED = "Does the 5 second rule actually exist?"  # the README's AlpacaEval instruction
PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_the_package_list_is_every_package_folder() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    folders = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "langchain_irl").rglob("__init__.py")
    }
    assert listed - {"langchain_irl._bundled.models", "langchain_irl._bundled.data"} == folders


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv with the wheel installed (dependencies from this environment), and its bin/."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [*PIP_WHEEL, "-w", str(work), str(ROOT)],
        check=True,
        timeout=600,
    )
    (wheel,) = work.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "langchain_irl/_bundled/models/caption-humor/encoder.onnx" in names
    assert "langchain_irl/_bundled/data/caption_contest/dev.jsonl" in names
    assert "langchain_irl/_bundled/models/helpful/encoder.onnx" in names
    assert "langchain_irl/_bundled/data/alpaca_eval/heldout.jsonl.gz" in names
    assert not any(name.endswith(("train.jsonl.gz", "alpaca_eval/dev.jsonl.gz")) for name in names)
    print(f"\nwheel: {wheel.stat().st_size / 1e6:.1f} MB")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*pip, str(wheel)], check=True, timeout=600)
    yield venv / "bin"


def _run(bin_dir: Path, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            **(env or {}),
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_installed_package_is_the_wheel(installed: Path, tmp_path: Path) -> None:
    where = _run(
        installed,
        [str(installed / "python"), "-c", "import langchain_irl; print(langchain_irl.__file__)"],
        tmp_path,
    )
    assert str(ROOT) not in where and "venv" in where


def test_the_demo_runs_from_any_directory(installed: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    output = _run(installed, ["langchain-irl", "demo"], tmp_path, {"XDG_CACHE_HOME": str(cache)})
    assert "best-of-16 by the reward" in output
    assert (cache / "langchain-irl/demo/best_of_n_demo.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # nothing left where it ran
    assert "caption-humor" in _run(installed, ["langchain-irl", "models"], tmp_path)


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_blocks_run_installed(
    installed: Path,
    tmp_path: Path,
    caption_answers: list[str],
    alpaca_answers: dict[str, list[str]],
    index: int,
) -> None:
    """Each Python block of the README, as a script, with the loopback server standing in for
    OpenAI (the blocks read OPENAI_BASE_URL like any OpenAI client): real AlpacaEval answers for
    the instructions the blocks ask, caption-contest entries for anything else."""
    script = tmp_path / "block.py"
    script.write_text(python_blocks()[index], encoding="utf-8")
    with OpenAICompatibleServer(
        answers=caption_answers[:50], answers_by_prompt=alpaca_answers
    ) as server:
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "unused"}
        output = _run(installed, [str(installed / "python"), str(script)], tmp_path, env)
    block = python_blocks()[index]
    last = output.strip().splitlines()[-1]
    # what each block prints, checked for what it means, not only that it printed something
    if "rm.embed" in block:
        assert last == "(1, 384)" and "[" in output  # scores, then the embedding's shape
    elif "StrOutputParser" in block:
        assert last in caption_answers[:50]  # one real entry, the best of n
    elif "speculative=True" in block:
        assert 0 < int(last) < 16 * max(len(a.split()) for a in alpaca_answers[_ASKED])
    elif "RewardRetriever" in block:
        assert "Document(" in output and "page_content=" in output
    elif "optimize_prompt" in block:
        assert "baseline" in last  # the verdict: the chosen prompt against the baseline
    elif "create_agent" in block:
        assert float(last) == float(last)  # the chosen candidate's reward, a number
    else:
        raise AssertionError(f"README block {index} has no expected output here: add one")
