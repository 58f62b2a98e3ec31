"""Choose the features a head reads, the last layer's or every block's, on validation data.

ImageNet's last layer suits photos; images far from ImageNet's (solar cells,
microscopy, documents) are often better served by every block's pooled features
(``pooling="blocks"``, :func:`tlkit.backbones.pool_blocks`). Which one is right
is a question for your validation set, and a cheap one: the last layer's
pooled features are the tail of the blocks vector, so one pass of the frozen
backbone over the training and validation images gives both, and a linear
probe on each answers it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tlkit.backbones import Backbone, get_backbone, pool_blocks
from tlkit.errors import InvalidArgumentError
from tlkit.finetune._data import Data, as_data
from tlkit.finetune._probe import LinearProbe, fit_probe

if TYPE_CHECKING:  # pragma: no cover
    import os

__all__ = [
    "POOLINGS",
    "PoolingChoice",
    "choose_among",
    "choose_pooling",
    "decide",
]

#: What :func:`choose_pooling` chooses between, in the order a tie is settled.
POOLINGS = ("avg", "blocks")


@dataclass(frozen=True)
class PoolingChoice:
    """What :func:`choose_pooling` found.

    Attributes
    ----------
    pooling : str
        ``"avg"`` (the last layer's pooled features) or ``"blocks"`` (every
        block's): the one whose probe scored higher on validation; a tie goes
        to ``"avg"``, the smaller head.
    scores : dict
        Validation balanced accuracy of the probe on each, by pooling.
    backbone : Backbone
        The backbone built with the chosen pooling, ready for
        :class:`~tlkit.finetune.FineTuner` (its weights are the ones probed).
    seconds : float
        Wall-clock time of the choice (the feature pass and the probes).
    features : dict
        Number of features of each, by pooling.
    probe : LinearProbe or None
        The chosen pooling's probe (``head_start="probe"`` starts the head from it).
    """

    pooling: str
    scores: dict[str, float]
    backbone: Backbone = field(repr=False)
    seconds: float
    features: dict[str, int]
    probe: LinearProbe | None = field(default=None, repr=False)

    def __str__(self) -> str:
        other = next(p for p in POOLINGS if p != self.pooling)
        return (
            f"pooling={self.pooling!r}: a linear probe on the {_WHAT[self.pooling]} "
            f"({self.features[self.pooling]:,} features) scored {self.scores[self.pooling]:.3f} "
            f"balanced accuracy on validation, on the {_WHAT[other]} "
            f"({self.features[other]:,}) {self.scores[other]:.3f} ({self.seconds:.0f} s)"
        )


_WHAT = {"avg": "last layer's pooled features", "blocks": "pooled features of every block"}


def choose_pooling(
    backbone: str | Backbone,
    train: Any,
    val: Any,
    *,
    weights: str | os.PathLike[str] | None = "imagenet",
    image_size: int | tuple[int, int] | None = None,
    batch_size: int = 32,
) -> PoolingChoice:
    """Choose, on validation data, whether a head reads the last layer's or every block's features.

    Computes the frozen backbone's pooled features of every block (the last
    layer's among them) once for the training and validation images, fits a
    logistic regression on each feature set (standardised; balanced class
    weights; the strength tried at 0.001, 0.01 and 0.1), and keeps the set whose
    best probe has the higher balanced accuracy on validation. The probe stands
    in for the head FineTuner trains on the same features; on a CPU it costs
    about one epoch over the images. Never look at test data to choose.

    Parameters
    ----------
    backbone : str or Backbone
        A registry name, or a backbone built with ``pooling="avg"`` (the
        default of :func:`~tlkit.backbones.get_backbone`).
    train, val : SplitPart or tf.data.Dataset
        Training and validation images (raw RGB pixels in [0, 255]) with their
        labels, as :meth:`FineTuner.fit` takes them; no augmentation is applied.
    weights : "imagenet", None or path
        Weights of a backbone given by name.
    image_size : int or (int, int), optional
        Image size of a backbone given by name (default: the backbone's).
    batch_size : int
        Images per batch of the feature pass.

    Returns
    -------
    PoolingChoice
        The choice, both scores, and the backbone built with the chosen pooling.

    Raises
    ------
    tlkit.errors.InvalidArgumentError
        The backbone is not pooled by average (``pooling="blocks"``, ``"max"``
        or a feature map), or the training data holds fewer than two classes.

    Examples
    --------
    >>> from tlkit.datasets import make_synthetic_dataset
    >>> from tlkit import DatasetSplitter
    >>> from tlkit.finetune import choose_pooling
    >>> import tempfile
    >>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 12, "b": 12}, image_size=32)
    >>> split = DatasetSplitter(val=0.25, test=0.25, seed=0).split(root)
    >>> choice = choose_pooling("scratch_cnn", split.train, split.val, weights=None, image_size=32)
    >>> choice.pooling in ("avg", "blocks"), choice.backbone.options["pooling"] == choice.pooling
    (True, True)
    """
    start = time.perf_counter()
    train_data, val_data = as_data(train, "train"), as_data(val, "val")
    avg = (
        backbone
        if isinstance(backbone, Backbone)
        else get_backbone(backbone, weights=weights, image_size=image_size)
    )
    return choose_among(avg, train_data, val_data, batch_size=batch_size, start=start)


def choose_among(
    avg: Backbone, train_data: Data, val_data: Data, *, batch_size: int, start: float | None = None
) -> PoolingChoice:
    """:func:`choose_pooling` on a built backbone and checked data (what FineTuner calls)."""
    start = time.perf_counter() if start is None else start
    pooling = avg.options.get("pooling", "avg")
    if pooling != "avg" or len(avg.model.output_shape) != 2:
        raise InvalidArgumentError(
            f"choose_pooling compares pooling='avg' with 'blocks' and needs the backbone built "
            f"with pooling='avg'; {avg.name} has pooling={pooling!r}",
            argument="backbone",
        )
    y = {"train": train_data.labels(), "val": val_data.labels()}
    if len(np.unique(y["train"])) < 2:
        raise InvalidArgumentError(
            "choose_pooling needs training images of at least two classes", argument="train"
        )
    blocks = pool_blocks(avg)
    blocks.options = {**avg.options, "pooling": "blocks"}
    avg.options = {**avg.options, "pooling": "avg"}
    x = {
        "train": _features(blocks, train_data, avg.image_size, batch_size),
        "val": _features(blocks, val_data, avg.image_size, batch_size),
    }
    tail = avg.feature_dim  # the last layer's pooled features close the blocks vector
    k = int(max(y["train"].max(), y["val"].max())) + 1
    probes = {
        "avg": fit_probe(x["train"][:, -tail:], y["train"], x["val"][:, -tail:], y["val"], k),
        "blocks": fit_probe(x["train"], y["train"], x["val"], y["val"], k),
    }
    scores = {p: probe.score for p, probe in probes.items()}
    chosen = decide(scores)
    return PoolingChoice(
        pooling=chosen,
        scores=scores,
        backbone=blocks if chosen == "blocks" else avg,
        seconds=time.perf_counter() - start,
        features={"avg": tail, "blocks": blocks.feature_dim},
        probe=probes[chosen],
    )


def decide(scores: dict[str, float]) -> str:
    """The pooling with the higher probe score; a tie keeps ``"avg"``, the smaller head."""
    return "blocks" if scores["blocks"] > scores["avg"] else "avg"


def _features(backbone: Backbone, data: Data, size: tuple[int, int], batch_size: int) -> np.ndarray:
    """The backbone's output for every image of ``data``, in its order (float32)."""
    if data.part is not None:
        images = data.part.to_dataset(size, batch_size=batch_size, shuffle=False)
    else:
        images = data.dataset
    rows = [
        np.asarray(backbone.model.predict_on_batch(batch[0]), np.float32)
        for batch in images.as_numpy_iterator()
    ]
    return np.concatenate(rows)
