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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from langchain_irl.data.formats import Example
from langchain_irl.evaluation.plots import reward_histogram
from langchain_irl.evaluation.probes import (
    edit_probes,
    preferred_phrases,
    surface_preferences,
)
from langchain_irl.evaluation.report import EvalReport, ScoredRecords, evaluate
from langchain_irl.reward_model.card import DEMOS_FILE, ModelCard
from langchain_irl.reward_model.model import RewardModel

REPORT_FILE = "index.html"
HEADINGS = (
    "Model card",
    "Scores",
    "Top and bottom outputs",
    "What it prefers",
    "Suspicious demonstrations",
)
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
    rng = np.random.default_rng(seed)
    if demos is not None and samples is not None:
        report = evaluate(model, demos, samples, plots_dir=out)
        source = f"{len(demos):,} demonstrations and {len(samples):,} policy samples given"
    else:
        report = EvalReport({}, None, [], records=_kept_demonstrations(model))
        source = "the training demonstrations the model folder keeps (no data given)"
    records = report.records
    assert records is not None
    plots = [path.name for path in report.plots]
    calibration = model.card.calibration
    if calibration is not None and calibration.sample_scores:
        reward_histogram(
            np.array(calibration.demo_scores),
            np.array(calibration.sample_scores),
            out / "calibration.png",
            f"{model.name}: held-out rewards when it was trained",
        )
        plots.insert(0, "calibration.png")
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
    features = surface_preferences(records.rewards, records.groups, records.texts)
    sections = [
        _card_section(model.card, source, report.metrics),
        _scores_section(plots),
        _examples_section(model, records),
        _preferences_section(liked, disliked, features, edits, len(attributions)),
        _suspicious_section(report),
    ]
    page = _page(f"{model.name}: what the reward learned", model.card.description, sections)
    path = out / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path


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


def _card_section(card: ModelCard, source: str, measured: dict[str, float]) -> str:
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
        ("this page measured on", source),
    ]
    sources = {"held out at training": card.metrics, **card.evaluations}
    if measured:
        sources["this page's data"] = measured
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
            "<h2>Model card</h2>",
            _table(["", ""], rows, show_header=False),
            "<h3>Held-out figures</h3>",
            _table(["figure", *sources], figures),
        ]
    )


def _scores_section(plots: Sequence[str]) -> str:
    figures = [
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(name[:-4])}"></figure>'
        for name in plots
    ]
    note = "" if figures else "<p>No plots: the model has no calibration and no data was given.</p>"
    return "\n".join(["<h2>Scores</h2>", note, *figures])


def _examples_section(model: RewardModel, records: ScoredRecords) -> str:
    order = np.argsort(-records.rewards, kind="stable")
    parts = [
        "<h2>Top and bottom outputs</h2>",
        '<p>Words shaded <span class="attr" style="background: rgba(46, 160, 67, 0.5)">green'
        '</span> raise the reward, <span class="attr" style="background: rgba(214, 51, 51, 0.5)">'
        "red</span> lower it (leave-one-out: the reward without that word; hover for the value)."
        "</p>",
    ]
    for title, picks in (("Highest rewards", order[:5]), ("Lowest rewards", order[::-1][:5])):
        parts.append(f"<h3>{title}</h3>")
        for i in picks:
            prompt = records.prompts[records.groups[i]]
            attribution = model.attribute(prompt, records.texts[i])
            parts.append(
                '<div class="example"><p class="input">'
                f"{html.escape(_clip(prompt))}</p>"
                f'<p class="output">{attribution.to_html()}</p>'
                f'<p class="reward">reward {records.rewards[i]:+.3f}</p></div>'
            )
    return "\n".join(parts)


def _preferences_section(
    liked: Sequence, disliked: Sequence, features: Sequence, edits: Sequence, attributed: int
) -> str:
    def phrases(effects: Sequence) -> str:
        rows = [(e.phrase, f"{e.mean_contribution:+.3f}", str(e.count)) for e in effects]
        return _table(["word", "mean contribution", "seen"], rows) if rows else "<p>none</p>"

    feature_rows = [(f.feature, f"{f.spearman:+.3f}", f"{f.share:.0%}") for f in features]
    edit_rows = [
        (e.edit, f"{e.mean_change:+.3f}", f"{e.raised:.0%}", str(e.outputs)) for e in edits
    ]
    return "\n".join(
        [
            "<h2>What it prefers</h2>",
            f"<p>Attributions pooled over {attributed} outputs (words seen three times or "
            "more).</p>",
            '<div class="columns"><div><h3>Words it rewards</h3>',
            phrases(liked),
            "</div><div><h3>Words it penalises</h3>",
            phrases(disliked),
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


def _suspicious_section(report: EvalReport) -> str:
    parts = ["<h2>Suspicious demonstrations</h2>"]
    if not report.suspicious:
        parts.append(
            "<p>None: every demonstration scores above most of its own input's policy samples"
            " (or no policy samples were given).</p>"
        )
        return "\n".join(parts)
    parts.append(
        "<p>Demonstrations the reward scores below most policy samples of their own input: "
        "worth a look before retraining.</p>"
    )
    rows = [
        (_clip(d.input, 120), _clip(d.output, 200), f"{d.reward:+.3f}", f"{d.beaten_by:.0%}")
        for d in report.suspicious[:15]
    ]
    parts.append(_table(["input", "demonstration", "reward", "samples above it"], rows))
    return "\n".join(parts)


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
