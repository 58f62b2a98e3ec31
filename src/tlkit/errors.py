"""Exceptions raised by tlkit.

Every error tlkit raises on bad input derives from :class:`TlkitError`, so
``except tlkit.errors.TlkitError`` catches them all. Messages name the file or
argument at fault and say what to do.
"""

from __future__ import annotations

__all__ = [
    "DatasetError",
    "LabelConflictError",
    "ManifestError",
    "ManifestMismatchError",
    "SmallClassError",
    "TlkitError",
]


class TlkitError(Exception):
    """Base class of every error raised by tlkit."""


class DatasetError(TlkitError, ValueError):
    """The dataset folder or sample list cannot be used as given."""


class SmallClassError(DatasetError):
    """A class has too few images to appear in every split."""


class LabelConflictError(DatasetError):
    """Files with identical content carry different labels."""


class ManifestError(TlkitError, ValueError):
    """A split manifest is malformed or unsafe (e.g. a path escaping its root)."""


class ManifestMismatchError(ManifestError):
    """Files listed in a manifest are missing or changed on disk."""
