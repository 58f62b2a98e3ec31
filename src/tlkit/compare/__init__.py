"""Comparing models honestly: baseline, intervals, significance and cost.

:class:`ModelComparator` collects the predictions of several models on one
test set and :meth:`~ModelComparator.run` returns a :class:`ComparisonReport`.
The statistics it uses are public too: :func:`bootstrap_ci` (stratified
bootstrap percentile intervals), :func:`mcnemar_exact` (McNemar's exact test),
:func:`holm` (Holm's adjustment for several comparisons), and
:func:`expected_calibration_error` with :func:`reliability_bins` (how far a
model's confidence is from its accuracy).

Importing this module loads numpy, scikit-learn and SciPy (matplotlib when a
plot is drawn), not TensorFlow: Keras is only used on models that are already
Keras models.

Examples
--------
>>> from tlkit.compare import ModelComparator
>>> report = (
...     ModelComparator([0, 0, 0, 1, 1, 2], ["a", "b", "c"], n_boot=100)
...     .add_predictions("m", [0, 0, 0, 1, 0, 2])
...     .run()
... )
>>> round(report["m"].metrics["balanced_accuracy"], 3)
0.833
"""

from tlkit._calibration import Reliability, expected_calibration_error, reliability_bins
from tlkit.compare._comparator import ModelComparator
from tlkit.compare._gallery import ConfusedPair, Mistake, MistakeGallery
from tlkit.compare._report import SCHEMA, ComparisonReport, Cost, ModelResult, PairwiseResult
from tlkit.compare._stats import (
    BootstrapCI,
    McNemarResult,
    bootstrap_ci,
    holm,
    mcnemar_exact,
)
from tlkit.compare._verdict import ECE_WARNING

__all__ = [
    "ECE_WARNING",
    "SCHEMA",
    "BootstrapCI",
    "ComparisonReport",
    "ConfusedPair",
    "Cost",
    "McNemarResult",
    "Mistake",
    "MistakeGallery",
    "ModelComparator",
    "ModelResult",
    "PairwiseResult",
    "Reliability",
    "bootstrap_ci",
    "expected_calibration_error",
    "holm",
    "mcnemar_exact",
    "reliability_bins",
]
