"""Datasets: generated images for tests, and the real ELPV solar-cell images for examples.

:func:`make_synthetic_dataset` writes a folder of generated images (one
sub-folder a class); :func:`elpv_samples` lists the ELPV solar-cell images of
the PyPI package ``elpv-dataset``, with their labels.

Examples
--------
>>> import tempfile
>>> from tlkit.datasets import make_synthetic_dataset
>>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 2, "b": 2}, image_size=8)
>>> sorted(p.name for p in root.iterdir())
['a', 'b']
"""

from __future__ import annotations

import colorsys
import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tlkit._validation import (
    check_image_size,
    check_int,
    check_path,
    check_seed,
    check_str_list,
    type_name,
)
from tlkit.errors import ArgumentTypeError, DatasetError, InvalidArgumentError

__all__ = ["ELPV_CLASS_NAMES", "elpv_samples", "make_synthetic_dataset", "synthetic_image"]


# -- generated images ----------------------------------------------------------------------


def synthetic_image(
    label: int,
    num_classes: int,
    image_size: int | tuple[int, int] | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One ``uint8`` RGB image (H, W, 3) whose class is visible in its colour and stripes.

    Class ``k`` of ``K`` has hue ``k / K`` and stripes at angle ``180 * k / K``
    degrees; brightness, stripe phase and frequency, and pixel noise vary per
    image.

    Parameters
    ----------
    label, num_classes : int
        Class index ``k`` and number of classes ``K``.
    image_size : int or (height, width)
        Pixel size (required).
    rng : numpy.random.Generator
        Source of the per-image variation (required).

    Examples
    --------
    >>> synthetic_image(0, 3, (32, 48), np.random.default_rng(0)).shape
    (32, 48, 3)
    """
    if image_size is None:
        raise InvalidArgumentError("synthetic_image needs image_size=, e.g. (32, 32)")
    h, w = check_image_size("image_size", image_size)
    if not isinstance(rng, np.random.Generator):
        raise ArgumentTypeError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(0)), got {type_name(rng)}"
        )
    label = check_int("label", label, minimum=0)
    num_classes = check_int("num_classes", num_classes, minimum=1)
    hue = label / num_classes
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.9)
    base = np.array([r, g, b], dtype=np.float32)
    angle = np.pi * label / num_classes
    freq = rng.uniform(3.0, 6.0) * 2 * np.pi / max(h, w)
    phase = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    stripes = 0.5 + 0.5 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
    shade = rng.uniform(0.55, 1.0)
    img = base[None, None, :] * (0.45 + 0.55 * stripes[..., None]) * shade
    img = img * 255.0 + rng.normal(0.0, 8.0, size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_synthetic_dataset(
    root: str | os.PathLike[str],
    class_counts: Mapping[str, int] | Sequence[int] = (120, 60, 30),
    image_size: int | tuple[int, int] = 64,
    seed: int = 0,
    formats: Sequence[str] = ("jpeg", "png"),
) -> Path:
    """Write a folder-per-class dataset of real image files.

    Parameters
    ----------
    root : str or os.PathLike
        Folder to write into (created if needed). Existing files are kept.
    class_counts : mapping of str to int, or sequence of int
        Images per class, e.g. ``{"cat": 120, "dog": 60, "fox": 30}``; a
        sequence names the classes ``class_0``, ``class_1``, ...
    image_size : int or (height, width)
        Pixel size of every image.
    seed : int
        Same seed, same files, byte for byte.
    formats : sequence of {"jpeg", "png"}
        File formats used in turn (JPEG and PNG mixed by default).

    Returns
    -------
    pathlib.Path
        ``root``.

    Examples
    --------
    >>> import tempfile
    >>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 3, "b": 2}, image_size=16)
    >>> sorted(p.name for p in (root / "a").iterdir())
    ['a_0000.jpg', 'a_0001.png', 'a_0002.jpg']
    """
    if isinstance(class_counts, Mapping):
        named = [(str(k), v) for k, v in class_counts.items()]
    elif isinstance(class_counts, Sequence) and not isinstance(class_counts, str):
        named = [(f"class_{i}", v) for i, v in enumerate(class_counts)]
    else:
        raise ArgumentTypeError(
            "class_counts must be a mapping of class name to count or a list of counts, "
            f"got {type_name(class_counts)}"
        )
    if not named:
        raise InvalidArgumentError("class_counts is empty; give at least one class, e.g. {'a': 10}")
    items = []
    for name, n in named:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
            check_int(f"class_counts[{name!r}]", n)  # raises ArgumentTypeError
        if n < 0:
            raise InvalidArgumentError(f"class_counts[{name!r}] = {n} must be >= 0")
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise InvalidArgumentError(
                f"class name {name!r} cannot be a folder name; use a plain name"
            )
        items.append((name, int(n)))
    size = check_image_size("image_size", image_size)
    seed = check_seed("seed", seed)
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}
    formats = check_str_list("formats", formats, min_len=1)
    bad = [f for f in formats if f.lower() not in ext]
    if bad:
        raise InvalidArgumentError(
            f"formats must be a non-empty sequence of 'jpeg'/'png', got {formats!r}"
        )
    root = check_path("root", root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for label, (name, n) in enumerate(items):
        folder = root / name
        folder.mkdir(exist_ok=True)
        for i in range(n):
            fmt = formats[i % len(formats)].lower()
            arr = synthetic_image(label, len(items), (size[0], size[1]), rng)
            path = folder / f"{name}_{i:04d}{ext[fmt]}"
            if ext[fmt] == ".jpg":
                Image.fromarray(arr).save(path, "JPEG", quality=90)
            else:
                Image.fromarray(arr).save(path, "PNG")
    return root


# -- ELPV ----------------------------------------------------------------------------------

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
