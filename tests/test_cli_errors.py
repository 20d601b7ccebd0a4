"""The command line as a new user meets it: defaults in the help, early and clear errors (one line
naming the file, line, field or URL, for every command and file option), bundled models by name,
the loopback server on its own."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_openai import ChatOpenAI

from langchain_irl import RewardModel
from langchain_irl.chat_models.spec import chat_model
from langchain_irl.cli import main
from langchain_irl.cli.main import EPILOG, build_parser, parse_args
from langchain_irl.testing import OpenAICompatibleServer
from tests.conftest import BUNDLED_MODEL, CAPTIONS, ROOT


def _demos(path: Path, count: int = 3) -> Path:
    path.write_text(
        "".join(
            json.dumps({"input": f"cartoon {i}", "output": "demo"}) + "\n" for i in range(count)
        )
    )
    return path


def _run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed command line, run as a user runs it (no OPENAI_* settings unless given)."""
    return subprocess.run(
        [sys.executable, "-m", "langchain_irl.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")} | (env or {}),
    )


COMMANDS = [
    *("models", "demo", "score", "best-of-n", "optimize", "collect", "train", "eval", "report"),
    "distill",
    *("data caption-contest", "data alpaca-eval", "data hh-rlhf"),
]


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in command.split():
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


def _entries(help_text: str) -> dict[str, str]:
    """Each option's entry in a help text, on one line, by the option's first name."""
    entries: dict[str, str] = {}
    name = None
    for line in help_text.split("options:", 1)[1].splitlines():
        if line.startswith("  -"):
            name = line.split()[0].rstrip(",")
            entries[name] = line
        elif line.startswith("   ") and name:
            entries[name] += " " + line
        else:
            name = None  # a blank line or a group's title
    return {name: " ".join(entry.split()) for name, entry in entries.items()}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_a_help_line_and_says_its_default_once(command: str) -> None:
    """Once: never "(default: the bundled one) (default: None)"; and never on a required option,
    nor for None or a flag's False, which only mean "not given"."""
    entries = _entries(_run(*command.split(), "--help").stdout)
    for action in _subparser(command)._actions:
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        entry = entries[action.option_strings[0]]
        assert len(entry.split("(default")[0].split()) > 2, entry  # a help line, not a bare name
        assert entry.count("(default") <= 1, entry
        assert "(default: None)" not in entry and "(default: False)" not in entry, entry
        if action.required:
            assert "(default" not in entry, entry
        elif action.default not in (None, False, argparse.SUPPRESS):
            assert "(default" in entry, entry


def test_the_epilog_examples_parse() -> None:
    """Every example of `langchain-irl --help` is a command line the parser accepts (each one
    continued with a backslash where it goes on)."""
    epilog = EPILOG.split("examples:\n", 1)[1]
    for line in epilog.splitlines():  # no two lines run together ("prompt.json       --inputs")
        assert "  " not in line.strip() and len(line) <= 100, line
    examples = epilog.replace("\\\n", " ").strip().splitlines()
    assert len(examples) >= 10
    for example in examples:
        words = shlex.split(example.replace("[", "").replace("]", ""))
        assert words[0] == "langchain-irl", example
        parse_args(words[1:])  # exits on an error


def test_version() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.split() == ["langchain-irl", importlib.metadata.version("langchain-irl")]


CLOSED = "http://127.0.0.1:9/v1"  # a closed port on loopback: nothing answers there
PROMPT = ROOT / "examples" / "prompt.json"  # its variable: {cartoon}
INSTRUCTION = ROOT / "examples" / "instruction.txt"  # plain text: the variable is {input}
OPTIMIZE = "optimize --reward-model caption-humor --model m --out o.json"
DISTILL = "distill --reward-model caption-humor --out student"
BEST_OF_N = "best-of-n --sft s.jsonl --pairs p.jsonl --reward-model caption-humor --model m"

# One row a case: [ENV=VALUE ...] the command line, run in a folder of the files below, and what
# its one line of error says. {server}: a loopback server that answers.
ERROR_CASES = [
    # score
    ("score caption-humor --input no-input.jsonl --out o.jsonl", "no-input.jsonl:1: missing keys"),
    ("score caption-humor --input no-output.jsonl --out o.jsonl", "1: missing key 'output'"),
    ("score caption-humor --input empty.jsonl --out o.jsonl", "empty.jsonl: no rows to score"),
    ("score caption-humor --input not-json.jsonl --out o.jsonl", "not-json.jsonl:1: "),
    ("score caption-humor --input nowhere.jsonl --out o.jsonl", "nowhere.jsonl: no such file"),
    ("score caption-humor --input demos.jsonl --out folder", "folder: is a folder"),
    ("score no-such-model --prompt p a", "no-such-model: no such reward-model folder"),
    # best-of-n
    (f"{BEST_OF_N} --input no-input.jsonl", "no-input.jsonl:1: missing key 'input'"),
    (f"{BEST_OF_N} --input empty.jsonl", "empty.jsonl: no prompts"),
    (f"{BEST_OF_N} --input demos.jsonl --base-url {CLOSED}", f"cannot reach {CLOSED} (--base-url)"),
    (f"OPENAI_BASE_URL={CLOSED} {BEST_OF_N} --input demos.jsonl", "(OPENAI_BASE_URL)"),
    (f"{BEST_OF_N} --input demos.jsonl --sft folder", "folder: is a folder"),
    # collect
    ("collect --demos empty.jsonl --out s.jsonl --model m", "empty.jsonl: no demonstrations"),
    ("collect --demos no-output.jsonl --out s.jsonl --model m", "1: missing key 'output'"),
    ("collect --demos demos.jsonl --out folder --model m", "folder: is a folder"),
    (
        f"collect --demos demos.jsonl --out s.jsonl --openai-model m --base-url {CLOSED}",
        f"cannot reach {CLOSED} (--base-url): ",
    ),
    # optimize
    (f"{OPTIMIZE} --prompt {PROMPT} --inputs cartoons.jsonl --base-url {CLOSED}", CLOSED),
    (f"{OPTIMIZE} --prompt {PROMPT} --inputs inputs.jsonl", "1: missing key 'cartoon'"),
    (f"{OPTIMIZE} --prompt {PROMPT} --inputs empty.jsonl", "empty.jsonl: no inputs"),
    (
        f"{OPTIMIZE} --prompt {PROMPT} --inputs cartoons.jsonl --demos empty.jsonl",
        "empty.jsonl: no demonstrations",
    ),
    (
        f"{OPTIMIZE} --prompt {PROMPT} --inputs cartoons.jsonl --validation inputs.jsonl",
        "inputs.jsonl:1: missing key 'cartoon'",
    ),
    (
        f"{OPTIMIZE} --prompt {PROMPT} --inputs cartoons.jsonl --log demos.jsonl",
        "demos.jsonl:1: not a log of `langchain-irl optimize`",
    ),
    (f"{OPTIMIZE} --prompt nowhere.json --inputs cartoons.jsonl", "nowhere.json: no such file"),
    (f"{OPTIMIZE} --prompt not-json.json --inputs cartoons.jsonl", "not-json.json: not a saved"),
    (f"{OPTIMIZE} --prompt empty.txt --inputs inputs.jsonl", "empty.txt: an empty instruction"),
    (f"{OPTIMIZE} --prompt {INSTRUCTION} --inputs cartoons.jsonl", "1: missing key 'input'"),
    (f"{OPTIMIZE} --system 'Be funny.' --inputs cartoons.jsonl", "1: missing key 'input'"),
    (
        f"{OPTIMIZE} --prompt {PROMPT} --inputs cartoons.jsonl --base-url localhost:9",
        "localhost:9 (--base-url) is not a URL",
    ),
    (
        f"{OPTIMIZE} --prompt {PROMPT} --inputs cartoons.jsonl --base-url {{server}} --max-calls 3",
        "--max-calls 3 does not cover",
    ),
    (
        f"optimize --reward-model no-such-model --model m --out o.json --prompt {PROMPT} "
        "--inputs cartoons.jsonl",
        "no-such-model: no such reward-model folder",
    ),
    # distill
    (
        f"{DISTILL} --base nowhere --prompt {PROMPT} --inputs inputs.jsonl",
        "1: missing key 'cartoon'",
    ),
    (f"{DISTILL} --base nowhere --prompt {PROMPT} --inputs empty.jsonl", "empty.jsonl: no inputs"),
    (f"{DISTILL} --base nowhere --prompt {PROMPT} --inputs cartoons.jsonl", "nowhere"),
    (
        f"{DISTILL} --prompt {PROMPT} --inputs cartoons.jsonl --model m --base-url {CLOSED} "
        "--export-openai exports",
        f"cannot reach {CLOSED} (--base-url)",
    ),
    (f"{DISTILL} --prompt {PROMPT} --inputs cartoons.jsonl", "give --base (a model to train)"),
    # demo
    (f"OPENAI_BASE_URL={CLOSED} demo --model m", f"cannot reach {CLOSED} (OPENAI_BASE_URL): "),
    (f"OPENAI_BASE_URL={CLOSED} demo", f"cannot reach {CLOSED} (OPENAI_BASE_URL): "),
    ("OPENAI_BASE_URL=localhost:9 demo", "localhost:9 (OPENAI_BASE_URL) is not a URL"),
    ("demo --data empty.jsonl", "empty.jsonl: none of the demo's contests"),
    ("demo --data demos.jsonl", "demos.jsonl:1: not a caption-contest record"),
    ("demo --out demos.jsonl", "demos.jsonl: is a file"),
    ("demo --reward-model no-such-model", "no-such-model: no such reward-model folder"),
    # train, eval, report
    ("train --demos empty.jsonl --samples demos.jsonl --out m", "empty.jsonl: no records"),
    ("train --demos demos.jsonl --samples nowhere.jsonl --out m", "nowhere.jsonl: no such file"),
    ("train --pairs demos.jsonl --out m", "demos.jsonl:1: missing key 'chosen'"),
    ("train --demos demos.jsonl --samples demos.jsonl --out demos.jsonl", "demos.jsonl: is a file"),
    ("eval caption-humor --demos not-json.jsonl --samples demos.jsonl", "not-json.jsonl:1: "),
    (
        "eval caption-humor --demos demos.jsonl --samples demos.jsonl --adversarial empty.jsonl",
        "empty.jsonl: no records",
    ),
    ("eval caption-humor --demos demos.jsonl --samples demos.jsonl --out demos.jsonl", "a file"),
    ("report caption-humor --out r --pairs empty.jsonl", "empty.jsonl: no preference pairs"),
    ("report caption-humor --out demos.jsonl", "demos.jsonl: is a file"),
    # data
    ("data caption-contest empty.jsonl --out-dir d", "empty.jsonl: no caption contests"),
    ("data caption-contest demos.jsonl --out-dir d", "demos.jsonl:1: not a caption-contest"),
    ("data hh-rlhf empty.jsonl --out d.jsonl", "empty.jsonl: no HH-RLHF records"),
    ("data hh-rlhf demos.jsonl --out d.jsonl", "demos.jsonl:1: not an HH-RLHF record"),
    ("data alpaca-eval nowhere.jsonl --out-dir d", "nowhere.jsonl: no such file"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("files")
    _demos(folder / "demos.jsonl")
    rows = {
        "empty.jsonl": [],
        "no-input.jsonl": [{"text": "A cat."}],
        "no-output.jsonl": [{"input": "A cat."}],
        "cartoons.jsonl": [{"cartoon": f"A cat, number {i}."} for i in range(10)],
        "inputs.jsonl": [{"input": f"A cat, number {i}."} for i in range(10)],
    }
    for name, records in rows.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "not-json.jsonl").write_text("not json\n")
    (folder / "not-json.json").write_text("Write a caption.\n")
    (folder / "empty.txt").write_text("\n")
    (folder / "folder").mkdir()
    return folder


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer() as running:
        yield running


@pytest.mark.parametrize(("command", "says"), ERROR_CASES)
def test_an_error_is_one_line_naming_what_is_wrong(
    command: str, says: str, files: Path, server: OpenAICompatibleServer, tmp_path: Path
) -> None:
    """Every command and file option, with a wrong file, a wrong field, an empty file and an
    unreachable server: one line on stderr that names it, exit code 2, nothing written."""
    words = shlex.split(command.replace("{server}", server.base_url))
    env = {"XDG_CACHE_HOME": str(tmp_path)}  # the demo's default folder, and onnxruntime's
    while "=" in words[0]:
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    before = sorted(files.rglob("*"))
    result = _run(*words, cwd=files, env=env)
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = result.stderr.splitlines()  # one line: no traceback, no progress bar
    assert line.startswith("langchain-irl: error: "), line
    assert line.endswith(" (run with --debug for the traceback)"), line
    assert says in line, line
    assert "max_calls" not in line, line  # the option's name, not the Python parameter's
    assert sorted(files.rglob("*")) == before  # it failed before writing anything


@pytest.mark.parametrize(
    "args",
    [
        ["--debug", "score", "no-such-model", "--prompt", "p", "a"],
        ["score", "no-such-model", "--prompt", "p", "a", "--debug"],
        ["score", "--debug", "no-such-model", "--prompt", "p", "a"],
        ["data", "hh-rlhf", "nowhere.jsonl", "--out", "x.jsonl", "--debug"],
    ],
)
def test_debug_is_accepted_before_or_after_the_command(args: list[str], tmp_path: Path) -> None:
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "langchain-irl: error" not in result.stderr


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


def test_prefix_lengths_out_of_order_are_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from langchain_irl.data.converters import caption_contest
    from langchain_irl.data.jsonl import write_jsonl

    demos, samples = caption_contest(CAPTIONS, top=2, contests={641}, sample_chunks=["middle"])
    write_jsonl(tmp_path / "d.jsonl", (d.to_json() for d in demos))
    write_jsonl(tmp_path / "s.jsonl", (s.to_json() for s in samples[:4]))
    args = ["train", "--demos", str(tmp_path / "d.jsonl"), "--samples", str(tmp_path / "s.jsonl")]
    assert main([*args, "--out", str(tmp_path / "m"), "--prefix-tokens", "16", "8"]) == 2
    assert "prefix_tokens must be increasing" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


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
