"""The learned reward as a DSPy metric: DSPy's optimizers can search prompts against it.

    import dspy
    from langchain_irl.dspy import RewardMetric

    metric = RewardMetric("caption-humor", input_field="description", output_field="caption")
    optimizer = dspy.MIPROv2(metric=metric, auto="light")
    optimized = optimizer.compile(program, trainset=trainset)

Called as MIPROv2, BootstrapFewShot and `dspy.Evaluate` call a metric, `metric(example, pred,
trace=None)`, it returns a float: the prediction's reward as a percentile of the held-out
demonstrations, from 0 to 1 (the raw reward for a model without calibration). While
bootstrapping demonstrations (`trace` is given) it returns whether that percentile reaches
`threshold`, since BootstrapFewShot keeps a trace whose metric is truthy. Called as GEPA calls a
metric, with five arguments `(gold, pred, trace, pred_name, pred_trace)`, it returns
`dspy.Prediction(score=..., feedback=...)`: the percentile in words and the nearest
demonstrations that score better, the text GEPA reflects on. Needs the `[dspy]` extra.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_irl.extras import require
from langchain_irl.reward_model.model import RewardModel

_UNSET: Any = object()


class RewardMetric:
    """A DSPy metric that scores a prediction's output for its example's input with the reward."""

    def __init__(
        self,
        reward_model: RewardModel | str | Path,
        *,
        input_field: str | Callable[[Any], str] = "input",
        output_field: str = "output",
        threshold: float = 50.0,
        neighbours: int = 3,
    ) -> None:
        """`input_field`: the example's field that holds the task input (or a function of the
        example that renders it); `output_field`: the prediction's field that holds the output;
        `threshold`: the percentile a bootstrapped demonstration must reach; `neighbours`: how
        many nearby demonstrations GEPA's feedback considers."""
        self.reward_model = RewardModel.of(reward_model)
        self.input_field, self.output_field = input_field, output_field
        self.threshold, self.neighbours = threshold, neighbours

    def __call__(
        self,
        example: Any,
        pred: Any,
        trace: Any = None,
        pred_name: Any = _UNSET,
        pred_trace: Any = _UNSET,
    ) -> Any:
        prompt = self._input(example)
        output = str(getattr(pred, self.output_field, None) or pred[self.output_field])
        if pred_name is not _UNSET or pred_trace is not _UNSET:  # GEPA: score and feedback
            return self._with_feedback(prompt, output)
        score = self._score(prompt, output)
        if trace is not None:
            return bool(score * 100 >= self.threshold)
        return score

    def _score(self, prompt: str, output: str) -> float:
        reward = float(self.reward_model.score(prompt, [output])[0])
        if self.reward_model.card.calibration is None:
            return reward
        return float(self.reward_model.percentile(reward)) / 100

    def _with_feedback(self, prompt: str, output: str) -> Any:
        dspy = require("dspy", "RewardMetric", "dspy")
        explanation = self.reward_model.explain(prompt, output, k=self.neighbours)
        score = self._score(prompt, output)
        if explanation.percentile is None:
            lines = [f"The learned reward scores this output {explanation.score:+.3f}."]
        else:
            lines = [
                f"The learned reward places this output at the {explanation.percentile:.0f}th "
                "percentile of the demonstrations it learned from."
            ]
        better = [n for n in explanation.neighbours if n.reward > explanation.score]
        if better:
            lines.append("Similar demonstrations that score better for this input:")
            lines += [f"- {n.output!r} (reward {n.reward:+.3f})" for n in better]
        else:
            lines.append("No similar demonstration scores better for this input.")
        return dspy.Prediction(score=score, feedback="\n".join(lines))

    def _input(self, example: Any) -> str:
        if callable(self.input_field):
            return str(self.input_field(example))
        value = getattr(example, self.input_field, None)
        return str(value if value is not None else example[self.input_field])
