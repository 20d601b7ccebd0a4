"""What ships with the package: reward models (`models/`) and the demo's data (`data/`).

In a wheel they live in `langchain_irl/_bundled/`; in a clone (or an editable install) they are
the repository's top-level `models/` and `data/` folders, which stay the source.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def bundled_dir(kind: str) -> Path:
    """The folder of bundled `models` or `data` (installed wheel first, else the clone's)."""
    for folder in (_PACKAGE / "_bundled" / kind, _PACKAGE.parent / kind):
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"no bundled {kind} folder beside {_PACKAGE}: a broken install?")


def bundled_models() -> dict[str, Path]:
    """Bundled reward models by name."""
    try:
        root = bundled_dir("models")
    except FileNotFoundError:
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "card.json").is_file()}


def model_path(name_or_path: str | Path) -> Path:
    """A folder path as given, or, for the bare name of a bundled model, that model's folder."""
    path = Path(name_or_path)
    if not path.exists() and len(path.parts) == 1:
        return bundled_models().get(path.name, path)
    return path


def data_file(relative: str) -> Path:
    """A bundled data file, e.g. `caption_contest/dev.jsonl`."""
    path = bundled_dir("data") / relative
    if not path.is_file():
        raise FileNotFoundError(f"bundled data file {relative} is missing from {path.parent}")
    return path
