"""Evidence for small data: cross-validation and learning curves.

:func:`cross_validate` trains a new model per fold on stratified, leak-free
folds (:func:`tlkit.data.make_folds`) and predicts every image once, out of
fold; :meth:`CVResult.report` compares recipes on those predictions with the
paired tests of :mod:`tlkit.compare`. :func:`learning_curve` trains on nested
fractions of the training data and says whether more photos are likely to help.

Examples
--------
Any object with ``fit`` and ``predict`` works (a FineTuner is the usual one);
this one predicts the class it saw most:

>>> import tempfile
>>> import numpy as np
>>> from tlkit.datasets import make_synthetic_dataset
>>> class Majority:
...     def fit(self, train, val=None):
...         self.p = np.bincount(train.labels, minlength=train.num_classes) / len(train)
...     def predict(self, part):
...         return np.tile(self.p, (len(part), 1))
>>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 12, "b": 8}, image_size=8)
>>> cv = cross_validate(Majority, root, folds=4, n_boot=100, verbose=False)
>>> round(cv.pooled_metrics["balanced_accuracy"], 3), cv.oof_probabilities.shape
(0.5, (20, 2))
"""

from tlkit.evaluate._curve import CurvePoint, LearningCurve, PowerLawFit, learning_curve
from tlkit.evaluate._cv import CVResult, compare_cv, cross_validate
from tlkit.evaluate._model import Estimator

__all__ = [
    "CVResult",
    "CurvePoint",
    "Estimator",
    "LearningCurve",
    "PowerLawFit",
    "compare_cv",
    "cross_validate",
    "learning_curve",
]
