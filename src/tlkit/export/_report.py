"""ExportReport: what an export produced and how well the file agrees with the Keras model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ExportReport", "temperature_sentence"]


def temperature_sentence(t: float) -> str:
    """The export's word on a calibrated model's temperature ``t``."""
    return (
        f"temperature T={t:.4g} is not applied inside the exported model: divide "
        "log-probabilities by T (calibrated probabilities = softmax(log(p) / T))"
    )


@dataclass(frozen=True)
class ExportReport:
    """The exported file, and how its predictions compare with the Keras model's.

    Notes
    -----
    Fields:

    * ``path`` (pathlib.Path): the exported file (or SavedModel folder);
    * ``format`` (str): ``"litert"``, ``"onnx"`` or ``"saved_model"``;
    * ``quantize`` (str or None): ``None``, ``"dynamic"``, ``"float16"`` or ``"int8"``;
    * ``labels_path`` (pathlib.Path or None): the labels file beside the export
      (one class name per line);
    * ``size_bytes`` (int): size of the export on disk; ``keras_size_bytes``
      (int or None): the Keras model saved as ``.keras``, for comparison;
    * ``n_checked`` (int): images both models predicted (0: not checked);
    * ``agreement`` (float or None): share of those images where the export's
      top-1 class equals the Keras model's (0..1);
    * ``accuracy_before``, ``accuracy_after`` (float or None): top-1 accuracy of
      the Keras model and of the export on the check data, when it has labels;
    * ``max_prob_diff`` (float or None): largest absolute difference between the
      two models' outputs, over every image and class;
    * ``latency_ms``, ``keras_latency_ms`` (float or None): milliseconds per
      image at batch 1 (median of timed runs after a warm-up) for the export in
      its runtime, and for the Keras model;
    * ``min_agreement`` (float or None): agreement required; ``None`` when none
      is (quantized formats);
    * ``runtime`` (str): the runtime that ran the export, with its version;
    * ``notes`` (tuple of str): anything the numbers do not say;
    * ``temperature`` (float or None): the temperature of a calibrated
      FineTuner (:meth:`~tlkit.finetune.FineTuner.calibrate`). It is **not**
      applied inside the exported model, which outputs the plain network's
      probabilities ``p``: the calibrated ones are ``softmax(log(p) / T)``.
      The export's marker file records it too.

    Examples
    --------
    >>> r = ExportReport(Path("m.tflite"), "litert", "int8", None, 1000, 3000, 50, 0.98,
    ...                  0.90, 0.88, 0.2, 1.0, 2.0, None, "ai-edge-litert")
    >>> round(r.accuracy_change, 3), r.passed
    (-0.02, True)
    """

    path: Path
    format: str
    quantize: str | None
    labels_path: Path | None
    size_bytes: int
    keras_size_bytes: int | None
    n_checked: int
    agreement: float | None
    accuracy_before: float | None
    accuracy_after: float | None
    max_prob_diff: float | None
    latency_ms: float | None
    keras_latency_ms: float | None
    min_agreement: float | None
    runtime: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    temperature: float | None = None

    @property
    def temperature_text(self) -> str | None:
        """What to do with :attr:`temperature`, in one sentence (None without one)."""
        if self.temperature is None:
            return None
        return temperature_sentence(self.temperature)

    @property
    def accuracy_change(self) -> float | None:
        """``accuracy_after - accuracy_before`` (negative: the export lost accuracy)."""
        if self.accuracy_before is None or self.accuracy_after is None:
            return None
        return self.accuracy_after - self.accuracy_before

    @property
    def checked(self) -> bool:
        """Whether the export was run on check data at all."""
        return self.n_checked > 0

    @property
    def passed(self) -> bool:
        """True unless the agreement is below the required minimum."""
        if self.min_agreement is None or self.agreement is None:
            return True
        return self.agreement >= self.min_agreement

    @property
    def kind(self) -> str:
        """``"litert"``, ``"litert-int8"``, ``"onnx"``, ... : format and quantization."""
        return self.format + (f"-{self.quantize}" if self.quantize else "")

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (paths as strings)."""
        out: dict[str, Any] = {}
        for k in self.__dataclass_fields__:
            v = getattr(self, k)
            if isinstance(v, Path):
                v = str(v)
            elif isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, float) and not math.isfinite(v):
                v = None
            out[k] = v
        out["accuracy_change"] = self.accuracy_change
        out["passed"] = self.passed
        return out

    def summary(self) -> str:
        """A few lines of plain text: the file, its size, agreement, accuracy and latency."""
        lines = [f"{self.kind} export: {self.path} ({_mb(self.size_bytes)})"]
        if self.keras_size_bytes:
            lines[0] += f", .keras {_mb(self.keras_size_bytes)}"
        if not self.checked:
            lines.append("not checked: no check data was given")
        else:
            need = f" (required {self.min_agreement:.0%})" if self.min_agreement else ""
            lines.append(
                f"agreement with Keras {_pct(self.agreement)} on {self.n_checked} images{need}; "
                f"max probability difference {_num(self.max_prob_diff)}"
            )
            if self.accuracy_before is not None:
                change = self.accuracy_change or 0.0
                lines.append(
                    f"accuracy {_pct(self.accuracy_before)} -> {_pct(self.accuracy_after)} "
                    f"({change * 100:+.1f} points)"
                )
        if self.latency_ms is not None:
            keras = (
                f" (Keras {self.keras_latency_ms:.3g} ms)"
                if self.keras_latency_ms is not None
                else ""
            )
            lines.append(f"latency {self.latency_ms:.3g} ms per image at batch 1{keras}")
        lines.append(f"runtime: {self.runtime}")
        if self.temperature_text:
            lines.append(self.temperature_text)
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"
