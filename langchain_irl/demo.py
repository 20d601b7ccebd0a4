"""The offline demo: the bundled caption reward model ranks real entries for unseen cartoons.

The base "policy" here is the crowd of contest entrants: candidates are real submitted captions,
drawn uniformly from the stored sample of each contest (its top-, middle- and bottom-rated 150
entries; so a draw is a stratified sample of the crowd, richer in good and bad captions than a
random entrant). Because they are real entries, every candidate has a human rating to check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from langchain_irl.reward_model import RewardModel

# Contests left out of the bundled model's training data (see models/README.md).
DEMO_CONTESTS = (641, 645, 648, 650, 654)
BUNDLED_MODEL = Path("models/caption-humor")
BUNDLED_CAPTIONS = Path("data/caption_contest/dev.jsonl")


@dataclass(frozen=True)
class Contest:
    number: int
    description: str
    captions: list[str]
    ratings: np.ndarray  # human mean rating, 1 (not funny) to 3 (funny)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(len(self.captions), size=n, replace=False)


def bundled_path(relative: Path) -> Path:
    """A bundled file: under the working directory (a clone), else beside the installed package."""
    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        if (root / relative).exists():
            return root / relative
    raise FileNotFoundError(f"{relative} not found; run from the root of a langchain-irl clone")


def load_contests(path: Path, numbers: tuple[int, ...] = DEMO_CONTESTS) -> list[Contest]:
    contests = []
    for line in path.open(encoding="utf-8"):
        record = json.loads(line)
        if record["contest"] not in numbers:
            continue
        captions = record["captions"]
        contests.append(
            Contest(
                number=record["contest"],
                description=record["description"],
                captions=[c["text"] for c in captions],
                ratings=np.array([c["mean"] for c in captions]),
            )
        )
    return contests


def run_demo(
    model_dir: Path | None = None, data_file: Path | None = None, n: int = 16, seed: int = 0
) -> None:
    model = RewardModel.load(model_dir or bundled_path(BUNDLED_MODEL))
    contests = load_contests(data_file or bundled_path(BUNDLED_CAPTIONS))
    rng = np.random.default_rng(seed)
    print(f"reward model: {model.name} ({model.card.objective}, encoder {model.card.encoder.name})")
    print(f"base policy: the crowd of real contest entrants; {n} candidates per cartoon\n")
    picked, average = [], []
    for contest in contests:
        drawn = contest.draw(n, rng)
        candidates = [contest.captions[i] for i in drawn]
        rewards = model.score(contest.description, candidates)
        order = np.argsort(-rewards)
        print(f"contest {contest.number}: {contest.description}")
        for rank, index in enumerate(order[:3], start=1):
            rating = contest.ratings[drawn[index]]
            print(
                f"  {rank}. reward {rewards[index]:+.2f}  human {rating:.2f}  {candidates[index]}"
            )
        picked.append(contest.ratings[drawn[order[0]]])
        average.append(contest.ratings[drawn].mean())
        print(
            f"  pick rated {picked[-1]:.2f} by humans; the {n} candidates average {average[-1]:.2f}"
        )
    print(
        f"over {len(contests)} unseen cartoons: reward's pick {np.mean(picked):.3f} vs "
        f"average entry {np.mean(average):.3f} (human mean rating, 1-3)"
    )
