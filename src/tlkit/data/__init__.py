"""Data: finding, checking and splitting image files.

The public names are re-exported here from private modules:
:class:`DatasetSplitter`, :class:`Split`, :class:`SplitPart`, :class:`Sample`
and :class:`SkippedFile`; cross-validation folds come from :func:`make_folds`.
"""

from tlkit.data._folds import Folds, make_folds
from tlkit.data._part import SplitPart
from tlkit.data._pipeline import decode_errors, to_dataset
from tlkit.data._sample import Sample
from tlkit.data._scan import SUPPORTED_FORMATS, SkippedFile, inspect_file
from tlkit.data._split import Split
from tlkit.data._splitter import DatasetSplitter, apportion
from tlkit.data._weights import class_weights

__all__ = [
    "SUPPORTED_FORMATS",
    "DatasetSplitter",
    "Folds",
    "Sample",
    "SkippedFile",
    "Split",
    "SplitPart",
    "apportion",
    "class_weights",
    "decode_errors",
    "inspect_file",
    "make_folds",
    "to_dataset",
]
