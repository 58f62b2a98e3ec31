"""The ELPV solar-cell dataset (PyPI ``elpv-dataset``): real images, imbalanced classes."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from tlkit._validation import check_path, check_str_list
from tlkit.errors import DatasetError, InvalidArgumentError

__all__ = ["ELPV_CLASS_NAMES", "elpv_samples"]

#: Class names in order of defect probability 0, 1/3, 2/3 and 1.
ELPV_CLASS_NAMES = ("functional", "possibly_defective", "likely_defective", "defective")
_BY_PROBABILITY = {"0.0": 0, "0.3333333333333333": 1, "0.6666666666666666": 2, "1.0": 3}


def _package_data_dir() -> Path:
    try:
        import elpv_dataset
    except ImportError:
        raise DatasetError(
            "the ELPV dataset is not installed; install it with `pip install tlkit[data]` "
            "(or `pip install elpv-dataset`)"
        ) from None
    return Path(os.path.dirname(elpv_dataset.__file__)) / "data"


def elpv_samples(
    types: tuple[str, ...] = ("mono", "poly"), data_dir: str | os.PathLike[str] | None = None
) -> tuple[list[tuple[Path, str]], tuple[str, ...]]:
    """The 2,624 ELPV solar-cell images as ``(path, class name)`` pairs.

    The images (300 x 300 pixel, 8-bit grayscale electroluminescence PNGs of
    single solar cells from 44 modules) are read in place from the installed
    ``elpv-dataset`` package: nothing is copied. Each cell is labelled with the
    defect probability experts gave it, which becomes one of four imbalanced
    classes (``ELPV_CLASS_NAMES``: 1,508 / 295 / 106 / 715 images).
    Licence of the data: CC BY-NC-SA 4.0.

    Parameters
    ----------
    types : tuple of {"mono", "poly"}
        Module types to include (monocrystalline, polycrystalline).
    data_dir : str or os.PathLike, optional
        A folder holding ``labels.csv`` and ``images/``; default: the installed
        package's.

    Returns
    -------
    pairs : list of (pathlib.Path, str)
        For :meth:`tlkit.DatasetSplitter.split_samples`.
    class_names : tuple of str
        The label order to pass along (by defect probability).

    Examples
    --------
    Needs the ``data`` extra (``pip install 'tlkit[data]'``; ``dev`` includes it):

    >>> pairs, names = elpv_samples()  # reads labels.csv only
    >>> len(pairs), names[0], pairs[0][1]
    (2624, 'functional', 'defective')

    Split them (not run here: it reads and hashes all 2,624 files, seconds):

    >>> from tlkit import DatasetSplitter
    >>> split = DatasetSplitter(seed=0).split_samples(pairs, class_names=names)  # doctest: +SKIP
    """
    allowed = {"mono", "poly"}
    types = tuple(check_str_list("types", types))
    if not types or not set(types) <= allowed:
        raise InvalidArgumentError(
            f"types must be a non-empty subset of {sorted(allowed)}, got {types!r}"
        )
    data_dir = check_path("data_dir", data_dir, allow_none=True)
    root = data_dir if data_dir is not None else _package_data_dir()
    labels = root / "labels.csv"
    if not labels.is_file():
        raise DatasetError(f"{str(labels)!r} is missing; is {str(root)!r} an ELPV data folder?")
    pairs: list[tuple[Path, str]] = []
    with open(labels, newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter=" ", skipinitialspace=True), 1):
            if not row:
                continue
            if len(row) != 3 or row[1] not in _BY_PROBABILITY or row[2] not in allowed:
                raise DatasetError(f"{str(labels)!r} line {lineno} is not 'path probability type'")
            path, prob, kind = row
            if kind in types:
                pairs.append((root / path, ELPV_CLASS_NAMES[_BY_PROBABILITY[prob]]))
    return pairs, ELPV_CLASS_NAMES
