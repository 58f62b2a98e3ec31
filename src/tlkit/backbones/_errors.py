"""Errors raised by :mod:`tlkit.backbones`, defined in :mod:`tlkit.errors`."""

from __future__ import annotations

from tlkit.errors import BackboneError, WeightsFileError

__all__ = ["BackboneError", "WeightsFileError"]
