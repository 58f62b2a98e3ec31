"""Data: finding, checking and splitting image files.

The public names are re-exported here from private modules:
:class:`DatasetSplitter`, :class:`Split`, :class:`SplitPart`, :class:`Sample`
and :class:`SkippedFile`; cross-validation folds come from :func:`make_folds`,
nested training subsets (learning curves) from :func:`nested_subsets`, and the
near-duplicate search the splitter and the audit share from
:func:`perceptual_hashes`, :func:`hamming_pairs` and :func:`cosine_pairs`.

A few names are importable from here for tlkit's own layers (the audit, the
command line, augmentation previews) but are not part of the public API and are
left out of ``__all__``: ``decode_errors``, ``inspect_file``, ``DEFAULT_HASH_SIZE``,
``DEFAULT_INNER_VAL``, ``CLASS_WEIGHT_MODES`` and ``without_autotune_thread`` (for
fine-tuning and comparing).
"""

from tlkit.data._folds import DEFAULT_INNER_VAL as DEFAULT_INNER_VAL
from tlkit.data._folds import Folds, make_folds, nested_subsets
from tlkit.data._neardup import DEFAULT_HASH_SIZE as DEFAULT_HASH_SIZE
from tlkit.data._neardup import (
    DEFAULT_HASH_THRESHOLD,
    cosine_pairs,
    hamming_pairs,
    perceptual_hash,
    perceptual_hashes,
)
from tlkit.data._pipeline import decode_errors as decode_errors
from tlkit.data._pipeline import to_dataset
from tlkit.data._pipeline import without_autotune_thread as without_autotune_thread
from tlkit.data._sample import Sample
from tlkit.data._scan import SKIP_CODES, SUPPORTED_FORMATS, SkippedFile
from tlkit.data._scan import inspect_file as inspect_file
from tlkit.data._split import Split, SplitPart
from tlkit.data._splitter import DatasetSplitter
from tlkit.data._weights import CLASS_WEIGHT_MODES as CLASS_WEIGHT_MODES
from tlkit.data._weights import class_weights

__all__ = [
    "DEFAULT_HASH_THRESHOLD",
    "SKIP_CODES",
    "SUPPORTED_FORMATS",
    "DatasetSplitter",
    "Folds",
    "Sample",
    "SkippedFile",
    "Split",
    "SplitPart",
    "class_weights",
    "cosine_pairs",
    "hamming_pairs",
    "make_folds",
    "nested_subsets",
    "perceptual_hash",
    "perceptual_hashes",
    "to_dataset",
]
