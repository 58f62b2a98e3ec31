"""The top-level package: cheap to import, public names resolve lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tlkit


def test_import_tlkit_loads_no_tensorflow() -> None:
    code = "import sys, tlkit; tlkit.DatasetSplitter(); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_names_resolve() -> None:
    from tlkit.augment import AugmentationPipeline
    from tlkit.compare import ModelComparator

    assert tlkit.AugmentationPipeline is AugmentationPipeline
    assert tlkit.ModelComparator is ModelComparator
    assert {"AugmentationPipeline", "ModelComparator", "DatasetSplitter"} <= set(dir(tlkit))
    assert set(tlkit.__all__) <= set(dir(tlkit))
    # no helpers of the module itself (typing names, the lazy table, importlib)
    assert not {"Any", "TYPE_CHECKING", "importlib", "_LAZY", "annotations"} & set(dir(tlkit))
    assert set(dir(tlkit)) == set(tlkit.__all__)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'FineTunr'"):
        tlkit.FineTunr  # noqa: B018
