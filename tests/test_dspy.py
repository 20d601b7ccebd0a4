"""The reward as a DSPy metric, run by one of DSPy's own optimizers with DSPy's test LM."""

from __future__ import annotations

import pytest

from langchain_irl import RewardModel

dspy = pytest.importorskip("dspy", reason="the [dspy] extra is not installed")

from langchain_irl.dspy import RewardMetric  # noqa: E402

CARTOON = "A well-dressed man complaining about his fuming soup to a server"


def test_bootstrap_few_shot_compiles_with_the_metric(model: RewardModel) -> None:
    metric = RewardMetric(model, input_field="cartoon", output_field="caption", threshold=0)
    calls: list[float] = []

    def counted(example: dspy.Example, pred: dspy.Prediction, trace: object = None) -> object:
        value = metric(example, pred, trace)
        calls.append(float(value))
        return value

    trainset = [
        dspy.Example(
            cartoon=f"{CARTOON} ({i})", caption="Waiter, I asked for it well done."
        ).with_inputs("cartoon")
        for i in range(4)
    ]
    lm = dspy.utils.DummyLM([{"caption": "Could Mother Nature have her own bowl?"}] * 20)
    student = dspy.Predict("cartoon -> caption")
    with dspy.context(lm=lm):
        compiled = dspy.BootstrapFewShot(metric=counted, max_bootstrapped_demos=2).compile(
            student, trainset=trainset
        )
    assert calls and len(compiled.demos) >= 1  # DSPy kept the demonstrations the metric passed


def test_scores_are_percentiles_and_bootstrapping_gets_a_verdict(model: RewardModel) -> None:
    metric = RewardMetric(model, input_field="cartoon", output_field="caption", threshold=50)
    example = dspy.Example(cartoon=CARTOON).with_inputs("cartoon")
    pred = dspy.Prediction(caption="Could Mother Nature have her own bowl?")
    score = metric(example, pred)
    reward = float(model.score(CARTOON, [pred.caption])[0])
    assert score == pytest.approx(float(model.percentile(reward)) / 100)
    assert metric(example, pred, trace=[]) is (score * 100 >= 50)


def test_gepa_gets_a_score_with_feedback(model: RewardModel) -> None:
    metric = RewardMetric(model, input_field="cartoon", output_field="caption")
    example = dspy.Example(cartoon=CARTOON).with_inputs("cartoon")
    pred = dspy.Prediction(caption="Soup.")
    result = metric(example, pred, None, "predict", None)  # GEPA's five arguments
    assert isinstance(result, dspy.Prediction)
    assert result.score == pytest.approx(metric(example, pred))
    assert "percentile" in result.feedback
