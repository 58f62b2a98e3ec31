"""The input pipeline's cache of decoded images: in memory, or files named by a fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence

import numpy as np

from tlkit._validation import type_name
from tlkit.data._sample import Sample
from tlkit.errors import ArgumentTypeError, InvalidArgumentError

__all__ = ["FILE_CACHE_SHUFFLE_BUFFER", "cache_file", "check_cache"]

_CACHE_VERSION = 1
#: Default shuffle buffer after a file cache (a memory cache shuffles everything).
FILE_CACHE_SHUFFLE_BUFFER = 1024


def check_cache(cache: str | os.PathLike[str] | None) -> str | None:
    """``None`` (no cache), ``""`` (memory) or a folder path.

    Examples
    --------
    >>> check_cache("memory"), check_cache(None)
    ('', None)
    >>> check_cache(3)
    Traceback (most recent call last):
    ...
    tlkit.errors.ArgumentTypeError: cache must be None, 'memory' or a folder path, got 3 (int)
    """
    if cache is None:
        return None
    if cache == "memory":
        return ""
    if not isinstance(cache, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"cache must be None, 'memory' or a folder path, got {cache!r} ({type_name(cache)})"
        )
    if not os.fspath(cache):
        raise InvalidArgumentError("cache must be None, 'memory' or a folder path, got ''")
    return os.fspath(cache)


def cache_file(
    folder: str,
    name: str,
    root: str | os.PathLike[str],
    samples: Sequence[Sample],
    size: tuple[int, int],
    resize: str,
    order: np.ndarray,
    shuffled: bool,
) -> str:
    """``""`` for memory, else a file prefix in ``folder`` named by a fingerprint.

    The fingerprint covers the samples (path, content hash, label, orientation)
    in the order they are cached, the root, the size and resize policy, so a
    cache file is never reused for other images or settings.
    """
    if folder == "":
        return ""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {
                "version": _CACHE_VERSION,
                "root": os.path.abspath(root),
                "size": size,
                "resize": resize,
                "shuffled": shuffled,
            }
        ).encode()
    )
    for i in order:
        s = samples[int(i)]
        h.update(f"\0{s.path}\0{s.sha256}\0{s.label}\0{s.orientation}".encode())
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"tlkit-{name}-{size[0]}x{size[1]}-{h.hexdigest()[:16]}")
