"""The ML path: synthetic labelled data from the Rust features, the seed's TradingModel
(7 -> 64 -> 32 -> 3) trained in numpy, ONNX export, and a model registry shared with Rust.

    python -m tradewire.ml train --registry models     # train, export, register as latest
    python -m tradewire.ml train --registry models --model-type xgboost   # extra `xgboost`
"""

from tradewire.ml.data import CLASSES, LabelledData, labelled_dataset, synthetic_market
from tradewire.ml.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    export_onnx,
    export_xgboost_onnx,
    to_onnx,
    train_xgboost,
    xgboost_to_onnx,
)
from tradewire.ml.model import TradingModel
from tradewire.ml.registry import (
    FeatureMismatchError,
    IntegrityError,
    ModelEntry,
    ModelRegistry,
    RegistryError,
)

__all__ = [
    "CLASSES",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "FeatureMismatchError",
    "IntegrityError",
    "LabelledData",
    "ModelEntry",
    "ModelRegistry",
    "RegistryError",
    "TradingModel",
    "export_onnx",
    "export_xgboost_onnx",
    "labelled_dataset",
    "synthetic_market",
    "to_onnx",
    "train_xgboost",
    "xgboost_to_onnx",
]
