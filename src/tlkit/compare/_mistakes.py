"""What each model gets wrong: its most confidently wrong test images and most confused pairs.

fastai's ``ClassificationInterpretation`` (``plot_top_losses``, ``most_confused``) is the
model. :func:`mistake_gallery` picks, for one model, the test images it got wrong with
the highest probability on its (wrong) prediction, and counts the (true, predicted) class
pairs it confuses, with a few example images each. The pictures need the test images'
files, so the gallery is only built when the test data is a
:class:`~tlkit.data.SplitPart`; otherwise, and for a model without probabilities, the
gallery says why it is empty. The renderers (:mod:`._gallery`) show it; the JSON
report lists it under each model's ``gallery`` key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tlkit.compare._format import clean as _clean

__all__ = [
    "CONFUSED_PAIRS",
    "GALLERY_SIZE",
    "PAIR_EXAMPLES",
    "ConfusedPair",
    "ImageFiles",
    "Mistake",
    "MistakeGallery",
    "confused_pairs",
    "mistake_gallery",
]

#: Most confidently wrong test images listed per model (JSON, Markdown and HTML).
GALLERY_SIZE = 12

#: Most confused (true, predicted) class pairs listed per model.
CONFUSED_PAIRS = 5

#: Example images shown per confused pair (its most confident mistakes, or its first).
PAIR_EXAMPLES = 3

NO_FILES_NOTE = (
    "No gallery of mistakes: the test data has no image files (pass a SplitPart such as "
    "split.test to ModelComparator to see the images a model gets wrong)."
)
NO_PROBABILITIES_NOTE = (
    "No gallery of confident mistakes: the model gives no probabilities to order them by "
    "(pass y_prob to add_predictions); its confused pairs are shown with their first images."
)


@dataclass(frozen=True)
class ImageFiles:
    """The test images' files, in test-set order.

    Attributes
    ----------
    paths : tuple of str
        One path per test example: relative to ``root`` (with ``/``) when there is a root,
        else as given.
    root : str or None
        The folder the paths are relative to (a split's root).
    """

    paths: tuple[str, ...]
    root: str | None = None

    def file(self, path: str) -> str:
        """The path of the file to read for ``path`` (one of :attr:`paths`)."""
        if self.root is None:
            return path
        return os.path.join(self.root, *path.split("/"))

    @classmethod
    def of(cls, data: Any) -> ImageFiles | None:
        """The files of a SplitPart-like object (``samples`` and ``root``, or ``paths``)."""
        samples = getattr(data, "samples", None)
        root = getattr(data, "root", None)
        try:
            if samples is not None and root is not None:
                return cls(tuple(str(s.path) for s in samples), os.fspath(root))
            paths = getattr(data, "paths", None)
            if paths is not None:
                return cls(tuple(os.fspath(p) for p in paths))
        except (TypeError, AttributeError):
            return None
        return None


@dataclass(frozen=True)
class Mistake:
    """One test image a model got wrong (its fields are its parameters).

    Parameters
    ----------
    index : int
        Position in the test set.
    path : str
        The image file, relative to the split's root when there is one.
    true, predicted : str
        Class names.
    p_predicted, p_true : float or None
        The probability the model gave its prediction and the true class (``None``
        without probabilities).
    """

    index: int
    path: str
    true: str
    predicted: str
    p_predicted: float | None = None
    p_true: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the mistake as a JSON-ready dict."""
        return {
            "index": self.index,
            "path": self.path,
            "true": self.true,
            "predicted": self.predicted,
            "p_predicted": _clean(self.p_predicted),
            "p_true": _clean(self.p_true),
        }


@dataclass(frozen=True)
class ConfusedPair:
    """A (true, predicted) class pair a model confuses, with example images.

    Attributes
    ----------
    true, predicted : str
        Class names.
    count : int
        Test images of class ``true`` predicted as ``predicted``.
    examples : tuple of Mistake
        Up to :data:`PAIR_EXAMPLES` of them (none without image files).
    """

    true: str
    predicted: str
    count: int
    examples: tuple[Mistake, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the pair as a JSON-ready dict."""
        return {
            "true": self.true,
            "predicted": self.predicted,
            "count": self.count,
            "examples": [m.to_dict() for m in self.examples],
        }


@dataclass(frozen=True)
class MistakeGallery:
    """What one model gets wrong on the test set.

    Attributes
    ----------
    n_mistakes : int
        Test images the model gets wrong.
    mistakes : tuple of Mistake
        The :data:`GALLERY_SIZE` most confidently wrong ones, highest probability of the
        (wrong) prediction first (ties: test-set order). Empty without image files or
        probabilities.
    confused_pairs : tuple of ConfusedPair
        The :data:`CONFUSED_PAIRS` most frequent (true, predicted) pairs, largest first.
    files : ImageFiles or None
        Where the images are (not written to the JSON report: paths there are relative).
    note : str or None
        Why the gallery is empty or partial.

    Examples
    --------
    Each model's row of a report holds one (the baseline's is ``None``). With a
    SplitPart as test data the mistakes name their image files; from labels alone
    there are none to show, and the note says so:

    >>> from tlkit.compare import ModelComparator
    >>> report = ModelComparator([0, 0, 1], ["cat", "dog"], n_boot=0).add_predictions(
    ...     "m", y_prob=[[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]).run()
    >>> g = report["m"].gallery
    >>> g.n_mistakes, [(p.true, p.predicted, p.count) for p in g.confused_pairs]
    (1, [('cat', 'dog', 1)])
    >>> print(g.note.split(":")[0])
    No gallery of mistakes
    """

    n_mistakes: int
    mistakes: tuple[Mistake, ...]
    confused_pairs: tuple[ConfusedPair, ...]
    files: ImageFiles | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the gallery as a JSON-ready dict (each model's ``gallery`` key)."""
        return {
            "n_mistakes": self.n_mistakes,
            "mistakes": [m.to_dict() for m in self.mistakes],
            "confused_pairs": [p.to_dict() for p in self.confused_pairs],
            "note": self.note,
        }


def confused_pairs(y_true: Any, y_pred: Any, num_classes: int) -> list[tuple[int, int, int]]:
    """Every (true, predicted, count) pair with ``true != predicted`` and ``count > 0``.

    Largest count first; ties in class order. The counts add up to the number of
    mistakes.

    Examples
    --------
    >>> confused_pairs([0, 0, 1, 1, 2], [1, 1, 0, 1, 0], 3)
    [(0, 1, 2), (1, 0, 1), (2, 0, 1)]
    """
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    wrong = t != p
    counts = np.bincount(t[wrong] * num_classes + p[wrong], minlength=num_classes * num_classes)
    cells = [(int(c) // num_classes, int(c) % num_classes) for c in np.flatnonzero(counts)]
    return sorted(
        ((i, j, int(counts[i * num_classes + j])) for i, j in cells),
        key=lambda x: (-x[2], x[0], x[1]),
    )


def mistake_gallery(
    y_true: Any,
    y_pred: Any,
    y_prob: Any,
    class_names: Sequence[str],
    files: ImageFiles | None,
    *,
    size: int | None = None,
    pairs: int | None = None,
    examples: int | None = None,
) -> MistakeGallery:
    """What a model gets wrong: its most confidently wrong images and most confused pairs.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (n,)
        Test labels and the model's predictions.
    y_prob : array-like of float, shape (n, K), or None
        The model's class probabilities; the mistakes are ordered by
        ``y_prob[i, y_pred[i]]``.
    class_names : sequence of str
        The ``K`` class names.
    files : ImageFiles or None
        The test images' files; ``None`` gives no images, with a note saying so.
    size, pairs, examples : int, optional
        Mistakes, pairs, and examples per pair kept (default :data:`GALLERY_SIZE`,
        :data:`CONFUSED_PAIRS`, :data:`PAIR_EXAMPLES`).

    Returns
    -------
    MistakeGallery

    Examples
    --------
    >>> files = ImageFiles(("a/1.png", "a/2.png", "b/3.png"), "/data")
    >>> prob = [[0.4, 0.6], [0.9, 0.1], [0.8, 0.2]]
    >>> g = mistake_gallery([0, 0, 1], [1, 0, 0], prob, ["a", "b"], files)
    >>> [(m.path, m.predicted, m.p_predicted) for m in g.mistakes]
    [('b/3.png', 'a', 0.8), ('a/1.png', 'b', 0.6)]
    >>> [(p.true, p.predicted, p.count) for p in g.confused_pairs]
    [('a', 'b', 1), ('b', 'a', 1)]
    """
    size = GALLERY_SIZE if size is None else size
    pairs = CONFUSED_PAIRS if pairs is None else pairs
    examples = PAIR_EXAMPLES if examples is None else examples
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    prob = None if y_prob is None else np.asarray(y_prob, dtype=np.float64)
    if files is not None and len(files.paths) != t.size:
        files = None
    wrong = np.flatnonzero(t != p)
    if prob is not None:
        conf = prob[wrong, p[wrong]]
        wrong = wrong[np.lexsort((wrong, -conf))]  # most confident first, then test order

    order: list[int] = wrong.tolist()
    paths = files.paths if files is not None else ()

    def mistake(i: int) -> Mistake:
        return Mistake(
            index=int(i),
            path=paths[i],
            true=class_names[t[i]],
            predicted=class_names[p[i]],
            p_predicted=None if prob is None else float(prob[i, p[i]]),
            p_true=None if prob is None else float(prob[i, t[i]]),
        )

    top: tuple[Mistake, ...] = ()
    if files is not None and prob is not None:
        top = tuple(mistake(i) for i in order[:size])
    out = []
    for ti, pi, count in confused_pairs(t, p, len(class_names))[:pairs]:
        shown: tuple[Mistake, ...] = ()
        if files is not None:
            idx = [i for i in order if t[i] == ti and p[i] == pi][:examples]
            shown = tuple(mistake(i) for i in idx)
        out.append(ConfusedPair(class_names[ti], class_names[pi], count, shown))
    note = None
    if files is None:
        note = NO_FILES_NOTE
    elif prob is None and wrong.size:
        note = NO_PROBABILITIES_NOTE
    return MistakeGallery(len(order), top, tuple(out), files, note)
