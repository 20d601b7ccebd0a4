"""The reward head as an ONNX graph, built from numpy weights (no torch needed for this part).

reward = MLP(phi): ReLU between layers, none after the last. A bi-encoder's phi is [e_y, e_x * e_y,
features]; a cross-encoder's is [e_xy, features], e_xy the embedding of (x, y) read together. A
head of one layer is linear, as the closed-form feature-matching reward is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from langchain_irl.reward_model.card import Architecture

Layer = tuple[np.ndarray, np.ndarray]  # weight (in, out), bias (out,)


def head_features(
    prompt_embedding: np.ndarray | None, candidate_embedding: np.ndarray, features: np.ndarray
) -> np.ndarray:
    """phi(x, y) in numpy, exactly as the graph computes it (for training and checks).

    `prompt_embedding` None: a cross-encoder's, whose `candidate_embedding` read x with y."""
    if prompt_embedding is None:
        return np.concatenate([candidate_embedding, features], axis=1).astype(np.float32)
    return np.concatenate(
        [candidate_embedding, prompt_embedding * candidate_embedding, features], axis=1
    ).astype(np.float32)


def head_forward(layers: Sequence[Layer], phi: np.ndarray) -> np.ndarray:
    """The head in numpy: the reference the exported graph is checked against."""
    hidden = phi
    for index, (weight, bias) in enumerate(layers):
        hidden = hidden @ weight + bias
        if index < len(layers) - 1:
            hidden = np.maximum(hidden, 0.0)
    return hidden[:, 0]


def build_head(
    members: Sequence[Sequence[Layer]],
    dim: int,
    n_features: int,
    kind: Architecture = "bi-encoder",
) -> onnx.ModelProto:
    """An ONNX graph -> reward (n,). A bi-encoder's inputs: prompt_embedding (1|n, dim),
    candidate_embedding (n, dim), candidate_features (n, f); a cross-encoder's: pair_embedding
    (n, dim), candidate_features (n, f).

    `members`: the MLPs of an ensemble over the same phi. One member gives `reward` alone;
    several give `member_rewards` (n, members) too, and `reward` is their mean."""
    cross = kind == "cross-encoder"
    expected = (1 if cross else 2) * dim + n_features
    for layers in members:
        if layers[0][0].shape[0] != expected or layers[-1][0].shape[1] != 1:
            raise ValueError(f"head layers must map {expected} inputs to 1 output")
    features = helper.make_tensor_value_info(
        "candidate_features", TensorProto.FLOAT, ["n", n_features]
    )
    if cross:
        nodes = [
            helper.make_node("Concat", ["pair_embedding", "candidate_features"], ["h0"], axis=1)
        ]
        inputs = [
            helper.make_tensor_value_info("pair_embedding", TensorProto.FLOAT, ["n", dim]),
            features,
        ]
    else:
        nodes = [
            helper.make_node("Mul", ["prompt_embedding", "candidate_embedding"], ["interaction"]),
            helper.make_node(
                "Concat",
                ["candidate_embedding", "interaction", "candidate_features"],
                ["h0"],
                axis=1,
            ),
        ]
        inputs = [
            helper.make_tensor_value_info("prompt_embedding", TensorProto.FLOAT, ["p", dim]),
            helper.make_tensor_value_info("candidate_embedding", TensorProto.FLOAT, ["n", dim]),
            features,
        ]
    initializers = []
    # One member keeps the names it always had, so that its graph stays byte-identical.
    prefixes = [""] if len(members) == 1 else [f"m{j}_" for j in range(len(members))]
    columns = []
    for prefix, layers in zip(prefixes, members, strict=True):
        current = "h0"
        for index, (weight, bias) in enumerate(layers):
            w_name, b_name, out = f"{prefix}w{index}", f"{prefix}b{index}", f"{prefix}h{index + 1}"
            initializers += [
                numpy_helper.from_array(np.asarray(weight, np.float32), w_name),
                numpy_helper.from_array(np.asarray(bias, np.float32).reshape(-1), b_name),
            ]
            nodes.append(helper.make_node("Gemm", [current, w_name, b_name], [out]))
            if index < len(layers) - 1:
                nodes.append(helper.make_node("Relu", [out], [f"{out}r"]))
                out = f"{out}r"
            current = out
        columns.append(current)
    outputs = [helper.make_tensor_value_info("reward", TensorProto.FLOAT, ["n"])]
    if len(members) == 1:
        initializers.append(numpy_helper.from_array(np.array([1], np.int64), "squeeze_axes"))
        nodes.append(helper.make_node("Squeeze", [columns[0], "squeeze_axes"], ["reward"]))
    else:
        nodes += [
            helper.make_node("Concat", columns, ["member_rewards"], axis=1),
            helper.make_node("ReduceMean", ["member_rewards"], ["reward"], axes=[1], keepdims=0),
        ]
        outputs.append(
            helper.make_tensor_value_info("member_rewards", TensorProto.FLOAT, ["n", len(members)])
        )
    graph = helper.make_graph(
        nodes, "reward_head", inputs=inputs, outputs=outputs, initializer=initializers
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="langchain-irl"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
