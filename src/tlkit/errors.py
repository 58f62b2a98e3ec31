"""Exceptions raised by tlkit.

Every error tlkit raises on bad input derives from :class:`TlkitError`, so
``except tlkit.errors.TlkitError`` catches them all. Each one also derives from
the built-in exception that matches it, so code written against the built-ins
keeps working: a value out of range is a ``ValueError``
(:class:`InvalidArgumentError` and the subsystem errors below), an argument of
the wrong type is a ``TypeError`` (:class:`ArgumentTypeError`), a missing
optional package is an ``ImportError``. Messages name the file or argument at
fault, the allowed values, and what to do.

Examples
--------
>>> from tlkit import DatasetSplitter
>>> from tlkit.errors import TlkitError
>>> try:
...     DatasetSplitter(seed="42")
... except TypeError as err:  # also a TlkitError
...     print(isinstance(err, TlkitError), err)
True seed must be an int >= 0, got '42' (str)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArgumentTypeError",
    "AuditError",
    "BackboneError",
    "ComparisonError",
    "DatasetError",
    "EvaluationError",
    "ExportCheckError",
    "ExportError",
    "FileLimitError",
    "ImageDecodeError",
    "InvalidArgumentError",
    "LabelConflictError",
    "ManifestError",
    "ManifestMismatchError",
    "MissingDependencyError",
    "ModelFileError",
    "OutputPathError",
    "ScheduleError",
    "SmallClassError",
    "TlkitError",
    "TrainingDivergedError",
    "UnsafeCheckpointError",
    "UntrustedModelError",
    "WeightsFileError",
    "WeightsUnavailableError",
]


class TlkitError(Exception):
    """Base class of every error raised by tlkit."""


class _ArgumentErrorMixin:
    """``.argument``: the name of the argument at fault (``"batch_size"``), or ``None``."""

    argument: str | None

    def __init__(self, message: str = "", argument: str | None = None) -> None:
        super().__init__(message)  # type: ignore[call-arg]
        self.argument = argument

    def __reduce__(self) -> tuple[Any, ...]:  # keep .argument through pickling (process pools)
        return (type(self), (*self.args[:1], self.argument))  # type: ignore[attr-defined]


class InvalidArgumentError(_ArgumentErrorMixin, TlkitError, ValueError):
    """An argument has an accepted type but a value tlkit cannot use (the message names the allowed values).

    ``.argument`` names the argument when the raiser knows it (the ``check_*``
    functions set it), so a front end can show its own name for it (the
    command line shows ``--batch-size`` for ``batch_size``); else ``None``.

    Examples
    --------
    >>> InvalidArgumentError("batch_size must be an int >= 1, got 0", argument="batch_size").argument
    'batch_size'
    >>> InvalidArgumentError("bad value").argument is None
    True
    """


class ArgumentTypeError(_ArgumentErrorMixin, TlkitError, TypeError):
    """An argument has a type tlkit does not accept (the message names the accepted types).

    ``.argument`` names the argument when known, as for :class:`InvalidArgumentError`.
    """


class DatasetError(TlkitError, ValueError):
    """The dataset folder or sample list cannot be used as given."""


class SmallClassError(DatasetError):
    """A class has too few images to appear in every split."""


class LabelConflictError(DatasetError):
    """Files with identical content carry different labels."""


class ManifestError(TlkitError, ValueError):
    """A split manifest is malformed or unsafe (e.g. a path escaping its root)."""


class ManifestMismatchError(ManifestError):
    """Files listed in a manifest are missing or changed on disk."""


class ImageDecodeError(TlkitError, RuntimeError):
    """An image file could not be decoded by the input pipeline (names the file)."""


class WeightsUnavailableError(TlkitError, RuntimeError):
    """Pretrained weights are not on disk and cannot be downloaded here.

    The message names the exact file, the folder to put it in, and the
    backbones whose weights work offline.
    """


class UnsafeCheckpointError(TlkitError, ValueError):
    """A checkpoint file asks to load something other than plain tensors; it was not run."""


class BackboneError(TlkitError, ValueError):
    """A backbone cannot be built or registered as asked, though each argument is valid.

    No ImageNet weights exist for the options (an ``alpha``, an image size with
    ``include_top=True``, any for ``scratch_cnn``), or the name is already
    registered. An unknown name or a bad argument value (``image_size=-3``,
    ``weights="foo"``, ``pooling="mean"``) is an :class:`InvalidArgumentError`.
    """


class WeightsFileError(TlkitError, ValueError):
    """A weights file cannot be used: unreadable, or its tensors do not fit the model.

    The message names the file and, for a mismatch, the first layers and shapes that differ.
    """


class MissingDependencyError(TlkitError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class ExportError(TlkitError, ValueError):
    """A model cannot be exported: its data or state cannot be used, or the converter failed.

    A bad argument value (``format="x"``, ``batch_size=0``) is an :class:`InvalidArgumentError`.
    """


class ExportCheckError(ExportError):
    """The exported file does not predict what the Keras model predicts.

    The message gives the figures (agreement, threshold, accuracy before and
    after, largest probability difference); ``.report`` holds the full
    :class:`~tlkit.export.ExportReport`.
    """

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report


class ScheduleError(TlkitError, ValueError):
    """Training cannot go on as set up: a schedule, the data or a checkpoint does not fit the run.

    A bad FineTuner or schedule argument value (``batch_size=0``, ``Frozen(epochs=0)``,
    ``schedules.get("nope")``) is an :class:`InvalidArgumentError`.
    """


class ModelFileError(TlkitError, ValueError):
    """A saved model file is missing, corrupt, or not a tlkit model; the message names the file.

    ``.code`` names the cases whose advice a front end gives in its own words
    (the message tells a Python user which function to call): ``"not_keras"``
    (not a ``.keras`` archive), ``"not_tlkit"`` (a Keras model without tlkit
    metadata), ``"old_format"`` (written by an older tlkit), ``"unknown_backbone"``
    (the model names a backbone this Python has not registered); else ``None``.

    Examples
    --------
    >>> ModelFileError("'m.keras' is a Keras model without tlkit metadata", code="not_tlkit").code
    'not_tlkit'
    """

    code: str | None

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:  # keep .code through pickling (process pools)
        return (type(self), (*self.args[:1], self.code))


class TrainingDivergedError(TlkitError, FloatingPointError):
    """The training loss became NaN or infinite; the message names the phase, epoch and learning rate."""


class AuditError(TlkitError, ValueError):
    """Precomputed features or ``oof`` given to :func:`tlkit.audit.audit` cannot be used.

    A bad option value (``seed=-1``, ``batch_size=0``) is an :class:`InvalidArgumentError`.
    """


class ComparisonError(TlkitError, ValueError):
    """A model or prediction given to :mod:`tlkit.compare` cannot be used.

    A bad option value (``n_boot=-1``, ``seed=-1``) is an :class:`InvalidArgumentError`.

    Raised by :class:`~tlkit.compare.ModelComparator` and the statistics
    (:func:`~tlkit.compare.bootstrap_ci`, ...); the message names the argument
    and what to do.
    """


class FileLimitError(TlkitError, ValueError):
    """A file was refused before it was read or decoded: it is not a regular file, or
    it is over a documented limit (bytes, pixels, aspect ratio). The message names
    the file, the limit and how to change it; ``.path`` is the file and ``.reason`` the short reason.
    """

    def __init__(self, message: str, path: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason or message


class OutputPathError(TlkitError, FileExistsError):
    """An output path holds something tlkit will not replace (a folder, link or another tool's file).

    tlkit writes every file atomically and only over its own earlier output;
    the message names the path and what is there.
    """


class UntrustedModelError(ExportError):
    """An exported model can run code or read files when loaded, and ``trust=True`` was not given.

    A SavedModel's graph may call any TensorFlow op (``tf.io.write_file`` ...),
    a LiteRT file may hold custom or select-TensorFlow ops, an ONNX file may
    read external data files. Pass ``trust=True`` (``--trust-model``) only for a
    model from a source you trust.
    """


class EvaluationError(TlkitError, ValueError):
    """A model or option given to :mod:`tlkit.evaluate` cannot be used.

    Raised by :func:`~tlkit.evaluate.cross_validate` and
    :func:`~tlkit.evaluate.learning_curve`: ``make_model`` returned a model
    already trained, ``predict`` returned no probabilities, ...; the message
    says what to do.
    """
