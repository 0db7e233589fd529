"""ONNX export of a TradingModel.

Default path (no torch): the graph is built with `onnx.helper` from the trained numpy
weights. With torch installed, :func:`export_torch_onnx` exports the same network through
`torch.onnx.export` instead; with the `xgboost` extra, :func:`export_xgboost_onnx` exports a
gradient-boosted classifier trained on the same features through onnxmltools. All produce
input ``features`` float32 [batch, 7], output
``signal_probabilities`` float32 [batch, 3] (softmax over buy/hold/sell), a dynamic batch
dimension, and metadata ``tradewire.feature_names`` / ``tradewire.classes`` (JSON lists),
which signal-bridge checks before inference.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Final

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tradewire import features as tf
from tradewire.ml.data import CLASSES, LabelledData, labelled_dataset
from tradewire.ml.model import TradingModel

INPUT_NAME: Final = "features"
OUTPUT_NAME: Final = "signal_probabilities"
OPSET: Final = 17
IR_VERSION: Final = 8  # readable by onnxruntime >= 1.14
META_FEATURES: Final = "tradewire.feature_names"
META_CLASSES: Final = "tradewire.classes"


def _metadata(model: TradingModel) -> dict[str, str]:
    return _metadata_for(model.feature_names)


def _metadata_for(feature_names: tuple[str, ...]) -> dict[str, str]:
    return {
        META_FEATURES: json.dumps(list(feature_names)),
        META_CLASSES: json.dumps(list(CLASSES)),
    }


def to_onnx(model: TradingModel) -> onnx.ModelProto:
    """Normalize -> (Gemm -> Relu) x2 -> Gemm -> Softmax. Dropout is identity at inference."""
    f32 = np.float32
    inits = [
        numpy_helper.from_array(model.mean.astype(f32), "input_mean"),
        numpy_helper.from_array(model.scale.astype(f32), "input_scale"),
    ]
    nodes = [
        helper.make_node("Sub", [INPUT_NAME, "input_mean"], ["centered"]),
        helper.make_node("Div", ["centered", "input_scale"], ["h0"]),
    ]
    last = len(model.weights) - 1
    for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
        inits.append(numpy_helper.from_array(w.astype(f32), f"w{i}"))
        inits.append(numpy_helper.from_array(b.astype(f32), f"b{i}"))
        out = f"z{i}" if i < last else "logits"
        nodes.append(helper.make_node("Gemm", [f"h{i}", f"w{i}", f"b{i}"], [out]))
        if i < last:
            nodes.append(helper.make_node("Relu", [out], [f"h{i + 1}"]))
    nodes.append(helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=-1))
    n_in, n_out = model.weights[0].shape[0], model.weights[-1].shape[1]
    graph = helper.make_graph(
        nodes,
        "tradewire_trading_model",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch_size", n_in])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch_size", n_out])],
        initializer=inits,
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="tradewire.ml",
    )
    helper.set_model_props(proto, _metadata(model))
    onnx.checker.check_model(proto)
    return proto


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory + fsync + rename: readers see the old
    file or the new one, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def export_onnx(model: TradingModel, path: str | os.PathLike[str]) -> Path:
    """Export with onnx.helper (no torch needed); atomic write."""
    out = Path(path)
    atomic_write_bytes(out, to_onnx(model).SerializeToString())
    return out


def export_torch_onnx(model: TradingModel, path: str | os.PathLike[str]) -> Path:
    """Export the same network through torch.onnx (optional extra `torch`)."""
    torch: Any = importlib.import_module("torch")  # optional extra, untyped here

    class _Net(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            layers: list[Any] = []
            for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
                lin = torch.nn.Linear(w.shape[0], w.shape[1])
                lin.weight.data = torch.tensor(w.T, dtype=torch.float32)
                lin.bias.data = torch.tensor(b, dtype=torch.float32)
                layers.append(lin)
                if i < len(model.weights) - 1:
                    layers += [torch.nn.ReLU(), torch.nn.Dropout(0.2)]
            self.network = torch.nn.Sequential(*layers)
            self.register_buffer("mean", torch.tensor(model.mean, dtype=torch.float32))
            self.register_buffer("scale", torch.tensor(model.scale, dtype=torch.float32))

        def forward(self, x: Any) -> Any:
            return torch.softmax(self.network((x - self.mean) / self.scale), dim=-1)

    net = _Net().eval()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        # The TorchScript-based exporter on purpose: it needs no onnxscript and honours
        # dynamic_axes as given. torch >= 2.9 flags it, and its own internals, with
        # DeprecationWarnings; those are silenced for this call only.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=DeprecationWarning)
            torch.onnx.export(
                net,
                (torch.zeros(1, model.weights[0].shape[0]),),
                str(raw),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch_size"}, OUTPUT_NAME: {0: "batch_size"}},
                opset_version=OPSET,
                dynamo=False,
            )
        proto = onnx.load(str(raw))
    helper.set_model_props(proto, _metadata(model))
    atomic_write_bytes(out, proto.SerializeToString())
    return out


# ---- XGBoost (optional extra `xgboost`: xgboost-cpu + onnxmltools) ----

#: onnxmltools' highest default-domain opset for XGBoost; the graph itself only uses
#: ai.onnx.ml TreeEnsembleClassifier, which onnxruntime (Python and Rust) runs natively.
XGBOOST_OPSET: Final = 15


def train_xgboost(
    data: LabelledData | None = None,
    *,
    n_estimators: int = 60,
    max_depth: int = 4,
    learning_rate: float = 0.2,
    seed: int = 0,
) -> Any:
    """An ``xgboost.XGBClassifier`` (3 classes, buy/hold/sell) fitted on the labelled
    synthetic dataset the TradingModel is trained on (``labelled_dataset(seed=seed)`` by
    default). Single-threaded, so that a seed gives the same trees."""
    xgb: Any = importlib.import_module("xgboost")  # optional extra
    d = data if data is not None else labelled_dataset(seed=seed)
    if d.x.ndim != 2 or d.x.shape[1] != len(d.feature_names):
        raise ValueError(f"x must be (n, {len(d.feature_names)})")
    missing = set(range(len(CLASSES))) - {int(c) for c in np.unique(d.y)}
    if missing:
        raise ValueError(f"classes {sorted(missing)} absent from the labels: need all of {CLASSES}")
    clf = xgb.XGBClassifier(
        n_estimators=n_estimators,
        max_depth=max_depth,
        learning_rate=learning_rate,
        objective="multi:softprob",
        tree_method="hist",
        n_jobs=1,
        random_state=seed,
    )
    clf.fit(np.asarray(d.x, dtype=np.float32), d.y)
    return clf


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for vi in (*graph.input, *graph.output, *graph.value_info):
        if vi.name == old:
            vi.name = new


def xgboost_to_onnx(
    classifier: Any, feature_names: tuple[str, ...] = tf.FEATURE_NAMES
) -> onnx.ModelProto:
    """Convert a fitted XGBClassifier with onnxmltools and bring the graph to the tradewire
    contract: input ``features`` float32 [batch_size, 7], sole output
    ``signal_probabilities`` float32 [batch_size, 3] (the converter's ``label`` output is
    dropped; XGBoost graphs have no ZipMap), plus the feature-names/classes metadata."""
    onnxmltools: Any = importlib.import_module("onnxmltools")
    types: Any = importlib.import_module("onnxmltools.convert.common.data_types")
    n_classes = int(getattr(classifier, "n_classes_", 0))
    n_features = int(getattr(classifier, "n_features_in_", 0))
    if n_classes != len(CLASSES):
        raise ValueError(f"classifier has {n_classes} classes, want {len(CLASSES)} ({CLASSES})")
    if n_features != len(feature_names):
        raise ValueError(f"classifier has {n_features} inputs, want {len(feature_names)}")
    proto: onnx.ModelProto = onnxmltools.convert_xgboost(
        classifier,
        initial_types=[(INPUT_NAME, types.FloatTensorType([None, n_features]))],
        target_opset=XGBOOST_OPSET,
    )
    graph = proto.graph
    (inp,) = graph.input
    outputs = {o.name: o for o in graph.output}
    prob = next(
        (o for o in graph.output if o.type.tensor_type.elem_type == TensorProto.FLOAT), None
    )
    if inp.name != INPUT_NAME or prob is None or len(outputs) != 2:
        raise RuntimeError(
            f"unexpected onnxmltools graph: inputs {[i.name for i in graph.input]}, "
            f"outputs {list(outputs)}"
        )
    _rename(graph, prob.name, OUTPUT_NAME)
    keep = [o for o in graph.output if o.name == OUTPUT_NAME]
    del graph.output[:]
    graph.output.extend(keep)
    for vi in (graph.input[0], graph.output[0]):
        dim0 = vi.type.tensor_type.shape.dim[0]
        dim0.ClearField("dim_value")
        dim0.dim_param = "batch_size"
    graph.name = "tradewire_xgboost_model"
    proto.producer_name = "tradewire.ml (onnxmltools)"
    helper.set_model_props(proto, _metadata_for(tuple(feature_names)))
    onnx.checker.check_model(proto)
    return proto


def export_xgboost_onnx(
    path: str | os.PathLike[str],
    classifier: Any = None,
    *,
    feature_names: tuple[str, ...] = tf.FEATURE_NAMES,
    seed: int = 0,
) -> Path:
    """Export an XGBClassifier (trained here with :func:`train_xgboost` when `classifier`
    is None) to ONNX with the same contract as :func:`export_onnx`; atomic write."""
    clf = classifier if classifier is not None else train_xgboost(seed=seed)
    out = Path(path)
    atomic_write_bytes(out, xgboost_to_onnx(clf, feature_names).SerializeToString())
    return out
