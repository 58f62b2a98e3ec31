"""SplitPart: the ordered, read-only sequence of samples that makes one split part."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from tlkit.data._pipeline import to_dataset
from tlkit.data._sample import Sample, sample_labels, sample_paths

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["SplitPart"]


@dataclass(frozen=True)
class SplitPart(Sequence[Sample]):
    """An ordered, read-only sequence of samples (``split.train`` and friends).

    Parameters
    ----------
    name : str
        ``"train"``, ``"val"`` or ``"test"``.
    root : pathlib.Path
        Folder the sample paths are relative to.
    class_names : tuple of str
        Class names; ``sample.label`` indexes into it.
    samples : tuple of Sample
        The samples, sorted by relative path.

    Examples
    --------
    >>> part = SplitPart("train", Path("."), ("a", "b"), (Sample("a/1.png", 0),))
    >>> len(part), part.labels.tolist()
    (1, [0])
    """

    name: str
    root: Path
    class_names: tuple[str, ...]
    samples: tuple[Sample, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.samples)

    @overload
    def __getitem__(self, i: int) -> Sample: ...
    @overload
    def __getitem__(self, i: slice) -> SplitPart: ...
    def __getitem__(self, i: int | slice) -> Sample | SplitPart:
        if isinstance(i, slice):
            return SplitPart(self.name, self.root, self.class_names, self.samples[i])
        return self.samples[i]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __repr__(self) -> str:
        return f"SplitPart(name={self.name!r}, n={len(self)}, root={str(self.root)!r})"

    @property
    def paths(self) -> list[str]:
        """Absolute file paths, in sample order."""
        return sample_paths(self.root, self.samples)

    @property
    def labels(self) -> np.ndarray:
        """Class indices as an ``int32`` array, in sample order."""
        return sample_labels(self.samples)

    @property
    def num_classes(self) -> int:
        """Number of classes of the split this part belongs to."""
        return len(self.class_names)

    def class_counts(self) -> dict[str, int]:
        """Number of samples per class name (every class listed, zeros included)."""
        counts = (
            np.bincount(self.labels, minlength=self.num_classes)
            if len(self)
            else (np.zeros(self.num_classes, dtype=int))
        )
        return {c: int(n) for c, n in zip(self.class_names, counts, strict=True)}

    def to_dataset(self, image_size: int | tuple[int, int] = 224, **kwargs: Any) -> tf.data.Dataset:
        """Return a ``tf.data.Dataset`` of ``(images, labels)`` batches.

        See :func:`tlkit.data.to_dataset` for the arguments.
        """
        return to_dataset(self, image_size=image_size, **kwargs)
