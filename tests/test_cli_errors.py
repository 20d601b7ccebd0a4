"""The command line as a new user meets it: defaults in the help, early and clear errors, bundled
models by name, the loopback server on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_openai import ChatOpenAI

from langchain_irl import RewardModel
from langchain_irl.chat_models.spec import chat_model
from langchain_irl.cli import main
from langchain_irl.testing import OpenAICompatibleServer
from tests.conftest import BUNDLED_MODEL, CAPTIONS


def _demos(path: Path, count: int = 3) -> Path:
    path.write_text(
        "".join(
            json.dumps({"input": f"cartoon {i}", "output": "demo"}) + "\n" for i in range(count)
        )
    )
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "langchain_irl.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
    )


@pytest.mark.parametrize("command", ["collect", "train", "eval", "demo", "score"])
def test_every_option_shows_its_default_and_a_help_line(command: str) -> None:
    help_text = _run(command, "--help").stdout
    options = help_text.split("options:", 1)[1]
    entries = ["--" + entry for entry in options.split("\n  --")[1:]]
    assert len(entries) >= 2, help_text
    for entry in entries:
        text = " ".join(entry.split())
        assert "(default:" in text, text
        assert len(text.split("(default:")[0].split()) > 2, text  # a help line, not a bare name


def test_bad_numbers_are_refused_by_the_parser(tmp_path: Path) -> None:
    demos = _demos(tmp_path / "demos.jsonl")
    for k in ("-2", "0"):
        result = _run("collect", "--demos", str(demos), "--out", "x", "--k", k, "--model", "m")
        assert result.returncode == 2 and "must be at least 1" in result.stderr
    result = _run("demo", "--n", "0")
    assert result.returncode == 2 and "must be at least 1" in result.stderr
    assert "validation error" not in result.stderr  # no raw pydantic text


def test_empty_and_unmatched_data_fail_before_any_work(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    demos = _demos(tmp_path / "demos.jsonl")
    assert main(["collect", "--demos", str(empty), "--out", "x", "--model", "m"]) == 2
    assert "no demonstrations" in capsys.readouterr().err
    model_folder_before = sorted(p.name for p in BUNDLED_MODEL.iterdir())
    assert main(["eval", str(BUNDLED_MODEL), "--demos", str(empty), "--samples", str(demos)]) == 2
    assert "empty.jsonl: no records" in capsys.readouterr().err
    assert sorted(p.name for p in BUNDLED_MODEL.iterdir()) == model_folder_before  # no plots
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"input": "unrelated", "output": "x"}) + "\n")
    import langchain_irl.train.pipeline as pipeline

    def no_encoder(*args: object) -> None:
        raise AssertionError("the encoder was loaded before the data was checked")

    monkeypatch.setattr(pipeline, "load_encoder", no_encoder)
    code = main(["train", "--demos", str(demos), "--samples", str(other), "--out", "m"])
    assert code == 2 and "has the input of a demonstration" in capsys.readouterr().err
    assert not Path("m").exists()


def test_eval_writes_plots_to_out_and_skips_invalid_lines(tmp_path: Path) -> None:
    from langchain_irl.data.converters import caption_contest
    from langchain_irl.data.jsonl import write_jsonl

    demos, samples = caption_contest(CAPTIONS, top=5, contests={641}, sample_chunks=["middle"])
    write_jsonl(tmp_path / "d.jsonl", (d.to_json() for d in demos))
    with (tmp_path / "d.jsonl").open("a") as handle:
        handle.write("not json\n")
    write_jsonl(tmp_path / "s.jsonl", (s.to_json() for s in samples[:20]))
    out = tmp_path / "plots"
    args = ["eval", "caption-humor", "--demos", str(tmp_path / "d.jsonl")]
    args += ["--samples", str(tmp_path / "s.jsonl"), "--out", str(out)]
    assert main(args) == 2  # the malformed line is an error ...
    assert main([*args, "--skip-invalid"]) == 0  # ... unless skipped
    assert (out / "reward_histogram.png").exists()


def test_eval_reports_whether_the_reward_reads_the_input(model: RewardModel) -> None:
    """Matching accuracy on the five cartoons the bundled model never saw: a demonstration scored
    under its own cartoon against the 4 others (chance 0.2)."""
    from langchain_irl.data.converters import caption_contest
    from langchain_irl.evaluation.report import evaluate

    demo_contests = {641, 645, 648, 650, 654}
    demos, samples = caption_contest(
        CAPTIONS, top=10, contests=demo_contests, sample_chunks=["middle"]
    )
    report = evaluate(model, demos, samples[::5])
    assert report.metrics["matching_accuracy"] > 0.3


def test_models_lists_the_bundled_models() -> None:
    result = _run("models")
    assert result.returncode == 0 and result.stdout.startswith("caption-humor")
    assert "pairwise_accuracy" in result.stdout


def test_clear_errors_from_the_python_api(model: RewardModel) -> None:
    with pytest.raises(TypeError, match="a prompt is a string or a list of chat messages"):
        model.score(123, ["a"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a reward"):
        model.percentile("high")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        model.percentile(float("nan"))


def test_chat_model_specs_resolve_through_init_chat_model() -> None:
    with OpenAICompatibleServer() as server:
        llm = chat_model("openai:loopback", base_url=server.base_url, api_key="unused")
        assert isinstance(llm, ChatOpenAI) and llm.model_name == "loopback"
        assert llm.invoke("hi").text
    # module:attribute still works, and "openai:gpt-4o-mini" is no longer read as one
    assert chat_model("tests.test_cli_errors:_factory").model_name == "from-factory"


def _factory() -> ChatOpenAI:
    return ChatOpenAI(model="from-factory", api_key="unused")


def test_collect_with_base_url_and_system(tmp_path: Path, caption_answers: list[str]) -> None:
    demos = _demos(tmp_path / "demos.jsonl")
    with OpenAICompatibleServer(answers=caption_answers) as server:
        args = ["collect", "--demos", str(demos), "--out", str(tmp_path / "s.jsonl"), "--k", "2"]
        args += ["--model", "loopback", "--base-url", server.base_url, "--system", "Be funny."]
        assert main(args) == 0
        assert all(
            r["messages"][0] == {"role": "system", "content": "Be funny."} for r in server.requests
        )
        assert all(r["n"] == 2 for r in server.requests)
    records = [json.loads(line) for line in (tmp_path / "s.jsonl").open()]
    assert {r["input"] for r in records} == {"cartoon 0", "cartoon 1", "cartoon 2"}  # keys kept
    assert len(records) == 3 * 2 and all(r["output"] in caption_answers for r in records)


def test_the_loopback_server_runs_on_its_own(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        json.dumps({"input": "A cat.", "output": "Meow."})
        + "\n"
        + json.dumps({"input": "A dog.", "output": "Woof."})
        + "\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "langchain_irl.testing", "--pool", str(pool)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base_url = line.split(" at ")[1].split()[0]
        llm = ChatOpenAI(base_url=base_url, api_key="unused", model="loopback")
        assert llm.invoke("A dog.").text == "Woof."  # each prompt gets its own answers
        assert llm.invoke("A cat.").text == "Meow."
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_training_without_torch_says_what_to_install(tmp_path: Path) -> None:
    demos = _demos(tmp_path / "demos.jsonl")
    code = (
        "import sys; sys.modules['torch'] = None\n"  # as if torch were not installed
        "from langchain_irl.cli import main\n"
        f"sys.exit(main(['train', '--demos', {str(demos)!r}, '--samples', {str(demos)!r}, "
        "'--out', 'm']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()  # one line, no traceback
    assert "pip install 'langchain-irl[train]'" in line


def test_a_missing_encoder_folder_is_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from langchain_irl.data.converters import caption_contest
    from langchain_irl.data.jsonl import write_jsonl

    demos, samples = caption_contest(CAPTIONS, top=2, contests={641}, sample_chunks=["middle"])
    write_jsonl(tmp_path / "d.jsonl", (d.to_json() for d in demos))
    write_jsonl(tmp_path / "s.jsonl", (s.to_json() for s in samples[:4]))
    args = ["train", "--demos", str(tmp_path / "d.jsonl"), "--samples", str(tmp_path / "s.jsonl")]
    assert main([*args, "--out", str(tmp_path / "m"), "--encoder", str(tmp_path / "nope")]) == 2
    assert "not a Hugging Face model folder" in capsys.readouterr().err


def test_training_prints_no_library_warnings(tmp_path: Path) -> None:
    """torch's and the ONNX exporter's warnings are not the user's business."""
    from langchain_irl.data.converters import hh_rlhf
    from langchain_irl.data.jsonl import write_jsonl
    from tests.conftest import HH_PAIRS

    write_jsonl(tmp_path / "pairs.jsonl", (p.to_json() for p in hh_rlhf(HH_PAIRS)[:40]))
    result = _run(
        "train",
        "--pairs",
        str(tmp_path / "pairs.jsonl"),
        "--out",
        str(tmp_path / "m"),
        "--max-tokens",
        "32",
        "--no-quantize",
        "--validation-share",
        "0.3",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Warning" not in result.stderr, result.stderr[-2000:]


def test_debug_shows_the_traceback(capsys) -> None:  # type: ignore[no-untyped-def]
    args = ["score", "no-such-model", "--prompt", "p", "a"]
    assert main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()  # one line, no traceback
    assert "no such reward-model folder" in line and "--debug" in line
    assert main(["--debug", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "ModelFolderError" in err


def test_an_import_error_inside_a_model_module_is_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_broken_models.py").write_text(
        "import a_package_that_does_not_exist_xyz\n\ndef factory():\n    return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as raised:
        chat_model("my_broken_models:factory")
    assert raised.value.name == "a_package_that_does_not_exist_xyz"
