"""python -m tradewire.ml train --registry DIR [--epochs N] [--seed S] [--model-type mlp|xgboost]"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tradewire.ml.data import labelled_dataset
from tradewire.ml.export import export_onnx, export_xgboost_onnx, train_xgboost
from tradewire.ml.model import TradingModel
from tradewire.ml.registry import ModelRegistry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tradewire.ml")
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train on synthetic data, export ONNX, register")
    tr.add_argument("--registry", default="models")
    tr.add_argument("--epochs", type=int, default=10)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--name", default="strategy")
    tr.add_argument(
        "--model-type",
        choices=["mlp", "xgboost"],
        default="mlp",
        help="mlp: the seed's TradingModel (numpy); xgboost: XGBClassifier (extra `xgboost`)",
    )
    args = ap.parse_args(argv)

    data = labelled_dataset(seed=args.seed)
    split = int(0.8 * len(data.y))
    train, val = data.split(split)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model_type == "xgboost":
            clf = train_xgboost(train, seed=args.seed)
            acc = float((clf.predict(val.x) == val.y).mean())
            path = export_xgboost_onnx(Path(tmp) / "model.onnx", clf)
            model_type = "xgboost"
        else:
            model = TradingModel.init(args.seed)
            model.fit(train.x, train.y, epochs=args.epochs, seed=args.seed)
            acc = model.accuracy(val.x, val.y)
            path = export_onnx(model, Path(tmp) / "model.onnx")
            model_type = "numpy-mlp"
        entry = ModelRegistry(args.registry).register(
            path, name=args.name, metadata={"model_type": model_type, "val_accuracy": acc}
        )
    json.dump({"version": entry.version, "path": str(entry.path), "val_accuracy": acc}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
