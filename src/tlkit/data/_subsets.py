"""Stratified, leak-free subsets of a list of samples, made with the splitter's own rules.

Cross-validation and learning curves cut a list of samples into parts: K folds,
an inner validation carve-out, nested training fractions. Each cut regroups the
samples with the splitter's grouping (:func:`~tlkit.data._grouping.group_samples`:
identical content and the ``group`` key each sample carries) and places whole
groups with the splitter's assignment (:func:`~tlkit.data._grouping.apportion`,
:func:`~tlkit.data._grouping.assign_groups`), so a group never straddles two parts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from tlkit.data._grouping import apportion, assign_groups, group_samples
from tlkit.data._sample import Sample

__all__ = ["carve", "derived_seed", "leak_free_groups", "nested_subsets", "partition"]


def derived_seed(seed: int, *parts: object) -> int:
    """A seed for one sub-task (``seed`` and a label such as ``("val", repeat, fold)``).

    Examples
    --------
    >>> derived_seed(0, "val", 0, 1) == derived_seed(0, "val", 0, 1) != derived_seed(0, "val", 0, 2)
    True
    """
    text = "\x00".join(map(str, (seed, *parts)))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=6).digest(), "big")


def leak_free_groups(samples: Sequence[Sample]) -> list[list[Sample]]:
    """The samples as the splitter's leak-free groups.

    Files with identical content, and files sharing a non-empty ``group`` key
    (set by the splitter for duplicates, ``groups=`` matches and
    near-duplicates, or read from a manifest), form one group.

    Examples
    --------
    >>> a, b = Sample("x/1.png", 0, "h1", group="g"), Sample("x/2.png", 0, "h2", group="g")
    >>> [[s.path for s in g] for g in leak_free_groups([a, b, Sample("y/3.png", 1, "h3")])]
    [['x/1.png', 'x/2.png'], ['y/3.png']]
    """
    key = {s.path: (s.group or None) for s in samples}
    return group_samples(list(samples), key.get)


def _labels(samples: Sequence[Sample], num_classes: int) -> np.ndarray:
    return np.bincount(
        np.asarray([s.label for s in samples], dtype=np.int64), minlength=num_classes
    ).astype(np.int64)


def partition(
    samples: Sequence[Sample],
    num_classes: int,
    fractions: Sequence[float],
    seed: int,
    names: Sequence[str],
) -> dict[str, tuple[Sample, ...]]:
    """Cut ``samples`` into stratified parts of the given shares, whole groups only.

    Each class's count per part is its exact share rounded (controlled
    rounding, :func:`~tlkit.data.apportion`); whole groups then fill those
    targets (:func:`~tlkit.data._grouping.assign_groups`). Parts come back
    sorted by path.

    Examples
    --------
    >>> s = [Sample(f"{c}/{i}.png", k, f"{c}{i}") for k, c in enumerate("ab") for i in range(4)]
    >>> parts = partition(s, 2, [0.5, 0.5], seed=0, names=["f0", "f1"])
    >>> [sorted(x.label for x in p) for p in parts.values()]
    [[0, 0, 1, 1], [0, 0, 1, 1]]
    """
    counts = _labels(samples, num_classes)
    targets = apportion(counts, np.asarray(fractions, dtype=np.float64))
    return _place(samples, targets, seed, names)


def _place(
    samples: Sequence[Sample], targets: np.ndarray, seed: int, names: Sequence[str]
) -> dict[str, tuple[Sample, ...]]:
    assigned = assign_groups(leak_free_groups(samples), targets, seed, names=tuple(names))
    given = {s.path: s for s in samples}  # the samples as given (grouping rewrote their keys)
    return {
        n: tuple(sorted((given[s.path] for s in assigned[n]), key=lambda s: s.path)) for n in names
    }


def carve(
    samples: Sequence[Sample], num_classes: int, share: float, seed: int
) -> tuple[tuple[Sample, ...], tuple[Sample, ...]]:
    """Split off a stratified, group-safe ``share`` of ``samples``: ``(rest, carved)``.

    Examples
    --------
    >>> s = [Sample(f"{c}/{i}.png", k, f"{c}{i}") for k, c in enumerate("ab") for i in range(10)]
    >>> rest, val = carve(s, 2, 0.2, seed=0)
    >>> len(rest), sorted(x.label for x in val)
    (16, [0, 0, 1, 1])
    """
    parts = partition(samples, num_classes, [1.0 - share, share], seed, ("rest", "carved"))
    return parts["rest"], parts["carved"]


def nested_subsets(
    samples: Sequence[Sample],
    num_classes: int,
    fractions: Sequence[float],
    seed: int,
) -> list[tuple[Sample, ...]]:
    """Nested, stratified, group-safe subsets: one per fraction, each inside the next.

    ``fractions`` increase in ``(0, 1]``. Each subset holds about its fraction
    of every class (the exact share of the full list, rounded; at least one
    image of each class present), cut out of the next larger subset, so a
    smaller subset is always contained in a larger one; a fraction of ``1``
    is the whole list.

    Examples
    --------
    >>> s = [Sample(f"{c}/{i}.png", k, f"{c}{i}") for k, c in enumerate("ab") for i in range(10)]
    >>> subs = nested_subsets(s, 2, [0.2, 0.6, 1.0], seed=0)
    >>> [len(x) for x in subs], set(subs[0]) <= set(subs[1]) <= set(subs[2])
    ([4, 12, 20], True)
    """
    counts = _labels(samples, num_classes)
    parent: tuple[Sample, ...] = tuple(sorted(samples, key=lambda s: s.path))
    out: list[tuple[Sample, ...]] = []
    for f in sorted(fractions, reverse=True):
        if f >= 1.0:
            out.append(parent)
            continue
        want = apportion(counts, np.asarray([f, 1.0 - f]))[:, 0]
        want = np.maximum(want, np.minimum(counts, 1))  # every class present keeps an image
        have = _labels(parent, num_classes)
        want = np.minimum(want, have)
        targets = np.stack([want, have - want], axis=1)
        parent = _place(parent, targets, seed, ("keep", "drop"))["keep"]
        out.append(parent)
    return out[::-1]
