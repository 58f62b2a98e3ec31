"""The sample record and the sequence of samples that makes one split part."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["Sample", "SplitPart"]


@dataclass(frozen=True)
class Sample:
    """One image file and its label.

    Parameters
    ----------
    path : str
        Path relative to the dataset root, with forward slashes.
    label : int
        Class index into the split's ``class_names``.
    sha256 : str
        Hex digest of the file's bytes ("" when not computed).
    orientation : int
        EXIF orientation tag (1 to 8; 1 means upright), read when the file was
        scanned so the input pipeline can rotate the image without Python.
    width, height : int
        Stored pixel size before EXIF orientation (0 when unknown).
    group : str
        Key of the leak-free group this sample was kept with (duplicates and
        ``groups=`` matches share a key).

    Examples
    --------
    >>> Sample("cat/1.jpg", 0).label
    0
    """

    path: str
    label: int
    sha256: str = ""
    orientation: int = 1
    width: int = 0
    height: int = 0
    group: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the sample as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sample:
        """Build a sample from :meth:`to_dict` output."""
        return cls(
            path=str(d["path"]),
            label=int(d["label"]),
            sha256=str(d.get("sha256", "")),
            orientation=int(d.get("orientation", 1)),
            width=int(d.get("width", 0)),
            height=int(d.get("height", 0)),
            group=str(d.get("group", "")),
        )


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
        return [os.path.join(self.root, *s.path.split("/")) for s in self.samples]

    @property
    def labels(self) -> np.ndarray:
        """Class indices as an ``int32`` array, in sample order."""
        return np.asarray([s.label for s in self.samples], dtype=np.int32)

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
        from tlkit.data._pipeline import to_dataset

        return to_dataset(self, image_size=image_size, **kwargs)
