"""The boundary cache: train the top layer groups on cached outputs of the frozen part below.

A phase that trains the top ``k`` layer groups leaves everything below them
frozen: BatchNormalization there runs in inference mode and nothing changes, so
the output of the frozen part (the *boundary* tensor) is the same every epoch.
It is computed once per image (and per view of a finite
:class:`~tlkit.augment.Views` set), stored as float16 in memory within the
FineTuner's ``memory_budget_mb`` (a numpy memory-mapped file in a temporary
folder beyond it, removed when the phase ends), and the phase trains a
sub-model, the top groups + pooling + head, built from the *same* layer
objects as ``FineTuner.model``, so the weights train in place.

The cut is a point of the backbone's functional graph: the last point at or
below the lowest trainable group where exactly one feature map crosses from the
frozen layers to the rest (a block output in residual networks), alongside any
number of pooled vectors (the frozen blocks' pooled features of a backbone built
with ``pooling="blocks"``), each cached as its own array. When there is none,
or the graph cannot be read, the phase runs on images and the reason is logged.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from tlkit.backbones import Backbone
    from tlkit.finetune._data import Data
    from tlkit.finetune._tuner import FineTuner
    from tlkit.finetune.schedules import Phase

__all__ = [
    "CACHE_DTYPE",
    "BoundaryPhase",
    "Cut",
    "Overflow",
    "cached_views",
    "fill_views",
    "find_cut",
    "plan_boundary",
    "predict_rows",
    "shared_cut",
    "view_batches",
]

#: Storage type of cached boundary features. float16 halves the memory of float32
#: (EfficientNet-Lite's ReLU6 outputs lie in [0, 6]); a batch that overflows it
#: sends the phase back to images (logged). Tests set float32 to compare tightly.
CACHE_DTYPE: Any = np.float16

# Layers that act differently in training: below the cut they would run in inference
# mode, which the image path does not, so a cut above one of them is refused.
_RANDOM_LAYERS = (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout",
)  # fmt: skip


@dataclass
class Cut:
    """Where a backbone is cut: ``bottom`` (images -> boundary) and ``top`` (boundary -> features).

    ``tensors``: what crosses the cut, the feature map first, then any pooled
    vectors; ``bottom`` outputs them in that order and ``top`` takes them so.
    """

    tensors: list[Any]
    bottom: keras.Model
    top: keras.Model
    where: str

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(d) for d in t.shape[1:]) for t in self.tensors]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the feature map, per image."""
        return self.shapes[0]


def _flat(value: Any) -> list[Any]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flat(v)]
    return [] if value is None else [value]


def _below(
    p: int, first: int, ins: list[list[int]], producer: dict[int, int], model_in: set[int],
    trainable: set[int],
) -> set[int]:  # fmt: skip
    """Indices of the operations below a cut before ``ops[p]``: those before it, and any
    listed from the first trainable one (``ops[first]``) on that is not trainable and needs
    only the model's inputs and outputs from below (the pooling of a frozen block that
    ``pool_blocks`` adds, which the graph lists at its end)."""
    below = set(range(p))
    for i in range(first, len(ins)):
        if (
            i not in trainable
            and ins[i]
            and all(t in model_in or producer[t] in below for t in ins[i])
        ):
            below.add(i)
    return below


def find_cut(backbone: Backbone, k: int) -> Cut | str:
    """The cut below the top ``k`` layer groups of ``backbone``, or why there is none."""
    import keras

    model, groups = backbone.model, backbone.layer_groups
    if not 0 < k < len(groups):
        return f"{k} of {len(groups)} groups train: there is no frozen part below them to cache"
    trainable = {id(layer) for g in groups[len(groups) - k :] for layer in g}
    try:
        ops = [op for op in model.operations if not isinstance(op, keras.layers.InputLayer)]
        ins = [[id(t) for t in _flat(op.input)] for op in ops]
        outs = [[id(t) for t in _flat(op.output)] for op in ops]
        model_in = {id(t) for t in _flat(model.inputs)}
        model_out = {id(t) for t in _flat(model.outputs)}
    except Exception as exc:  # a layer called more than once, a subclassed model...
        return f"the backbone is not a plain functional graph ({type(exc).__name__}: {exc})"
    producer = {t: i for i, o in enumerate(outs) for t in o}
    if any(t not in producer and t not in model_in for i in ins for t in i):
        return "the backbone's graph has inputs this reader does not know"
    if any(producer.get(t, -1) >= i for i, tensors in enumerate(ins) for t in tensors):
        return "the backbone's operations are not in topological order"
    users: dict[int, list[int]] = {t: [] for t in [*producer, *model_in]}
    for i, tensors in enumerate(ins):
        for t in tensors:
            users[t].append(i)
    first = min((i for i, op in enumerate(ops) if id(op) in trainable), default=None)
    if first is None:
        return "the trainable groups' layers are not in the backbone's graph"
    by_id: dict[int, Any] = {id(t): t for t in _flat(model.inputs)}
    by_id.update({id(t): t for o in ops for t in _flat(o.output)})
    trainable_ops = {i for i, op in enumerate(ops) if id(op) in trainable}
    for p in range(first, 0, -1):  # cut between ops[p - 1] and ops[p]
        below = _below(p, first, ins, producer, model_in, trainable_ops)
        crossing = [
            t for t in users
            if (t in model_in or producer[t] in below)
            and (t in model_out or any(u not in below for u in users[t]))
        ]  # fmt: skip
        maps = [t for t in crossing if len(by_id[t].shape) != 2]  # the rest: pooled vectors
        if len(maps) == 1 and maps[0] not in model_in:
            crossing = maps + [t for t in crossing if t != maps[0]]
            break
    else:
        return (
            f"no single feature map separates the frozen layers from group {groups[-k].name!r} "
            "(more than one crosses the boundary)"
        )
    frozen = [ops[i] for i in sorted(below)]
    if not any(op.weights for op in frozen):
        return f"nothing with weights lies below group {groups[-k].name!r}: nothing to save"
    random = [
        op.name for op in frozen
        if type(op).__name__ in _RANDOM_LAYERS and getattr(op, "rate", 0) > 0
    ]  # fmt: skip
    if random:
        return f"random layers below the cut ({', '.join(random)}) act differently in training"
    crossed: list[Any] = [by_id[t] for t in crossing]
    if any(d is None for t in crossed for d in t.shape[1:]):
        return f"the boundary tensor has an unknown shape {tuple(crossed[0].shape)}"
    one = crossed[0] if len(crossed) == 1 else crossed
    try:
        bottom = keras.Model(model.inputs, one, name=f"{model.name}_below_cut")
        top = keras.Model(one, model.outputs[0], name=f"{model.name}_above_cut")
    except Exception as exc:
        return f"Keras could not split the backbone there ({type(exc).__name__}: {exc})"
    where = f"output of {ops[producer[crossing[0]]].name!r}"
    if len(crossed) > 1:
        where += f" and {len(crossed) - 1} pooled vector{'s' * (len(crossed) > 2)} from below"
    return Cut(crossed, bottom, top, where)


class FeatureStore:
    """``rows`` cached cut outputs: numpy arrays in memory, or memory-mapped temp files.

    One array per tensor crossing the cut (``arrays``); ``array`` is the first,
    the feature map.
    """

    def __init__(
        self, rows: int, shapes: list[tuple[int, ...]], budget_bytes: int, what: str
    ) -> None:
        dtype = np.dtype(CACHE_DTYPE)
        self.nbytes = sum(rows * math.prod(shape) * dtype.itemsize for shape in shapes)
        self.folder: str | None = None
        if self.nbytes <= budget_bytes:
            self.arrays: list[Any] = [np.empty((rows, *shape), dtype) for shape in shapes]
        else:
            self.folder = tempfile.mkdtemp(prefix="tlkit-boundary-")
            # removed even if the phase never reaches close() (an error before training)
            weakref.finalize(self, shutil.rmtree, self.folder, True)
            self.arrays = [
                np.memmap(
                    f"{self.folder}/{what}{i}.f{dtype.itemsize * 8}",
                    dtype=dtype, mode="w+", shape=(rows, *shape),
                )
                for i, shape in enumerate(shapes)
            ]  # fmt: skip

    @property
    def array(self) -> Any:
        """The cached feature maps (None once closed)."""
        return self.arrays[0] if self.arrays else None

    @property
    def where(self) -> str:
        return "in memory" if self.folder is None else f"memory-mapped in {self.folder}"

    def close(self) -> None:
        self.arrays = []
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


class Overflow(Exception):
    """A cached output is not finite in the cache's type (float16 overflows where float32 does not)."""


def _images(tuner: FineTuner, data: Data) -> Any:
    if data.part is not None:
        return data.part.to_dataset(tuner.image_size, batch_size=tuner.batch_size, shuffle=False)
    return data.dataset


def _listed(arrays: Any) -> list[Any]:
    return list(arrays) if isinstance(arrays, (list, tuple)) else [arrays]


def fill_views(arrays: Any, model: Any, tuner: FineTuner, data: Data, views: Any) -> None:
    """Row ``v * n + i`` of ``arrays`` gets ``model``'s output for image ``i`` under view ``v``.

    ``arrays``: one array, or a list of them for a model with as many outputs.
    ``views`` is a :class:`~tlkit.augment.Views` set or None (one row per image).
    Raises ``Overflow`` when an output is not finite once stored in its array's
    type (float16 overflows where float32 does not).
    """
    arrays = _listed(arrays)
    n = len(data)
    count = len(views) if views is not None else 1
    start = 0
    for batch in _images(tuner, data).as_numpy_iterator():
        x = batch[0] if isinstance(batch, tuple) else batch
        for v in range(count):
            xv = x if views is None else np.asarray(views.view(x, v))
            for array, out in zip(arrays, _listed(model.predict_on_batch(xv)), strict=True):
                out = np.asarray(out).astype(array.dtype)
                if not np.isfinite(out).all():
                    raise Overflow
                array[v * n + start : v * n + start + len(x)] = out
        start += len(x)
    if start != n:
        raise Overflow  # pragma: no cover - a dataset that changed length between passes


def view_batches(
    arrays: Any, labels: np.ndarray, views: int, batch_size: int, seed: int | None
) -> Any:
    """Shuffled batches of cached rows; each epoch takes one view per image, drawn at random.

    ``arrays`` (one array, or a list: a tuple of inputs per batch) hold ``views``
    blocks of ``len(labels)`` rows (row ``v * n + i``: image ``i`` under view
    ``v``); batches come out as float32. Seeded: the same seed gives the same
    order and views, epoch by epoch.
    """
    import tensorflow as tf

    many = isinstance(arrays, (list, tuple)) and len(arrays) > 1
    arrays = _listed(arrays)
    n = len(labels)
    steps = -(-n // batch_size)
    rng = np.random.default_rng(seed)

    def epoch() -> Any:
        order = rng.permutation(n)
        view = rng.integers(views, size=n) if views > 1 else np.zeros(n, np.int64)
        for s in range(steps):
            idx = order[s * batch_size : (s + 1) * batch_size]
            rows = [a[view[idx] * n + idx].astype(np.float32) for a in arrays]
            yield (tuple(rows) if many else rows[0]), labels[idx]

    inputs = [tf.TensorSpec((None, *a.shape[1:]), tf.float32) for a in arrays]
    spec = (tuple(inputs) if many else inputs[0], tf.TensorSpec((None,), tf.int32))
    ds = tf.data.Dataset.from_generator(epoch, output_signature=spec)
    return ds.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(1)


class BoundaryPhase:
    """The cached boundary features of one phase, and the sub-model that trains on them."""

    def __init__(self, tuner: FineTuner, cut: Cut, train: Data, val: Data | None, views: Any):
        self.tuner, self.cut, self.views = tuner, cut, views
        #: filled before its phase, with the frozen phases' features (see :func:`shared_cut`)
        self.shared = False
        self.n_views = len(views) if views is not None else 1
        self.labels = train.labels().astype(np.int32)
        budget = tuner.memory_budget_mb * 2**20
        self.stores: list[FeatureStore] = []
        try:
            self.train = self._store(train, views, budget, "train")
            budget = max(0, budget - self.train.nbytes)
            self.val = None if val is None else self._store(val, None, budget, "val")
        except BaseException:
            self.close()
            raise

    def _store(self, data: Data, views: Any, budget: int, what: str) -> FeatureStore:
        """The boundary outputs of ``data``, one block of rows per view (validation: none)."""
        count = len(views) if views is not None else 1
        store = FeatureStore(len(data) * count, self.cut.shapes, budget, what)
        self.stores.append(store)
        fill_views(store.arrays, self.cut.bottom, self.tuner, data, views)
        return store

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.stores)

    def model(self, head_layers: list[Any], name: str) -> Any:
        """Boundary -> probabilities, sharing the backbone's top layers and the head."""
        import keras

        inputs = [
            keras.Input(t.shape[1:], dtype=t.dtype, name=f"boundary{'_' * bool(i)}{i or ''}")
            for i, t in enumerate(self.cut.tensors)
        ]
        x = self.cut.top(inputs[0] if len(inputs) == 1 else inputs)
        for layer in head_layers:
            x = layer(x)
        return keras.Model(inputs, x, name=name)

    def train_dataset(self, seed: int | None) -> Any:
        """Shuffled batches; each epoch takes one view per image, drawn at random (seeded)."""
        return view_batches(
            self.train.arrays, self.labels, self.n_views, self.tuner.batch_size, seed
        )

    def val_probabilities(self, model: Any) -> Any:
        if self.val is None:  # pragma: no cover - asked for only in a fit with validation data
            raise RuntimeError("this phase has no validation features; please report this")
        arrays, bs = self.val.arrays, self.tuner.batch_size
        return lambda: predict_rows(model, arrays, bs)

    def close(self) -> None:
        """Free the memory and remove any memory-mapped file."""
        for store in self.stores:
            store.close()


def cached_views(aug: Any) -> Any:
    """``aug`` when it is a :class:`~tlkit.augment.Views` set that changes images, else None.

    Caches keep one row per image and view of such a set; the identity alone needs none.
    """
    from tlkit.augment import Views

    if isinstance(aug, Views) and tuple(aug.names) != ("identity",):
        return aug
    return None


def _why_not(tuner: FineTuner, train: Data, aug: Any) -> str | None:
    from tlkit.augment import Views

    if tuner.cache_features is False:
        return "cache_features=False"
    if tuner.strategy is not None and tuner.cache_features == "auto":
        return "a distribution strategy is set (pass cache_features=True to cache anyway)"
    if not train.is_part and tuner.cache_features is not True:
        return (
            "train is a tf.data.Dataset, which may augment or shuffle on its own "
            "(pass cache_features=True to cache one pass over it)"
        )
    if aug is not None and not isinstance(aug, Views):
        return "random augmentation runs on images (a finite tlkit.augment.Views set can be cached)"
    return None


def shared_cut(
    tuner: FineTuner, phases: list[Phase], train: Data, aug: Any
) -> tuple[int, Cut] | None:
    """The first phase that trains some groups and its cut, when frozen phases come before it.

    Those frozen phases need the backbone's features of every image (and view);
    the phase after them, the output of the frozen part below its cut. Both come
    from one pass: the boundary cache is filled first and the features are
    computed from it by the layers above the cut (:func:`predict_rows`), so the
    frozen part runs once per image and view instead of twice. None when the
    phase cannot use a boundary cache (it trains every group, random
    augmentation, no single-tensor cut).
    """
    first = next((i for i, p in enumerate(phases) if not p.frozen), None)
    if first is None or first == 0:
        return None
    k = phases[first].unfrozen
    if not 0 < k < len(tuner.backbone.layer_groups) or _why_not(tuner, train, aug) is not None:
        return None
    cut = find_cut(tuner.backbone, k)
    return None if isinstance(cut, str) else (first, cut)


def predict_rows(model: Any, arrays: Any, batch_size: int) -> np.ndarray:
    """``model``'s outputs for the cached rows of ``arrays`` (float16 or float32), batch by batch.

    ``arrays``: one array, or a list of them for a model with as many inputs.
    With ``cut.top`` as the model: the backbone's pooled features of boundary rows.
    """
    many = isinstance(arrays, (list, tuple)) and len(arrays) > 1
    arrays = _listed(arrays)

    def rows(i: int) -> Any:
        batch = [a[i : i + batch_size].astype(np.float32) for a in arrays]
        return batch if many else batch[0]

    return np.concatenate(
        [np.asarray(model.predict_on_batch(rows(i))) for i in range(0, len(arrays[0]), batch_size)]
    )


def plan_boundary(
    tuner: FineTuner, index: int, phase: Phase, train: Data, val: Data | None, aug: Any,
    filled: BoundaryPhase | None = None,
) -> BoundaryPhase | None:  # fmt: skip
    """The boundary cache for a phase that trains some (not all) groups, or None (logged).

    ``filled``: the cache the frozen phases before this one filled (:func:`shared_cut`).
    """
    number = f"phase {index + 1} ({phase.name!r})"
    if filled is not None:
        boundary, cut, views = filled, filled.cut, filled.views
    else:
        why = _why_not(tuner, train, aug)
        found = find_cut(tuner.backbone, phase.unfrozen) if why is None else why
        if isinstance(found, str):
            if 0 < phase.unfrozen < len(tuner.backbone.layer_groups):  # else no cache applies
                tuner.log(f"tlkit: {number} trains on images: {found}")
            return None
        cut, views = found, cached_views(aug)
        try:
            boundary = BoundaryPhase(tuner, cut, train, val, views)
        except Overflow:
            tuner.log(
                f"tlkit: {number} trains on images: boundary features overflow "
                f"{np.dtype(CACHE_DTYPE).name}"
            )
            return None
    groups = tuner.backbone.layer_groups[len(tuner.backbone.layer_groups) - phase.unfrozen :]
    where = {s.where for s in boundary.stores}
    tuner.log(
        f"tlkit: {number} trains groups {', '.join(g.name for g in groups)} on cached boundary "
        f"features ({cut.where}, shape {cut.shape}"
        + (f", {boundary.n_views} view{'s' * (boundary.n_views > 1)}" if views is not None else "")
        + f"; {boundary.nbytes / 2**20:.1f} MB, {' and '.join(sorted(where))}"
        + ("; filled with the frozen phases' features" if boundary.shared else "")
        + ")"
    )
    return boundary
