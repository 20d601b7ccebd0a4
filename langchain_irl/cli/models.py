"""`langchain-irl models`: the bundled reward models and their held-out metrics."""

from __future__ import annotations

import argparse
from typing import Any

from langchain_irl.cli.options import add_command


def add_parser(commands: Any) -> None:
    models = add_command(
        commands, "models", "list the bundled reward models and their held-out metrics"
    )
    models.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from langchain_irl.bundled import bundled_models
    from langchain_irl.reward_model.card import read_card

    for name, folder in bundled_models().items():
        card = read_card(folder)
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted(card.metrics.items()))
        print(f"{name}  ({card.objective}, {card.encoder.name}, {card.encoder.quantization})")
        print(f"  {card.description}")
        print(f"  held-out: {metrics}")
        for name, values in card.evaluations.items():
            shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(values.items()))
            print(f"  evaluated on {name}: {shown}")
        print(f"  folder: {folder}")
