"""One rule for arguments (#21): a bad value is an InvalidArgumentError, a wrong type an ArgumentTypeError.

Each public entry point gets one bad value and one wrong type per main argument;
the error names the argument and is not the subsystem's run-time error class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tlkit import DatasetSplitter
from tlkit.errors import (
    ArgumentTypeError,
    AuditError,
    BackboneError,
    ComparisonError,
    ExportError,
    InvalidArgumentError,
    ScheduleError,
    TlkitError,
)

Y = [0, 0, 1, 1, 1, 0]
SUBSYSTEM_ERRORS = (AuditError, BackboneError, ComparisonError, ExportError, ScheduleError)


def _audit(**kwargs):
    from tlkit.audit import audit

    return lambda: audit("no-such-folder", **kwargs)


def _tuner(**kwargs):
    def call():
        from tlkit import FineTuner

        return FineTuner("efficientnet_lite0", weights=None, **kwargs)

    return call


def _comparator(**kwargs):
    from tlkit.compare import ModelComparator

    return lambda: ModelComparator(Y, ["a", "b"], **kwargs)


def _export(**kwargs):
    def call():
        keras = pytest.importorskip("keras")
        from tlkit.export import export

        model = keras.Sequential(
            [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]
        )
        args = {"path": Path("unused-dir-for-tests") / "m.tflite", "latency_runs": 1, **kwargs}
        return export(model, **args)

    return call


def _schedule(name: str, *args, **kwargs):
    def call():
        from tlkit import schedules

        return getattr(schedules, name)(*args, **kwargs)

    return call


def _backbone(function: str, *args, **kwargs):
    def call():
        from tlkit import backbones

        return getattr(backbones, function)(*args, **kwargs)

    return call


# (argument, call) or (argument, call, pattern of the message when it does not name the argument)
VALUES = [
    ("seed", _audit(seed=-1)),
    ("batch_size", _audit(batch_size=0)),
    ("cv_folds", _audit(cv_folds=1)),
    ("hash_threshold", _audit(hash_threshold=1000)),
    ("feature_duplicates", _audit(feature_duplicates="yes")),
    ("near_duplicates", _audit(near_duplicates="yes")),
    ("near_duplicates", _audit(near_duplicates="group")),
    ("image_size", _audit(image_size=(32, 0))),
    ("batch_size", _tuner(batch_size=0)),
    ("dropout", _tuner(dropout=1.5)),
    ("head_units", _tuner(head_units=0)),
    ("optimizer", _tuner(optimizer="adagrad")),
    ("seed", _tuner(seed=-1)),
    ("seed", _comparator(seed=-1)),
    ("n_boot", _comparator(n_boot=-1)),
    ("confidence", _comparator(confidence=1.5)),
    ("batch_size", _comparator(batch_size=0)),
    ("val", lambda: DatasetSplitter(val=1.5)),
    ("test", lambda: DatasetSplitter(test=-1)),
    ("seed", lambda: DatasetSplitter(seed=-1)),
    ("workers", lambda: DatasetSplitter(workers=0)),
    ("format", _export(format="x")),
    ("quantize", _export(quantize="int4")),
    ("batch_size", _export(batch_size=0)),
    ("min_agreement", _export(min_agreement=2.0)),
    ("epochs", _schedule("Frozen", epochs=0)),
    ("head_epochs", _schedule("FreezeThenUnfreeze", head_epochs=-1)),
    ("lr_factor", _schedule("FreezeThenUnfreeze", lr_factor=-0.5)),
    ("lr_decay", _schedule("Frozen", lr_decay=1.5)),
    ("milestones", _schedule("GradualUnfreezing", {2: 1}, epochs=4)),
    ("identifier", _schedule("get", "nope"), "cannot read schedule 'nope'"),
    ("config", _schedule("from_config", {"class_name": "Nope", "config": {}}), "unknown schedule"),
    ("name", _backbone("get_backbone", "nope"), "unknown backbone 'nope'"),
    ("image_size", _backbone("get_backbone", "mobilenet_v2", image_size=-3)),
    ("weights", _backbone("get_backbone", "mobilenet_v2", weights="foo")),
    ("pooling", _backbone("get_backbone", "mobilenet_v2", weights=None, pooling="mean")),
    ("alpha", _backbone("get_backbone", "mobilenet_v2", weights=None, alpha=-1)),
    ("widths", _backbone("get_backbone", "scratch_cnn", weights=None, widths=[])),
    ("name", _backbone("backbone_config", "nope"), "unknown backbone 'nope'"),
    ("name", _backbone("register_backbone", "Not Valid"), "backbone name must be"),
]

TYPES = [
    ("seed", _audit(seed="0")),
    ("batch_size", _audit(batch_size=8.0)),
    ("near_duplicates", _audit(near_duplicates=True)),
    ("image_size", _audit(image_size=(32, 32, 3))),
    ("batch_size", _tuner(batch_size="8")),
    ("dropout", _tuner(dropout="0.2")),
    ("seed", _tuner(seed=1.0)),
    ("seed", _comparator(seed="1")),
    ("n_boot", _comparator(n_boot=True)),
    ("confidence", _comparator(confidence="high")),
    ("val", lambda: DatasetSplitter(val="0.1")),
    ("seed", lambda: DatasetSplitter(seed="42")),
    ("verify", lambda: DatasetSplitter(verify=1)),
    ("batch_size", _export(batch_size=True)),
    ("min_agreement", _export(min_agreement="0.9")),
    ("epochs", _schedule("Frozen", epochs="3")),
    ("lr_factor", _schedule("FreezeThenUnfreeze", lr_factor="0.1")),
    ("identifier", _schedule("get", 3), "schedule must be"),
    ("backbone name", _backbone("get_backbone", 3)),
    ("backbone name", _backbone("backbone_config", None)),
    ("image_size", _backbone("get_backbone", "mobilenet_v2", image_size="96")),
    ("weights", _backbone("get_backbone", "mobilenet_v2", weights=3)),
]


def _cases(table: list[tuple]) -> list:
    return [
        pytest.param(name, call, match[0] if match else name, id=f"{name}-{i}")
        for i, (name, call, *match) in enumerate(table)
    ]


@pytest.mark.parametrize(("name", "call", "match"), _cases(VALUES))
def test_a_bad_value_is_an_invalid_argument_error(name: str, call, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match) as info:
        call()
    assert isinstance(info.value, ValueError) and isinstance(info.value, TlkitError)
    assert info.value.argument in (None, name)  # when the raiser names it, it names this one
    assert not isinstance(info.value, SUBSYSTEM_ERRORS)


@pytest.mark.parametrize(("name", "call", "match"), _cases(TYPES))
def test_a_wrong_type_is_an_argument_type_error(name: str, call, match: str) -> None:
    with pytest.raises(ArgumentTypeError, match=match) as info:
        call()
    assert isinstance(info.value, TypeError) and isinstance(info.value, TlkitError)
    assert info.value.argument in (None, name)
    assert not isinstance(info.value, SUBSYSTEM_ERRORS)


def test_shares_are_checked_by_the_shared_module() -> None:
    from tlkit._validation import check_split_share

    assert check_split_share("val", np.float32(0.25)) == 0.25
    assert check_split_share("val", np.int64(3)) == 3
    with pytest.raises(InvalidArgumentError, match="val"):
        check_split_share("val", float("nan"))
    with pytest.raises(ArgumentTypeError, match="val"):
        check_split_share("val", True)


def test_the_checks_name_the_argument_and_it_survives_pickling() -> None:
    import pickle

    from tlkit._validation import check_choice, check_image_size, check_int

    for call, error in [
        (lambda: check_int("batch_size", 0, minimum=1), InvalidArgumentError),
        (lambda: check_int("batch_size", "8"), ArgumentTypeError),
        (lambda: check_choice("batch_size", "x", ("a",)), InvalidArgumentError),
        (lambda: check_image_size("batch_size", (8, 0)), InvalidArgumentError),
    ]:
        with pytest.raises(error) as info:
            call()
        assert info.value.argument == "batch_size"
        copy = pickle.loads(pickle.dumps(info.value))
        assert (type(copy), str(copy), copy.argument) == (error, str(info.value), "batch_size")
    assert InvalidArgumentError("no name given").argument is None
