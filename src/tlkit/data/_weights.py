"""Class weights for imbalanced data."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from tlkit._validation import check_choice, check_int
from tlkit.data._sample import Sample
from tlkit.data._split import SplitPart
from tlkit.errors import DatasetError

__all__ = ["CLASS_WEIGHT_MODES", "class_weights"]

#: Allowed values of ``mode``.
CLASS_WEIGHT_MODES = ("balanced", "sqrt", "none")


def class_weights(
    samples: SplitPart | Sequence[Sample] | Sequence[int] | np.ndarray,
    mode: str = "balanced",
    num_classes: int | None = None,
) -> dict[int, float]:
    """Per-class loss weights for imbalanced data, for ``model.fit(class_weight=...)``.

    Parameters
    ----------
    samples : SplitPart, sequence of Sample, or sequence of int labels
        The training samples (``split.train``) or their class indices.
    mode : {"balanced", "sqrt", "none"}
        ``"balanced"``: ``n_samples / (n_classes * count)``, from scikit-learn's
        ``compute_class_weight`` (each class then contributes equally to the
        loss). ``"sqrt"``: the square root of the balanced weights, rescaled so
        the average weight per sample is 1 again (a milder correction).
        ``"none"``: 1 for every class.
    num_classes : int, optional
        Number of classes (default: from the ``SplitPart``, else the largest
        label + 1).

    Returns
    -------
    dict of int to float
        A weight for every class index ``0 .. num_classes - 1``. In every mode,
        the weights averaged over the samples equal 1, so the loss keeps its
        scale. A class without samples gets weight ``0.0`` and a warning naming
        it: it contributes nothing to the loss anyway.

    Raises
    ------
    InvalidArgumentError
        Unknown ``mode`` or ``num_classes < 1`` (a ``ValueError``).
    DatasetError
        No samples, or a label outside ``0 .. num_classes - 1`` (a ``ValueError``).
    ArgumentTypeError
        ``num_classes`` not an int (a ``TypeError``).

    Examples
    --------
    >>> class_weights([0, 0, 0, 1])
    {0: 0.6666666666666666, 1: 2.0}
    >>> class_weights([0, 0, 0, 1], mode="none")
    {0: 1.0, 1: 1.0}
    """
    mode = check_choice("mode", mode, CLASS_WEIGHT_MODES)
    num_classes = check_int("num_classes", num_classes, minimum=1, allow_none=True)
    labels, names, num_classes = _labels(samples, num_classes)

    counts = np.bincount(labels, minlength=num_classes)
    present = np.flatnonzero(counts)
    weights = np.zeros(num_classes, dtype=np.float64)
    if mode == "none":
        weights[:] = 1.0
    else:
        from sklearn.utils.class_weight import compute_class_weight

        balanced = compute_class_weight("balanced", classes=present, y=labels)
        if mode == "balanced":
            weights[present] = balanced
        else:
            root = np.sqrt(balanced)
            # Rescale so that sum(count * weight) == n_samples, as for "balanced".
            weights[present] = root * labels.size / float(np.sum(counts[present] * root))
    absent = [int(i) for i in np.flatnonzero(counts == 0)]
    if absent and mode != "none":
        shown = ", ".join(repr(names[i]) if i < len(names) else str(i) for i in absent)
        warnings.warn(
            f"class(es) {shown} have no samples; their weight is 0.0",
            UserWarning,
            stacklevel=2,
        )
        weights[absent] = 0.0
    return {i: float(w) for i, w in enumerate(weights)}


def _labels(
    samples: SplitPart | Sequence[Sample] | Sequence[int] | np.ndarray, num_classes: int | None
) -> tuple[np.ndarray, tuple[str, ...], int]:
    """The labels of ``samples``, checked, with the class names and the number of classes."""
    names: tuple[str, ...] = ()
    if isinstance(samples, SplitPart):
        labels = samples.labels
        names = samples.class_names
        if num_classes is None:
            num_classes = samples.num_classes or None
    else:
        items = list(samples)
        if items and all(isinstance(s, Sample) for s in items):
            labels = np.asarray([s.label for s in items], dtype=np.int64)
        else:
            labels = np.asarray(items)
            if labels.size and (labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer)):
                raise DatasetError(
                    "samples must be a SplitPart, a list of Sample, or a 1-D sequence of "
                    f"int class indices; got an array of {labels.dtype} with shape {labels.shape}"
                )
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise DatasetError("class_weights needs at least one sample; got none")
    if labels.min() < 0:
        raise DatasetError(f"labels must be >= 0, got {int(labels.min())}")
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    if labels.max() >= num_classes:
        raise DatasetError(
            f"label {int(labels.max())} is out of range for num_classes={num_classes}"
        )
    return labels, names, num_classes
