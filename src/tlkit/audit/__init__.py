"""Data audit: near-duplicate leaks, likely label errors, and the small stuff, before training.

:func:`audit` takes a :class:`~tlkit.data.Split`, a split manifest or a dataset
folder and returns an :class:`AuditReport`: near-duplicate pairs across and
within the train / val / test parts (identical bytes, perceptual hashes, and
backbone features when there is a backbone), likely label errors (cleanlab's
confident learning on out-of-sample probabilities: ``oof=`` from
:func:`tlkit.evaluate.cross_validate`, or a cross-validated linear probe),
class imbalance, small images, identical files under several classes and
unreadable files. ``report.save(dir)`` writes a self-contained HTML page with
thumbnails of everything flagged.

Examples
--------
``audit("photos.split.json")`` audits a split with backbone features; here a
generated dataset, with thumbnails as features instead of a backbone (seconds,
no weights; thumbnails do not tell images apart well enough for near-duplicates,
so only the hashes look for those):

>>> import tempfile
>>> from tlkit.audit import audit
>>> from tlkit.data import DatasetSplitter
>>> from tlkit.datasets import make_synthetic_dataset
>>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 20, "b": 20}, seed=0)
>>> split = DatasetSplitter(seed=0, progress=False).split(root)
>>> thumbs = lambda x: x[:, ::8, ::8].reshape(len(x), -1).astype(float)
>>> report = audit(split, features=thumbs, image_size=32, feature_duplicates=False)
>>> report.num_images
40
>>> sorted(p.name for p in report.save(tempfile.mkdtemp()))
['audit.html', 'audit.json', 'audit.md']
"""

from tlkit.audit._audit import DEFAULT_FEATURE_THRESHOLD, audit
from tlkit.audit._report import SCHEMA, AuditReport, LabelIssue, NearDuplicate, SmallImage

__all__ = [
    "DEFAULT_FEATURE_THRESHOLD",
    "SCHEMA",
    "AuditReport",
    "LabelIssue",
    "NearDuplicate",
    "SmallImage",
    "audit",
]
