"""The sample record, and what the input pipeline reads from a list of samples.

:class:`~tlkit.data.SplitPart` (``_split.py``) is built on these; the input pipeline
(``_pipeline.py``) reads a :class:`PartLike`, so it needs no ``SplitPart`` import.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["PartLike", "Sample", "sample_labels", "sample_paths"]


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


@runtime_checkable
class PartLike(Protocol):
    """What the input pipeline reads from a split part (``SplitPart`` implements it).

    ``samples`` in order, the folder their paths are relative to, the class
    names their labels index, and the part's name (``"train"``, ...).
    """

    name: str
    root: Path
    class_names: tuple[str, ...]
    samples: tuple[Sample, ...]


def sample_paths(root: str | os.PathLike[str], samples: Sequence[Sample]) -> list[str]:
    """Absolute file paths of ``samples`` (relative to ``root``), in order.

    Examples
    --------
    >>> sample_paths("/data", [Sample("cat/1.jpg", 0)])
    ['/data/cat/1.jpg']
    """
    return [os.path.join(root, *s.path.split("/")) for s in samples]


def sample_labels(samples: Sequence[Sample]) -> np.ndarray:
    """Labels of ``samples`` as an ``int32`` array, in order."""
    return np.asarray([s.label for s in samples], dtype=np.int32)
