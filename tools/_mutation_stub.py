"""pytest plugin for tools/mutation.py: import the checkpoint reader without TensorFlow.

``tlkit.backbones/__init__`` imports Keras (seconds per test run). The reader's
tests need only ``tlkit.backbones._torch_checkpoint``, ``_pickle_vm`` and the two
error classes, so this plugin registers a bare ``tlkit.backbones`` package that
exposes them; the modules under test are the real files. Used only by the mutation driver.
"""

from __future__ import annotations

import os
import sys
import types

import tlkit
from tlkit.errors import UnsafeCheckpointError, WeightsFileError

_pkg = types.ModuleType("tlkit.backbones")
_pkg.__path__ = [os.path.join(os.path.dirname(tlkit.__file__), "backbones")]
_pkg.UnsafeCheckpointError = UnsafeCheckpointError  # type: ignore[attr-defined]
_pkg.WeightsFileError = WeightsFileError  # type: ignore[attr-defined]
sys.modules.setdefault("tlkit.backbones", _pkg)
