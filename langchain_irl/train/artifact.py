"""Write a reward-model folder atomically: a crash never leaves a half-written folder that loads."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from langchain_irl.reward_model.card import CARD_FILE, ModelCard, sha256_file


def write_model_folder(out_dir: str | Path, card: ModelCard, files: Mapping[str, Path]) -> Path:
    """Copy `files` (name -> source path) and a card listing their SHA-256 into `out_dir`.

    Everything is written into a temporary sibling folder first, then renamed into place; an
    existing folder of the same name is replaced only once the new one is complete.
    """
    target = Path(out_dir).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, source in files.items():
            shutil.copyfile(source, staging / name)
        hashes = {name: sha256_file(staging / name) for name in sorted(files)}
        card = card.model_copy(update={"files": hashes})
        (staging / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
        _replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _replace_folder(staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    retired = target.with_name(f".{target.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)
