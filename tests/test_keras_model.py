"""tlkit._keras_model: the one reader of a trained model that compare and export share."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tlkit._keras_model import input_image_size, latency_ms, size_on_disk, unwrap
from tlkit.errors import ArgumentTypeError, ComparisonError, ExportError


def test_unwrap_refuses_other_objects_with_the_callers_hint() -> None:
    with pytest.raises(
        ArgumentTypeError, match=r"keras\.Model or an object whose \.model.*got str$"
    ):
        unwrap("model.keras")
    with pytest.raises(ArgumentTypeError, match=r"whose \.model is int; use x$"):
        unwrap(SimpleNamespace(model=3), hint="; use x")


def test_input_image_size_needs_a_fixed_size_and_rgb_when_asked() -> None:
    assert input_image_size(SimpleNamespace(input_shape=(None, 40, 32, 1)), ExportError) == (40, 32)
    with pytest.raises(ComparisonError, match=r"model 'a' must take images of a fixed size.*; x"):
        input_image_size(
            SimpleNamespace(input_shape=(None, None, None, 3)),
            ComparisonError,
            what="model 'a'",
            hint="; x",
        )
    with pytest.raises(ExportError, match=r"RGB images \(3 channels\)"):
        input_image_size(SimpleNamespace(input_shape=(None, 40, 32, 1)), ExportError, rgb=True)


def test_latency_is_per_image_after_one_warm_up() -> None:
    calls = []
    ms = latency_ms(calls.append, [0] * 4, runs=3)
    assert len(calls) == 4 and ms >= 0.0


def test_size_on_disk_of_a_file_and_a_folder(tmp_path: Path) -> None:
    (tmp_path / "d" / "v").mkdir(parents=True)
    (tmp_path / "d" / "a").write_bytes(b"12345")
    (tmp_path / "d" / "v" / "b").write_bytes(b"123")
    assert size_on_disk(tmp_path / "d" / "a") == 5
    assert size_on_disk(tmp_path / "d") == 8
