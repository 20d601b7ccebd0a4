"""Data: the JSONL formats, converters from public datasets, and collecting policy samples."""

from langchain_irl.data.formats import DataFileError, Example, Pair, read_examples, read_pairs
from langchain_irl.data.jsonl import write_jsonl

__all__ = ["DataFileError", "Example", "Pair", "read_examples", "read_pairs", "write_jsonl"]
