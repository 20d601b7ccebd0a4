"""The `langchain-irl` command line and its offline demo."""

from langchain_irl.cli.main import main

__all__ = ["main"]
