"""The best-of-n engine: options, the candidate pool, selection rules, usage, and the runners."""

from langchain_irl.engine.errors import is_retryable
from langchain_irl.engine.limit import ConcurrencyLimit
from langchain_irl.engine.options import BestOfNOptions, SpeculativeRejection
from langchain_irl.engine.pool import CandidatePool, Choice
from langchain_irl.engine.runner import Sampler, arun, run
from langchain_irl.engine.selection import Selection, choose

__all__ = [
    "BestOfNOptions",
    "CandidatePool",
    "Choice",
    "ConcurrencyLimit",
    "Sampler",
    "Selection",
    "SpeculativeRejection",
    "arun",
    "choose",
    "is_retryable",
    "run",
]
