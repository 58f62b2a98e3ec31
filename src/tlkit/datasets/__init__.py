"""Datasets: generated images for tests, and the real ELPV solar-cell images for examples.

Examples
--------
>>> import tempfile
>>> from tlkit.datasets import make_synthetic_dataset
>>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 2, "b": 2}, image_size=8)
>>> sorted(p.name for p in root.iterdir())
['a', 'b']
"""

from tlkit.datasets._elpv import ELPV_CLASS_NAMES, elpv_samples
from tlkit.datasets._synthetic import make_synthetic_dataset, synthetic_image

__all__ = ["ELPV_CLASS_NAMES", "elpv_samples", "make_synthetic_dataset", "synthetic_image"]
