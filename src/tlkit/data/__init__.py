"""Data: finding, checking and splitting image files.

The public names are re-exported here from private modules:
:class:`DatasetSplitter`, :class:`Split`, :class:`SplitPart`, :class:`Sample`
and :class:`SkippedFile`.
"""

from tlkit.data._sample import Sample, SplitPart
from tlkit.data._scan import SUPPORTED_FORMATS, SkippedFile, inspect_file
from tlkit.data._split import Split
from tlkit.data._splitter import DatasetSplitter, apportion

__all__ = [
    "SUPPORTED_FORMATS",
    "DatasetSplitter",
    "Sample",
    "SkippedFile",
    "Split",
    "SplitPart",
    "apportion",
    "inspect_file",
]
