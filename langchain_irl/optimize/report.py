"""`OptimizationReport`: what `optimize_prompt` chose, why, and what it cost.

Its dict form (`to_dict`) is what `OptimizationResult.save` writes beside the prompt; it keeps the
keys of the dict report of earlier versions, so files saved before read back with `from_dict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

REWARD_READS = "the task input as the baseline prompt renders it"


@dataclass(frozen=True)
class CandidateReport:
    """One candidate of the search: what it changes on the baseline, and how it did."""

    name: str
    instruction: str | None
    """The system instruction (None: the baseline's own)."""
    shots: int
    """Demonstrations shown before the task."""
    per_input: bool
    """Demonstrations chosen for each input by the reward, else a fixed set."""
    search_inputs: int
    """Search inputs it answered (and the reward scored)."""
    mean_reward: float
    """Its mean reward on those inputs (-inf: none)."""
    dropped_in_round: int | None
    """The racing round it was dropped in (None: never dropped)."""


@dataclass(frozen=True)
class ValidationReport:
    """The final check: the search's leader and the baseline on inputs the search never saw."""

    inputs: int
    baseline_mean_reward: float
    leader_mean_reward: float
    paired_gain: float
    """The leader's mean paired gain over the baseline."""
    gain_95_interval: tuple[float, float]


@dataclass(frozen=True)
class OptimizationReport:
    """What `optimize_prompt` returned and why; `str(report)` reads as a short text."""

    verdict: str
    """One sentence: the prompt returned and the reason."""
    returned: str
    """The name of the candidate returned ("baseline" or the leader)."""
    search_leader: str
    """The candidate that scored best in the search."""
    reward_model: str
    validation: ValidationReport
    calls_used: int
    """Calls to the model and the proposer, resumed ones included."""
    max_calls: int
    tokens: int
    """Tokens the calls of this run reported (resumed calls are not counted again)."""
    candidates: tuple[CandidateReport, ...]
    """Every candidate tried, in the order they were tried."""
    reward_reads: str = REWARD_READS
    """What the reward scored of each input."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form saved with the prompt (the keys of the former dict report)."""
        validation = asdict(self.validation)
        validation["gain_95_interval"] = list(self.validation.gain_95_interval)
        return {
            "verdict": self.verdict,
            "returned": self.returned,
            "search_leader": self.search_leader,
            "reward_model": self.reward_model,
            "reward_reads": self.reward_reads,
            "validation": validation,
            "calls": {"used": self.calls_used, "max_calls": self.max_calls},
            "tokens": self.tokens,
            "candidates": [asdict(candidate) for candidate in self.candidates],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OptimizationReport:
        """The report back from its JSON form (`to_dict`)."""
        validation = dict(data["validation"])
        low, high = validation.pop("gain_95_interval")
        return cls(
            verdict=data["verdict"],
            returned=data["returned"],
            search_leader=data["search_leader"],
            reward_model=data["reward_model"],
            reward_reads=data.get("reward_reads", REWARD_READS),
            validation=ValidationReport(**validation, gain_95_interval=(low, high)),
            calls_used=data["calls"]["used"],
            max_calls=data["calls"]["max_calls"],
            tokens=data["tokens"],
            candidates=tuple(CandidateReport(**c) for c in data["candidates"]),
        )

    def __getitem__(self, key: str) -> Any:
        """The dict form's entries (`report["verdict"]`), for code written for the dict report."""
        return self.to_dict()[key]

    def summary(self) -> str:
        """The verdict, the final check's figures and the calls spent, in three lines."""
        check = self.validation
        low, high = check.gain_95_interval
        return "\n".join(
            [
                self.verdict,
                f"on {check.inputs} unseen inputs: mean reward "
                f"{check.baseline_mean_reward:+.3f} (baseline) vs "
                f"{check.leader_mean_reward:+.3f} ({self.search_leader}), paired gain "
                f"{check.paired_gain:+.3f} [{low:+.3f}, {high:+.3f}]",
                f"{self.calls_used} of {self.max_calls} calls, {self.tokens} tokens",
            ]
        )

    def __str__(self) -> str:
        rows = [f"{'candidate':32} {'inputs':>6} {'mean reward':>11}  dropped in round"]
        for c in self.candidates:
            dropped = "-" if c.dropped_in_round is None else str(c.dropped_in_round)
            rows.append(f"{c.name:32} {c.search_inputs:>6} {c.mean_reward:>+11.3f}  {dropped}")
        return f"{self.summary()}\nthe search (reward model {self.reward_model}):\n" + "\n".join(
            rows
        )
