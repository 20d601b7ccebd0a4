"""Prompt optimization with the learned reward: choose the instruction and demonstrations once,
so that every later call costs one call instead of n (see `search.optimize_prompt`)."""

from langchain_irl.optimize.candidates import Candidate
from langchain_irl.optimize.report import OptimizationReport
from langchain_irl.optimize.search import BudgetExhausted, OptimizationResult, optimize_prompt
from langchain_irl.optimize.storage import load_prompt, load_report, save_prompt

__all__ = [
    "BudgetExhausted",
    "Candidate",
    "OptimizationReport",
    "OptimizationResult",
    "load_prompt",
    "load_report",
    "optimize_prompt",
    "save_prompt",
]
