"""`write_report`: one static HTML page that shows what a reward model learned.

The page opens from a file: no server, no script, no network; its PNG plots lie beside it. It
holds the card in readable form, the calibration and score histograms, the best-of-n curve (when
the data has gold scores), the top and bottom outputs with their words shaded by attribution,
what the reward prefers across the data (phrases, surface features, edit probes) and the
demonstrations it doubts. Readable on a laptop screen and when printed.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from langchain_irl.data.formats import Example
from langchain_irl.evaluation.plots import reward_histogram
from langchain_irl.evaluation.probes import (
    EditEffect,
    FeatureEffect,
    PhraseEffect,
    edit_probes,
    preferred_phrases,
    surface_preferences,
)
from langchain_irl.evaluation.report import EvalReport, ScoredRecords, SuspiciousDemo, evaluate
from langchain_irl.reward_model.attribution import Attribution, shade
from langchain_irl.reward_model.card import DEMOS_FILE, ModelCard
from langchain_irl.reward_model.model import RewardModel

REPORT_FILE = "index.html"
# The figures the page shows, in this order (others stay in card.json).
METRIC_NAMES = {
    "pairwise_accuracy": "pairwise accuracy: a demonstration above a policy sample of its input",
    "auc": "AUC, demonstrations vs policy samples",
    "spearman_gold": "Spearman with the gold score, per input",
    "partial_spearman_gold_given_length": "the same, length held fixed (partial)",
    "best_of_16_gap_closed": "best-of-16: share of the random-to-best gap closed",
    "best_of_16_gap_closed_longest": "best-of-16 picking the longest, for comparison",
    "matching_accuracy": "matching: a demonstration scores highest under its own input (of 5)",
    "supervised_pairwise_accuracy": "supervised ceiling: pairwise accuracy",
    "supervised_spearman_gold": "supervised ceiling: Spearman",
    "int8_reward_spearman": "int8 encoder vs fp32: reward Spearman",
}
SHOWN_EXAMPLES = 5  # outputs shown at each end of the reward ranking


@dataclass(frozen=True)
class ShadedOutput:
    """One output of the top or bottom of the ranking, its words shaded by attribution."""

    prompt: str
    attribution: Attribution
    reward: float


@dataclass(frozen=True)
class ReportContent:
    """Everything the page shows, measured before any HTML is written."""

    title: str
    description: str
    card: ModelCard
    source: str  # what the page was measured on, in words
    measured: dict[str, float]  # the figures measured on the given data (empty without)
    plots: list[str]  # PNG files beside the page, in the order shown
    highest: list[ShadedOutput]
    lowest: list[ShadedOutput]
    attributed: int  # outputs whose attributions were pooled into the phrase tables
    liked: list[PhraseEffect]
    disliked: list[PhraseEffect]
    features: list[FeatureEffect]
    edits: list[EditEffect]
    suspicious: list[SuspiciousDemo]


def write_report(
    model: RewardModel,
    out_dir: str | Path,
    demos: Sequence[Example] | None = None,
    samples: Sequence[Example] | None = None,
    *,
    attributed: int = 40,
    probed: int = 200,
    seed: int = 0,
) -> Path:
    """Write `index.html` and its plots into `out_dir`; return the page's path.

    With `demos` and `samples`, everything is measured on them (as `langchain-irl eval` does);
    without, on the training demonstrations the model folder keeps (fewer figures: no policy
    samples, no gold). `attributed` outputs get attributions for the phrase table; `probed` get
    the edit probes (a fixed, seeded sample)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    content = gather(model, out, demos, samples, attributed=attributed, probed=probed, seed=seed)
    path = out / REPORT_FILE
    path.write_text(render(content), encoding="utf-8")
    return path


def gather(
    model: RewardModel,
    out: Path,
    demos: Sequence[Example] | None,
    samples: Sequence[Example] | None,
    *,
    attributed: int,
    probed: int,
    seed: int,
) -> ReportContent:
    """Measure everything the page shows; write its plots into `out`."""
    rng = np.random.default_rng(seed)
    if demos is not None and samples is not None:
        report = evaluate(model, demos, samples, plots_dir=out)
        source = f"{len(demos):,} demonstrations and {len(samples):,} policy samples given"
    else:
        report = EvalReport({}, None, [], records=_kept_demonstrations(model))
        source = "the training demonstrations the model folder keeps (no data given)"
    records = report.records
    assert records is not None
    chosen = _sample(len(records.texts), attributed, rng)
    attributions = [
        model.attribute(records.prompts[records.groups[i]], records.texts[i])
        for i in tqdm(chosen, desc="attributions", unit="output")
    ]
    liked, disliked = preferred_phrases(attributions)
    probe_rows = _sample(len(records.texts), probed, rng)
    edits = edit_probes(
        model,
        records.prompts,
        records.groups[probe_rows],
        [records.texts[i] for i in probe_rows],
        records.rewards[probe_rows],
        seed=seed,
    )
    order = np.argsort(-records.rewards, kind="stable")
    return ReportContent(
        title=f"{model.name}: what the reward learned",
        description=model.card.description,
        card=model.card,
        source=source,
        measured=report.metrics,
        plots=_calibration_plot(model, out) + [path.name for path in report.plots],
        highest=_shaded(model, records, order[:SHOWN_EXAMPLES]),
        lowest=_shaded(model, records, order[::-1][:SHOWN_EXAMPLES]),
        attributed=len(attributions),
        liked=liked,
        disliked=disliked,
        features=surface_preferences(records.rewards, records.groups, records.texts),
        edits=edits,
        suspicious=report.suspicious,
    )


def _kept_demonstrations(model: RewardModel) -> ScoredRecords:
    if DEMOS_FILE not in model.card.files:
        raise ValueError(
            f"{model.folder} keeps no demonstrations ({DEMOS_FILE}): give --demos and --samples"
        )
    demos = json.loads((model.folder / DEMOS_FILE).read_text(encoding="utf-8"))
    prompts = sorted({d["input"] for d in demos})
    index = {prompt: i for i, prompt in enumerate(prompts)}
    groups = np.array([index[d["input"]] for d in demos])
    texts = [d["output"] for d in demos]
    rewards = model.score_by_input(prompts, groups, texts, progress=True)
    ones = np.ones(len(texts), dtype=bool)
    return ScoredRecords(prompts, groups, texts, rewards, ones, np.full(len(texts), np.nan))


def _sample(size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(size, size=min(size, count), replace=False))


def _calibration_plot(model: RewardModel, out: Path) -> list[str]:
    """The card's held-out rewards as a histogram in `out` (none without policy samples)."""
    calibration = model.card.calibration
    if calibration is None or not calibration.sample_scores:
        return []
    reward_histogram(
        np.array(calibration.demo_scores),
        np.array(calibration.sample_scores),
        out / "calibration.png",
        f"{model.name}: held-out rewards when it was trained",
    )
    return ["calibration.png"]


def _shaded(model: RewardModel, records: ScoredRecords, rows: np.ndarray) -> list[ShadedOutput]:
    shaded = []
    for i in rows:
        prompt = records.prompts[records.groups[i]]
        attribution = model.attribute(prompt, records.texts[i])
        shaded.append(ShadedOutput(prompt, attribution, float(records.rewards[i])))
    return shaded


# -- rendering: pure formatting of a `ReportContent` --------------------------------------------


def _card_section(content: ReportContent) -> str:
    card = content.card
    encoder = card.encoder
    hidden = list(card.head.hidden) or "none (linear)"
    rows = [
        ("architecture", card.head.kind),
        ("encoder", f"{encoder.name}, {encoder.dim} dimensions, {encoder.pooling} pooling"),
        ("quantization", encoder.quantization),
        ("source", encoder.source),
        ("head", f"hidden layers {hidden}; features {', '.join(card.head.features)}"),
        ("objective", card.objective),
        ("reads", f"{card.max_tokens} tokens x {card.candidate_chunks} window(s) per output"),
        ("prompt", f"rendered as {card.prompt_format}, keeping its {card.prompt_keeps}"),
        ("training data", _flat(card.training_data)),
        ("files", ", ".join(sorted(card.files))),
        ("this page measured on", content.source),
    ]
    sources = {"held out at training": card.metrics, **card.evaluations}
    if content.measured:
        sources["this page's data"] = content.measured
    names = list(METRIC_NAMES) + sorted(
        {k for metrics in sources.values() for k in metrics if k.startswith("adversarial_")}
    )
    figures = [
        [METRIC_NAMES.get(name, name)]
        + [f"{m[name]:.3f}" if name in m else "" for m in sources.values()]
        for name in names
        if any(name in m for m in sources.values())
    ]
    return "\n".join(
        [
            _table(["", ""], rows, show_header=False),
            "<h3>Held-out figures</h3>",
            _table(["figure", *sources], figures),
        ]
    )


def _scores_section(content: ReportContent) -> str:
    figures = [
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(name[:-4])}"></figure>'
        for name in content.plots
    ]
    note = "" if figures else "<p>No plots: the model has no calibration and no data was given.</p>"
    return "\n".join([note, *figures])


def _examples_section(content: ReportContent) -> str:
    parts = [
        f'<p>Words shaded <span class="attr" style="{shade(1.0, 0.5)}">green</span> raise the '
        f'reward, <span class="attr" style="{shade(-1.0, 0.5)}">red</span> lower it '
        "(leave-one-out: the reward without that word; hover for the value).</p>",
    ]
    for title, outputs in (
        ("Highest rewards", content.highest),
        ("Lowest rewards", content.lowest),
    ):
        parts.append(f"<h3>{title}</h3>")
        parts += [
            '<div class="example"><p class="input">'
            f"{html.escape(_clip(shown.prompt))}</p>"
            f'<p class="output">{shown.attribution.to_html()}</p>'
            f'<p class="reward">reward {shown.reward:+.3f}</p></div>'
            for shown in outputs
        ]
    return "\n".join(parts)


def _preferences_section(content: ReportContent) -> str:
    def phrases(effects: Sequence[PhraseEffect]) -> str:
        rows = [(e.phrase, f"{e.mean_contribution:+.3f}", str(e.count)) for e in effects]
        return _table(["word", "mean contribution", "seen"], rows) if rows else "<p>none</p>"

    feature_rows = [(f.feature, f"{f.spearman:+.3f}", f"{f.share:.0%}") for f in content.features]
    edit_rows = [
        (e.edit, f"{e.mean_change:+.3f}", f"{e.raised:.0%}", str(e.outputs)) for e in content.edits
    ]
    return "\n".join(
        [
            f"<p>Attributions pooled over {content.attributed} outputs (words seen three times or "
            "more).</p>",
            '<div class="columns"><div><h3>Words it rewards</h3>',
            phrases(content.liked),
            "</div><div><h3>Words it penalises</h3>",
            phrases(content.disliked),
            "</div></div>",
            "<h3>Surface features</h3>",
            "<p>Spearman correlation with the reward within an input, averaged over inputs.</p>",
            _table(["feature", "Spearman", "outputs with it"], feature_rows),
            "<h3>Edit probes</h3>",
            "<p>How the reward moves when each output is edited. An edit that raises the reward "
            "of many outputs (repetition, shuffled words) is a hack best-of-n will find.</p>",
            _table(["edit", "mean change", "raised", "outputs"], edit_rows),
        ]
    )


def _suspicious_section(content: ReportContent) -> str:
    if not content.suspicious:
        return (
            "<p>None: every demonstration scores above most of its own input's policy samples"
            " (or no policy samples were given).</p>"
        )
    rows = [
        (_clip(d.input, 120), _clip(d.output, 200), f"{d.reward:+.3f}", f"{d.beaten_by:.0%}")
        for d in content.suspicious[:15]
    ]
    return "\n".join(
        [
            "<p>Demonstrations the reward scores below most policy samples of their own input: "
            "worth a look before retraining.</p>",
            _table(["input", "demonstration", "reward", "samples above it"], rows),
        ]
    )


@dataclass(frozen=True)
class Section:
    heading: str
    body: Callable[[ReportContent], str]


# The page's sections, in order: their headings and their bodies come from here only.
SECTIONS = (
    Section("Model card", _card_section),
    Section("Scores", _scores_section),
    Section("Top and bottom outputs", _examples_section),
    Section("What it prefers", _preferences_section),
    Section("Suspicious demonstrations", _suspicious_section),
)
HEADINGS = tuple(section.heading for section in SECTIONS)


def render(content: ReportContent) -> str:
    """The page's HTML (formatting only: everything shown is in `content`)."""
    sections = [
        f"<h2>{html.escape(section.heading)}</h2>\n{section.body(content)}" for section in SECTIONS
    ]
    return _page(content.title, content.description, sections)


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, show_header: bool = True
) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    thead = f"<thead><tr>{head}</tr></thead>" if show_header else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _flat(data: dict, prefix: str = "") -> str:
    items = []
    for key, value in sorted(data.items()):
        if isinstance(value, dict):
            items.append(_flat(value, f"{prefix}{key}."))
        elif key != "sha256":
            items.append(f"{prefix}{key}: {value}")
    return "; ".join(items)


def _clip(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       max-width: 62rem; margin: 2rem auto; padding: 0 1.2rem; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { border-bottom: 1px solid #d0d0d5; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; width: 100%; }
th, td { text-align: left; padding: .25rem .6rem; border-bottom: 1px solid #e5e5ea;
         vertical-align: top; overflow-wrap: anywhere; }
th { background: #f3f3f6; }
/* a row's label breaks between words only: "anywhere" let narrow label columns split them */
th:first-child, td:first-child { overflow-wrap: normal; }
figure { margin: .8rem 0; }
img { max-width: 100%; height: auto; }
.example { border: 1px solid #e0e0e6; border-radius: 6px; padding: .4rem .8rem; margin: .6rem 0; }
.input { color: #55555c; font-size: .9rem; margin: .2rem 0; }
.output { margin: .3rem 0; white-space: pre-wrap; }
.reward { color: #55555c; font-size: .85rem; margin: .2rem 0; }
.attr { border-radius: 3px; padding: 0 1px; }
.columns { display: flex; gap: 2rem; flex-wrap: wrap; }
.columns > div { flex: 1 1 20rem; }
@media print {
  body { max-width: none; margin: 0; font-size: 11pt; }
  h2 { break-after: avoid; }
  .example, figure, tr { break-inside: avoid; }
  .attr { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def _page(title: str, description: str, sections: Sequence[str]) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(description)}</p>
{"".join(f"<section>{section}</section>" for section in sections)}
</body>
</html>
"""
