"""Running a schedule: phases, feature caching, per-group optimizers, checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tlkit.data import without_autotune_thread
from tlkit.errors import ScheduleError
from tlkit.finetune import _callbacks as cb
from tlkit.finetune import _saving
from tlkit.finetune._boundary import (
    BoundaryPhase,
    Cut,
    Overflow,
    cached_views,
    fill_views,
    plan_boundary,
    predict_rows,
    shared_cut,
    view_batches,
)
from tlkit.finetune._data import Data
from tlkit.finetune._devices import strategy_scope
from tlkit.finetune._model import head_model
from tlkit.finetune._optim import GroupOptimizer, PhaseRate, make_optimizer
from tlkit.finetune._probe import LinearProbe, fit_probe, start_head
from tlkit.finetune.schedules import Phase
from tlkit.metrics import classification_metrics

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.finetune._tuner import FineTuner

__all__ = ["decide_cache", "run_schedule"]

STATE_FILE = "state.json"
CLASSIFIER = "classifier"


def _augment(tuner: FineTuner) -> Any:
    if tuner.augment is None:
        return None
    from tlkit.augment import AugmentationPipeline

    if isinstance(tuner.augment, str):
        return AugmentationPipeline.preset(tuner.augment, seed=tuner.seed)
    return tuner.augment


def decide_cache(tuner: FineTuner, train: Data, phases: list[Phase]) -> tuple[bool, str]:
    """Whether frozen phases train on cached backbone features, and why (logged)."""
    if not any(p.frozen for p in phases):
        return False, "no frozen phase: nothing to cache"
    if tuner.cache_features is False:
        return False, "cache_features=False: frozen phases run the backbone every epoch"
    if tuner.strategy is not None and tuner.cache_features == "auto":
        return False, "a distribution strategy is set: frozen phases run the backbone every epoch"
    if not train.is_part:
        if tuner.cache_features is True:
            return True, "cache_features=True: features of one pass over the train dataset"
        return False, (
            "train is a tf.data.Dataset, which may augment or shuffle on its own: frozen phases "
            "run the backbone every epoch (pass cache_features=True to compute features once)"
        )
    views = cached_views(tuner.augment)
    if views is not None:
        return True, (
            f"frozen phases train the head on backbone features of each of the {len(views)} "
            f"view(s) {views.names}, computed once (each epoch draws one view per image)"
        )
    if tuner.cache_features is True or tuner.augment is None:
        return True, "frozen phases train the head on backbone features computed once"
    if any(not p.frozen for p in phases):
        return True, (
            "frozen phases train the head on features of unaugmented images computed once; "
            "augmentation starts with the first phase that trains the backbone "
            "(cache_features=False augments the frozen phases too, at the cost of running the "
            "backbone every epoch)"
        )
    return False, "augmentation is on and no phase trains the backbone: features are not cached"


def run_schedule(
    tuner: FineTuner, train: Data, val: Data | None, user_callbacks: list[Any]
) -> cb.TrainingHistory:
    import keras

    if tuner.seed is not None:
        keras.utils.set_random_seed(tuner.seed)
    phases = tuner.phases
    k = len(tuner._known_class_names())
    aug = _augment(tuner)
    onehot = tuner.label_smoothing > 0 or bool(aug is not None and aug.mixes_labels)
    class_weight = tuner.class_weight_dict(train)
    cache, why = decide_cache(tuner, train, phases)
    tuner.log(f"tlkit: {why}")
    if val is None and (tuner.restore_best or tuner.early_stopping):
        tuner.log("tlkit: no validation data: every phase keeps its last epoch")

    state = _load_state(tuner, train) if tuner.resume_dir else None
    history = state["history"] if state else cb.TrainingHistory()
    tuner._resumed = state is not None
    ctx = _Context(tuner, train, val, aug, onehot, k)
    if cache:
        ctx.shared = shared_cut(tuner, phases, train, aug)
    if state is None and tuner.schedule.head_start == "probe":
        _start_from_probe(ctx, phases)
    restore = state  # optimizer state goes back in at the first phase that runs
    best: _Best | None = None  # over all phases
    try:
        for index, phase in enumerate(phases):
            done_in_phase = 0
            if state is not None:
                if index < state["phase_index"] or (
                    index == state["phase_index"] and state["phase_done"]
                ):
                    continue
                if index == state["phase_index"]:
                    done_in_phase = state["epochs_in_phase"]
            kept = _run_phase(
                ctx, index, phase, cache and phase.frozen, done_in_phase, history,
                class_weight, user_callbacks, restore,
            )  # fmt: skip
            restore = None
            best = _keep_best(tuner, history, phase, best, kept, last=index == len(phases) - 1)
            tuner.progress = {"phases_done": index + 1, "epochs_done": len(history)}
            if tuner.resume_dir:
                _save_state(tuner, train, index, phase.epochs, True, history)
    finally:
        ctx.close()
    return history


def _start_from_probe(ctx: _Context, phases: list[Phase]) -> None:
    """``head_start="probe"``: set the head to a linear probe on the frozen features.

    With ``pooling="auto"`` the probe that chose the features is the one; else a
    probe is fitted on the features the frozen phases train on (the identity
    view's rows of a cached view set).
    """
    tuner = ctx.tuner
    if tuner.history is not None:  # an earlier fit, or a loaded trained model: keep its head
        tuner.log(
            "tlkit: head_start='probe': the head has trained before (an earlier fit or a saved "
            "model); it goes on from its weights"
        )
        return
    if not phases[0].frozen:
        raise ScheduleError(
            f"head_start='probe' fits the head on frozen features: the schedule's first phase "
            f"must train the head alone, and {phases[0].name!r} trains {phases[0].unfrozen} "
            "backbone groups; start with a head phase (FreezeThenUnfreeze, Frozen) or use "
            "head_start='random'"
        )
    if ctx.val is None:
        raise ScheduleError(
            "head_start='probe' chooses the probe's strength on validation data: pass val to "
            "fit, or use head_start='random'"
        )
    choice = tuner.pooling_choice
    probe: LinearProbe | None = None if choice is None else choice.probe
    if probe is not None and probe.coef.shape == (tuner.backbone.feature_dim, ctx.k):
        where = "the probe that chose the pooling"
    else:
        x, y = ctx.features("train"), ctx.train.labels()
        views = cached_views(ctx.aug)
        if views is not None and "identity" in views.names:
            at = list(views.names).index("identity") * len(y)  # rows v * n + i
            x = x[at : at + len(y)]
        elif views is not None:
            y = np.tile(y, len(views.names))
        probe = fit_probe(x, y, ctx.features("val"), ctx.val.labels(), ctx.k)
        where = "a linear probe on the frozen features"
    start_head(tuner._head_layers, probe)
    tuner.log(
        f"tlkit: head_start='probe': the head starts from {where} (C={probe.C:g}, validation "
        f"balanced accuracy {probe.score:.4f}; fitted in {probe.seconds:.1f} s)"
    )


#: the best of the schedule so far: (smoothed score, first and last epoch kept, weights)
_Best = tuple[float, tuple[int, int], list[Any]]


def _keep_best(
    tuner: FineTuner,
    history: cb.TrainingHistory,
    phase: Phase,
    best: _Best | None,
    kept: cb.BestEpoch | None,
    last: bool,
) -> _Best | None:
    """Track the best stretch of the whole schedule; after the last phase, go back to it.

    Each phase already ends on the mean weights of its own best stretch of
    ``monitor_window`` epochs (``kept``, see ``BestEpoch``), compared by the
    stretch's mean monitor. If a later phase never beats an earlier phase's best,
    the earlier weights win: a fine-tuning phase cannot silently leave the model
    worse than the frozen phase was.
    """
    if not tuner.restore_best or tuner.monitor not in history.history or kept is None:
        return best
    sign = -1.0 if tuner.monitor == "val_loss" else 1.0
    if kept.kept is not None and kept.best is not None:
        _log_kept(tuner, phase, kept, history)
        if best is None or kept.best > best[0]:  # the stretch's signed mean monitor
            best = (kept.best, kept.kept, [w.copy() for w in tuner.model.get_weights()])
    epochs = [i for i, p in enumerate(history.phases) if p == phase.name]
    if last and best is not None and best[1][1] not in epochs:
        tuner.model.set_weights(best[2])
        tuner.log(
            f"tlkit: phase {phase.name!r} did not beat {_epochs(best[1])} "
            f"({history.phases[best[1][1]]!r}, {tuner.monitor} {sign * best[0]:.4f}"
            + (f", mean of {tuner.monitor_window} epochs" if tuner.monitor_window > 1 else "")
            + "); keeping "
            + ("those epochs' mean weights" if best[1][0] != best[1][1] else "that epoch's weights")
        )
    if last and best is not None:
        tuner.best_epoch, tuner.kept_epochs = best[1][1], best[1]
    return best


def _epochs(span: tuple[int, int]) -> str:
    """``"epoch 7"`` or ``"epochs 3-7"`` (1-based) for a kept (first, last) span."""
    first, end = span[0] + 1, span[1] + 1
    return f"epoch {end}" if first == end else f"epochs {first}-{end}"


def _log_kept(
    tuner: FineTuner, phase: Phase, kept: cb.BestEpoch, history: cb.TrainingHistory
) -> None:
    """Log which epochs' weights the phase kept and what the mean of them scored."""
    assert kept.kept is not None
    values = history.history[tuner.monitor]
    if kept.kept_score is None:  # one epoch, or nothing to check the mean with
        what = "the mean weights of " if kept.kept[0] != kept.kept[1] else ""
        tuner.log(f"tlkit: phase {phase.name!r} keeps {what}{_epochs(kept.kept)}")
        return
    if kept.fell_back:
        tuner.log(
            f"tlkit: phase {phase.name!r}: the mean weights of its best stretch of epochs "
            f"scored {tuner.monitor} {kept.kept_score:.4f}, worse than each of them; "
            f"keeping {_epochs(kept.kept)} ({values[kept.kept[1]]:.4f})"
        )
        return
    stretch = values[kept.kept[0] : kept.kept[1] + 1]
    tuner.log(
        f"tlkit: phase {phase.name!r} keeps the mean weights of {_epochs(kept.kept)} "
        f"({tuner.monitor} {kept.kept_score:.4f}; the epochs "
        + ", ".join(f"{v:.4f}" for v in stretch)
        + ")"
    )


class _Context:
    """Datasets and features built once per fit and shared by the phases."""

    def __init__(
        self, tuner: FineTuner, train: Data, val: Data | None, aug: Any, onehot: bool, k: int
    ):
        self.tuner, self.train, self.val, self.aug, self.onehot, self.k = (
            tuner, train, val, aug, onehot, k,
        )  # fmt: skip
        self._features: dict[str, np.ndarray] = {}
        #: (index, cut) of a later phase whose boundary cache the frozen phases fill
        self.shared: tuple[int, Cut] | None = None
        self._boundary: BoundaryPhase | None = None
        self._val_images: Any = None
        # Built once per fit and shared by the phases: building the decode stage costs a
        # trace of its graph functions, and a fresh dataset would refill its memory cache.
        self._train_images: dict[bool, Any] = {}

    def labels_for_loss(self, ds: Any) -> Any:
        if not self.onehot:
            return ds
        import tensorflow as tf

        k = self.k
        return ds.map(
            lambda x, y: (x, tf.one_hot(tf.cast(y, tf.int32), k) if y.shape.rank == 1 else y)
        )

    def _val_data(self) -> Data:
        if self.val is None:  # pragma: no cover - asked for only in a fit with validation data
            raise RuntimeError("this fit has no validation data; please report this")
        return self.val

    def _shared_boundary(self) -> BoundaryPhase | None:
        """The later phase's boundary cache, filled on first use (None: features from images)."""
        if self.shared is not None and self._boundary is None:
            index, cut = self.shared
            self.tuner.log(  # before the pass, which is the longest wait of a short fit
                f"tlkit: computing the boundary features ({cut.where}) once, for phase "
                f"{index + 1}, and from them the backbone features of the frozen phases before it"
            )
            try:
                self._boundary = BoundaryPhase(
                    self.tuner, cut, self.train, self.val, cached_views(self.aug)
                )
            except Overflow:
                self.tuner.log(
                    "tlkit: boundary features overflow the cache's float type: frozen phases "
                    "compute features from images"
                )
                self.shared = None
                return None
            self._boundary.shared = True
        return self._boundary

    def take_boundary(self, index: int) -> BoundaryPhase | None:
        """The boundary cache filled for phase ``index``, handed over (the phase closes it)."""
        if self.shared is None or self.shared[0] != index:
            return None
        boundary, self._boundary = self._boundary, None
        return boundary

    def close(self) -> None:
        if self._boundary is not None:  # filled, but its phase did not run (resumed, stopped)
            self._boundary.close()
            self._boundary = None

    def features(self, which: str) -> np.ndarray:
        if which not in self._features:
            data = self.train if which == "train" else self._val_data()
            t = self.tuner
            boundary = self._shared_boundary()
            if boundary is not None:
                store = boundary.train if which == "train" else boundary.val
                if store is not None:
                    self._features[which] = predict_rows(
                        boundary.cut.top, store.arrays, t.batch_size
                    )
                    return self._features[which]
            t.log(f"tlkit: computing backbone features of the {which} images once")
            views = cached_views(self.aug) if which == "train" else None
            if views is not None:  # one row per image and view (row v * n + i)
                f = np.empty((len(views) * len(data), t.backbone.feature_dim), np.float32)
                fill_views(f, t.backbone.model, t, data, views)
                self._features[which] = f
                return f
            if data.part is not None:
                ds = data.part.to_dataset(t.image_size, batch_size=t.batch_size, shuffle=False)
            else:
                ds = data.dataset.map(lambda *e: e[0])
            self._features[which] = np.asarray(
                t.backbone.model.predict(ds, verbose=0 if t.verbose != 1 else "auto")
            )
        return self._features[which]

    def train_features(self) -> Any:
        import tensorflow as tf

        f = self.features("train")
        y = self.train.labels().astype(np.int32)
        seed = self.tuner.seed
        views = cached_views(self.aug)
        if views is not None:
            return self.labels_for_loss(view_batches(f, y, len(views), self.tuner.batch_size, seed))
        ds = tf.data.Dataset.from_tensor_slices((f, y)).shuffle(
            len(y), seed=seed, reshuffle_each_iteration=True
        )
        return self.labels_for_loss(ds.batch(self.tuner.batch_size))

    def train_images(self, augment: bool) -> Any:
        t = self.tuner
        part = self.train.part
        if part is None:
            return self.labels_for_loss(self.train.dataset)
        if augment not in self._train_images:
            ds = part.to_dataset(
                t.image_size,
                batch_size=t.batch_size,
                augment=self.aug if augment else None,
                shuffle=True,
                seed=t.seed,
                cache=t.cache_images_here(len(part)),
            )
            self._train_images[augment] = self.labels_for_loss(ds)
        return self._train_images[augment]

    def val_probabilities(self, cached: bool, model: Any) -> Any:
        t = self.tuner
        if cached:
            f = self.features("val")
            return lambda: np.asarray(model.predict_on_batch(f))
        if self._val_images is None:
            val = self._val_data()
            if val.part is not None:
                part = val.part
                self._val_images = part.to_dataset(
                    t.image_size, batch_size=t.batch_size, cache=t.cache_images_here(len(part))
                ).map(lambda x, y: x)
            else:
                self._val_images = val.dataset.map(lambda *e: e[0])
        images = self._val_images
        return lambda: np.concatenate(
            [np.asarray(model.predict_on_batch(x)) for x in images.as_numpy_iterator()]
        )


def _trainable_groups(tuner: FineTuner, phase: Phase) -> list[tuple[str, int, list[Any]]]:
    """Set ``trainable`` for the phase; return (group, depth, variables) from the top down."""
    import keras

    backbone = tuner.backbone
    backbone.unfreeze_last(phase.unfrozen)
    if not tuner.schedule.train_bn:
        # Keras 3 runs a non-trainable BatchNormalization layer in inference mode: moving
        # statistics used and never updated, scale and offset fixed.
        for group in backbone.layer_groups:
            for layer in group:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False
    for layer in tuner._head_layers:
        layer.trainable = True
    head_vars = [w for layer in tuner._head_layers for w in layer.trainable_weights]
    out = [(CLASSIFIER, 0, head_vars)]
    groups = backbone.layer_groups[len(backbone.layer_groups) - phase.unfrozen :]
    for depth, group in enumerate(reversed(groups), start=1):
        out.append((group.name, depth, [w for layer in group for w in layer.trainable_weights]))
    return out


def _group_optimizer(
    tuner: FineTuner, phase: Phase, groups: list[tuple[str, int, list[Any]]], steps: int,
    done_steps: int,
) -> GroupOptimizer:  # fmt: skip
    total = phase.epochs * steps
    warmup = tuner.schedule.warmup_steps(total, phase)
    entries = []
    for name, depth, variables in groups:
        if not variables:
            continue
        if name not in tuner._optimizers:
            rate = PhaseRate(cosine=tuner.schedule.cosine)
            tuner._rates[name] = rate
            tuner._optimizers[name] = make_optimizer(tuner.optimizer, rate)
        opt = tuner._optimizers[name]
        peak = tuner.learning_rate * phase.lr_scale * tuner.schedule.group_rate(name, depth)
        start = int(np.asarray(opt.iterations)) - done_steps
        tuner._rates[name].set_phase(peak, max(start, 0), warmup, total)
        entries.append((name, opt, variables))
    return GroupOptimizer(entries, name=f"phase_{phase.name}")


def _phase_model(ctx: _Context, index: int, phase: Phase, cached: bool) -> tuple[Any, Any, Any]:
    """The model the phase trains, its training batches, and its cached boundary (or None).

    Cached features: the head alone on the features; a cached boundary: the
    layers above the cut on its outputs; else the whole network on images.
    """
    import keras

    tuner = ctx.tuner
    net = tuner.model
    boundary = None
    if not cached and not phase.frozen:  # the top groups train: cache below them if possible
        boundary = plan_boundary(
            tuner, index, phase, ctx.train, ctx.val, ctx.aug, filled=ctx.take_boundary(index)
        )
    if cached:
        model = head_model(tuner.backbone.feature_dim, tuner._head_layers)
        ds = ctx.train_features()
    elif boundary is not None:
        model = boundary.model(tuner._head_layers, f"{net.name}_above_cut")
        ds = ctx.labels_for_loss(boundary.train_dataset(tuner.seed))
    else:
        model = keras.Model(net.inputs, net.outputs, name=f"{net.name}_training")
        ds = ctx.train_images(augment=ctx.aug is not None)
    return model, ds, boundary


def _compile(
    ctx: _Context, model: Any, phase: Phase, groups: list[tuple[str, int, list[Any]]],
    steps: int, done_steps: int,
) -> GroupOptimizer:  # fmt: skip
    """Compile ``model`` with the phase's per-group optimizer and the loss; return the optimizer."""
    import keras

    tuner = ctx.tuner
    with strategy_scope(tuner.strategy):
        optimizer = _group_optimizer(tuner, phase, groups, steps, done_steps)
        loss = (
            keras.losses.CategoricalCrossentropy(label_smoothing=tuner.label_smoothing)
            if ctx.onehot
            else keras.losses.SparseCategoricalCrossentropy()
        )
        # No XLA: on a CPU it doubled the time of short fits (compile per phase), see the guide.
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=False)
        optimizer.build(model.trainable_variables)
    return optimizer


def _log_phase(
    tuner: FineTuner, index: int, phase: Phase, model: Any, groups: list[tuple[str, int, list[Any]]],
    optimizer: GroupOptimizer, cached: bool, boundary: Any, first: int, done_in_phase: int,
    history: cb.TrainingHistory,
) -> None:  # fmt: skip
    """Note the phase in ``tuner.phase_log`` and log its line (epochs, groups, weights, rate)."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    tuner.phase_log.append(
        {
            "phase": phase.name,
            "unfrozen_groups": [g for g, _, _ in groups[1:]],
            "trainable_params": trainable,
            "cached_features": cached,
            "cached_boundary": boundary is not None,
            # filled in the same pass as the frozen phases' features: no fill of its own
            "cached_boundary_shared": boundary is not None and boundary.shared,
            # the configured peak of each group, not the first warm-up step's fraction of it
            "learning_rates": {
                g: float(np.asarray(tuner._rates[g].peak)) for g, _, _ in optimizer.groups
            },
        }
    )
    tuner.log(
        f"tlkit: phase {index + 1}/{len(tuner.phases)} {phase.name!r}: epochs {first + 1}-"
        f"{first + phase.epochs}, {phase.unfrozen} of {len(tuner.backbone.layer_groups)} "
        f"backbone groups trainable ({trainable:,} weights), "
        + ("cached features" if cached else "cached boundary" if boundary else "images")
        + f", lr {tuner.learning_rate * phase.lr_scale:.2g}"
        + (f" (resuming after epoch {len(history)})" if done_in_phase else "")
    )


def _phase_callbacks(
    ctx: _Context, index: int, phase: Phase, model: Any, optimizer: GroupOptimizer,
    cached: bool, boundary: Any, first: int, history: cb.TrainingHistory,
    user_callbacks: list[Any],
) -> list[Any]:  # fmt: skip
    """tlkit's callbacks of the phase, in order, then the user's."""
    import keras

    tuner = ctx.tuner
    callbacks: list[Any] = []
    score = None
    if ctx.val is not None:
        probabilities = (
            boundary.val_probabilities(model) if boundary else ctx.val_probabilities(cached, model)
        )
        labels = ctx.val.labels()
        callbacks.append(cb.ValidationMetrics(probabilities, labels, ctx.k))

        def score() -> float:  # the monitor of the current weights (BestEpoch checks a mean)
            metrics = classification_metrics(labels, probabilities(), ctx.k)
            return metrics[tuner.monitor.removeprefix("val_")]

    callbacks.append(cb.EpochRecorder(history, phase.name, lambda: optimizer.rates()[CLASSIFIER]))
    callbacks.append(cb.NaNGuard(phase.name, optimizer.rates))
    if ctx.val is not None and (tuner.restore_best or tuner.early_stopping):
        callbacks.append(
            cb.BestEpoch(
                history,
                tuner.monitor,
                tuner.monitor_window,
                patience=tuner.early_stopping or phase.epochs + 1,
                restore=tuner.restore_best,
                score=score,
            )
        )
    deadlines = getattr(tuner, "_budget_deadlines", None)
    if deadlines is not None:  # a time budget is on: end the phase before it overruns
        ends, now, on_stop = deadlines
        callbacks.append(cb.Deadline(ends[index], now, phase.name, tuner.log, on_stop))
    stops = getattr(tuner, "_budget_stops", None)
    if stops and phase.name in stops:  # a replayed plan: stop where the recorded run stopped
        callbacks.append(cb.StopAfter(stops[phase.name], phase.name, tuner.log))
    if tuner.resume_dir:
        callbacks.append(
            cb.ResumeCheckpoint(
                lambda epoch, logs: _save_state(
                    tuner, ctx.train, index, epoch + 1 - first, False, history
                )
            )
        )
    if tuner.tensorboard_dir:
        callbacks.append(keras.callbacks.TensorBoard(str(tuner.tensorboard_dir / phase.name)))
    callbacks.extend(user_callbacks)
    return callbacks


def _run_phase(
    ctx: _Context, index: int, phase: Phase, cached: bool, done_in_phase: int,
    history: cb.TrainingHistory, class_weight: Any, user_callbacks: list[Any], state: Any,
) -> cb.BestEpoch | None:  # fmt: skip
    """Train one phase: its model and data, compiled, logged, fitted with its callbacks.

    Returns the phase's ``BestEpoch`` (what it kept), or None without one.
    """
    tuner = ctx.tuner
    groups = _trainable_groups(tuner, phase)
    model, ds, boundary = _phase_model(ctx, index, phase, cached)
    steps = int(ds.cardinality())
    if steps < 1:
        raise ScheduleError("the training data has no batches (unknown or zero cardinality)")
    optimizer = _compile(ctx, model, phase, groups, steps, done_in_phase * steps)
    if state is not None:
        _restore_optimizers(tuner, state)
    first = len(history) - done_in_phase
    _log_phase(
        tuner, index, phase, model, groups, optimizer, cached, boundary, first, done_in_phase,
        history,
    )  # fmt: skip
    callbacks = _phase_callbacks(
        ctx, index, phase, model, optimizer, cached, boundary, first, history, user_callbacks
    )
    try:
        model.fit(
            # One iterator for the whole phase (Keras makes a new one each epoch from a
            # finite dataset; the same batches, epoch by epoch, tested), without tf.data's
            # autotuning thread: deleting an iterator waited for it, up to 60 s idle when
            # fit returned, 0.9-8.5 s at some epochs' start with a new iterator each epoch
            # (benchmarks/iterator_teardown.py, benchmarks/epoch_start.py).
            without_autotune_thread(ds.repeat()),
            steps_per_epoch=steps,
            epochs=first + phase.epochs,
            initial_epoch=len(history),
            class_weight=class_weight,
            callbacks=callbacks,
            shuffle=False,  # the dataset shuffles itself, seeded
            verbose=tuner.verbose,
        )
    finally:
        if boundary is not None:
            boundary.close()
    return next((c for c in callbacks if isinstance(c, cb.BestEpoch)), None)


# -- resume ------------------------------------------------------------------------------------


def _fingerprint(tuner: FineTuner, train: Data) -> dict[str, Any]:
    return {
        "backbone": tuner.backbone_name,
        "class_names": list(tuner._known_class_names()),
        "image_size": list(tuner.image_size),
        "schedule": tuner.schedule.get_config(),
        "train_examples": len(train),
        "seed": tuner.seed,
    }


def _save_state(
    tuner: FineTuner, train: Data, phase_index: int, epochs_in_phase: int, phase_done: bool,
    history: cb.TrainingHistory,
) -> None:  # fmt: skip
    if not tuner.is_chief():  # multi-worker: only the chief writes (TensorFlow's rule)
        return
    d = _resume_dir(tuner)
    d.mkdir(parents=True, exist_ok=True)
    tag = f"{len(history):04d}{'d' if phase_done else ''}"
    weights = d / f"weights-{tag}.weights.h5"
    tuner.model.save_weights(weights)
    opt_file = d / f"optimizers-{tag}.npz"
    arrays: dict[str, Any] = {
        f"{name}/{i}": np.asarray(v) for name, opt in tuner._optimizers.items()
        for i, v in enumerate(opt.variables)
    }  # fmt: skip
    with open(opt_file, "wb") as f:
        np.savez(f, **arrays)
    state = {
        "version": _saving.STATE_VERSION,
        "fingerprint": _fingerprint(tuner, train),
        "phase_index": phase_index,
        "epochs_in_phase": epochs_in_phase,
        "phase_done": phase_done,
        "weights": weights.name,
        "optimizers": opt_file.name,
        "history": history.to_dict(),
    }
    cb.write_json_atomic(d / STATE_FILE, state)
    for old in list(d.glob("weights-*.weights.h5")) + list(d.glob("optimizers-*.npz")):
        if old.name not in (weights.name, opt_file.name):
            old.unlink(missing_ok=True)


def _resume_dir(tuner: FineTuner) -> Path:
    if tuner.resume_dir is None:  # pragma: no cover - the state is kept only with a resume_dir
        raise RuntimeError("this fit has no resume_dir; please report this")
    return Path(tuner.resume_dir)


def _load_state(tuner: FineTuner, train: Data) -> dict[str, Any] | None:
    d = _resume_dir(tuner)
    state = _saving.read_state_file(d, STATE_FILE)  # every field checked, or ScheduleError
    if state is None:
        return None
    history, index, epochs = state["history"], state["phase_index"], state["epochs_in_phase"]
    expected = _fingerprint(tuner, train)
    diff = [k for k in expected if state["fingerprint"].get(k) != expected[k]]
    if diff:
        raise ScheduleError(
            f"resume_dir {str(d)!r} holds a run with another {', '.join(diff)}; use a new folder "
            "or the same settings and data"
        )
    phases = tuner.phases
    if (
        not 0 <= index < len(phases)
        or not 0 <= epochs <= phases[index].epochs
        or len(history) > sum(p.epochs for p in phases[: index + 1])
    ):
        raise ScheduleError(
            f"resume_dir {str(d)!r}: progress out of range (phase {index}, epoch {epochs}, "
            f"{len(history)} epochs of history); delete the folder to start afresh"
        )
    try:
        tuner.model.load_weights(d / state["weights"])
    except Exception as exc:  # Keras and h5py raise many types for a damaged file
        raise ScheduleError(
            f"resume_dir {str(d)!r}: cannot load {state['weights']} ({type(exc).__name__}: "
            f"{str(exc)[:200]}); delete the folder to start afresh"
        ) from None
    tuner.log(
        f"tlkit: resuming from {d}: {len(history)} epochs done, phase "
        f"{phases[index].name!r}" + (" finished" if state["phase_done"] else "")
    )
    state["optimizer_file"] = d / state["optimizers"]
    return state


def _restore_optimizers(tuner: FineTuner, state: dict[str, Any]) -> None:
    path = state["optimizer_file"]
    try:
        with np.load(path, allow_pickle=False) as saved:
            for name, opt in tuner._optimizers.items():
                for i, v in enumerate(opt.variables):
                    key = f"{name}/{i}"
                    if key not in saved.files:
                        continue
                    nbytes = int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
                    if saved.zip.getinfo(f"{key}.npy").file_size > nbytes + 4096:
                        raise ValueError(f"{key} is larger than the variable it restores")
                    value = saved[key]
                    if tuple(value.shape) == tuple(v.shape):
                        v.assign(value)
    except Exception as exc:  # numpy and zipfile raise many types for a damaged file
        raise ScheduleError(
            f"resume_dir {str(path.parent)!r}: cannot restore the optimizers from {path.name} "
            f"({type(exc).__name__}: {str(exc)[:200]}); delete the folder to start afresh"
        ) from None
