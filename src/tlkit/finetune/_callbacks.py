"""Keras callbacks FineTuner adds to each phase, and the history it returns.

They are ordinary ``keras.callbacks.Callback`` objects, so a user's own
callbacks run beside them unchanged: validation metrics are written into
``logs`` first (``val_loss``, ``val_accuracy``, ``val_balanced_accuracy``,
``val_macro_f1``), so early stopping, checkpoints and the user's callbacks
all see them.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tlkit.errors import InvalidArgumentError, TrainingDivergedError
from tlkit.metrics import classification_metrics

__all__ = [
    "BestEpoch",
    "NaNGuard",
    "ResumeCheckpoint",
    "TrainingHistory",
    "ValidationMetrics",
    "mean_weights",
    "smoothed",
]


class ValidationMetrics(keras.callbacks.Callback):
    """Predict the validation data once per epoch and add ``val_*`` metrics to the logs.

    ``predict`` returns class probabilities for the validation inputs with the
    current weights; ``labels`` are the true class indices in the same order.
    """

    def __init__(
        self, predict: Callable[[], np.ndarray], labels: np.ndarray, num_classes: int
    ) -> None:
        super().__init__()
        self._predict = predict
        self._labels = np.asarray(labels)
        self._k = num_classes

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        metrics = classification_metrics(self._labels, self._predict(), self._k)
        for name, value in metrics.items():
            logs[f"val_{name}"] = value


class NaNGuard(keras.callbacks.Callback):
    """Stop with :class:`~tlkit.errors.TrainingDivergedError` as soon as the loss is not finite."""

    def __init__(self, phase: str, rates: Callable[[], dict[str, float]]) -> None:
        super().__init__()
        self.phase = phase
        self._rates = rates
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            rates = ", ".join(f"{g} {r:.3g}" for g, r in self._rates().items())
            raise TrainingDivergedError(
                f"the training loss became {float(loss)} in phase {self.phase!r}, epoch "
                f"{self._epoch + 1}, batch {batch + 1} (learning rates: {rates}); lower "
                "learning_rate (FineTuner.lr_find suggests one) or check the data for bad values"
            )


class Deadline(keras.callbacks.Callback):
    """End a phase early when its next epoch would end past ``deadline`` (a clock reading).

    The time budget plans epochs from a few measured batches; when the machine
    then runs slower (other work on it, a thermal limit), the phase stops after
    the epoch whose successor would not fit, keeping at least one epoch.
    ``on_stop(phase, epochs_run, planned)`` is told, and the stop is logged.
    """

    def __init__(
        self,
        deadline: float,
        now: Callable[[], float],
        phase: str,
        log: Callable[[str], None],
        on_stop: Callable[[str, int, int], None],
    ) -> None:
        super().__init__()
        self.deadline, self._now, self.phase = deadline, now, phase
        self._log, self._on_stop = log, on_stop
        self._t0 = 0.0
        self._first: int | None = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._first is None:
            self._first = epoch
        self._t0 = self._now()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        last = int(self.params.get("epochs", epoch + 1)) - 1
        now = self._now()
        if epoch >= last or now + (now - self._t0) <= self.deadline:
            return
        self.model.stop_training = True
        done = epoch + 1 - (self._first or 0)
        planned = last + 1 - (self._first or 0)
        self._log(
            f"tlkit: time budget: phase {self.phase!r} stops after {done} of {planned} planned "
            "epochs: epochs run slower than measured, and the next one would end past the budget"
        )
        self._on_stop(self.phase, done, planned)


class StopAfter(keras.callbacks.Callback):
    """End a phase after ``epochs`` of its epochs, as a replayed time-budget plan recorded.

    The phase keeps its planned length (its learning-rate schedule is the
    recorded run's); only the epochs after the recorded stop are not run.
    """

    def __init__(self, epochs: int, phase: str, log: Callable[[str], None]) -> None:
        super().__init__()
        self.epochs, self.phase, self._log = epochs, phase, log
        self._first: int | None = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._first is None:
            self._first = epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        done = epoch + 1 - (self._first or 0)
        if done >= self.epochs and epoch < int(self.params.get("epochs", epoch + 1)) - 1:
            self.model.stop_training = True
            self._log(
                f"tlkit: replayed plan: phase {self.phase!r} stops after {done} epochs, "
                "as in the recorded run"
            )


class TrainingHistory:
    """Per-epoch metrics of a whole schedule, with the phase of each epoch.

    Attributes
    ----------
    history : dict of str to list of float
        ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
        ``val_balanced_accuracy``, ``val_macro_f1``, ``lr`` (the classifier's
        rate at the end of the epoch), one value per epoch.
    phases : list of str
        The phase each epoch belonged to (``"head"``, ``"finetune"``, ...).
    epoch_seconds : list of float
        Wall time of each epoch.

    Examples
    --------
    >>> h = TrainingHistory()
    >>> h.append("head", {"loss": 1.0, "val_accuracy": 0.5}, 2.0)
    >>> h.append("finetune", {"loss": 0.5, "val_accuracy": 0.75}, 3.0)
    >>> h.phases, h.history["loss"], h.best("val_accuracy")
    (['head', 'finetune'], [1.0, 0.5], (1, 0.75))
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.phases: list[str] = []
        self.epoch_seconds: list[float] = []

    def __len__(self) -> int:
        return len(self.phases)

    def append(self, phase: str, logs: dict[str, Any], seconds: float) -> None:
        n = len(self.phases)
        for key, value in logs.items():
            try:
                v = float(np.asarray(value))
            except (TypeError, ValueError):
                continue
            self.history.setdefault(key, [math.nan] * n).append(v)
        self.phases.append(phase)
        self.epoch_seconds.append(float(seconds))
        for values in self.history.values():  # keys absent this epoch
            if len(values) < n + 1:
                values.append(math.nan)

    def best(self, metric: str) -> tuple[int, float]:
        """(epoch index, value) of the best epoch by ``metric`` (lowest for losses)."""
        values = np.asarray(self.history.get(metric, []), dtype=float)
        if not values.size or np.all(np.isnan(values)):
            raise KeyError(f"no values of {metric!r}; recorded: {sorted(self.history)}")
        i = int(np.nanargmin(values) if "loss" in metric else np.nanargmax(values))
        return i, float(values[i])

    def to_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "phases": self.phases,
            "epoch_seconds": self.epoch_seconds,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingHistory:
        h = cls()
        h.history = {str(k): [float(x) for x in v] for k, v in d.get("history", {}).items()}
        h.phases = [str(p) for p in d.get("phases", [])]
        h.epoch_seconds = [float(s) for s in d.get("epoch_seconds", [])]
        if any(len(v) != len(h.phases) for v in h.history.values()):
            raise InvalidArgumentError("history lists and phases differ in length")
        return h

    def __repr__(self) -> str:
        return f"TrainingHistory({len(self)} epochs, phases={sorted(set(self.phases))})"


def smoothed(values: list[float], window: int) -> list[float]:
    """The trailing mean of ``values`` over ``window`` epochs (NaNs skipped), at every epoch.

    A small validation set makes one epoch's score noisy (one image of a 16-image
    class moves balanced accuracy by 1.5 points); the mean of the last few epochs
    says whether the model is really better.

    Examples
    --------
    >>> smoothed([0.5, 0.7, 0.6, 0.9], 2)
    [0.5, 0.6, 0.6499999999999999, 0.75]
    """
    out = []
    for i in range(len(values)):
        recent = [v for v in values[max(0, i - window + 1) : i + 1] if v == v]
        out.append(sum(recent) / len(recent) if recent else math.nan)
    return out


def mean_weights(snapshots: Sequence[list[np.ndarray]]) -> list[np.ndarray]:
    """The element-wise mean of snapshots of one model's weights.

    Floating-point arrays are averaged (in float64, returned in their own dtype);
    any other array (a random generator's state) is taken from the last snapshot.

    Examples
    --------
    >>> [w.tolist() for w in mean_weights([[np.array([1.0, 2.0])], [np.array([3.0, 6.0])]])]
    [[2.0, 4.0]]
    """
    if not snapshots:
        raise ValueError("mean_weights needs at least one snapshot")
    out = []
    for parts in zip(*snapshots, strict=True):
        last = parts[-1]
        if np.issubdtype(last.dtype, np.floating):
            total = np.sum([np.asarray(p, np.float64) for p in parts], axis=0)
            out.append((total / len(parts)).astype(last.dtype))
        else:
            out.append(last.copy())
    return out


class BestEpoch(keras.callbacks.Callback):
    """Within one phase: keep the best stretch of epochs by the mean of ``monitor``.

    The score of an epoch is the mean of ``monitor`` over the last ``window``
    epochs of the run (``TrainingHistory`` order, so the first epochs of a phase
    are scored with the end of the previous one). With ``patience``, the phase
    stops after that many epochs without a better score. With ``restore``, it
    ends on the mean of the weights of the best stretch's epochs (those of this
    phase): the stretch was chosen for its average score, and the mean of its
    weights is less tied to one lucky epoch than the last epoch alone. ``score``
    (the monitor on validation for the current weights) checks the mean: if it
    scores worse than every epoch it averages, the phase keeps the stretch's last
    epoch instead (``fell_back``). ``kept`` is the (first, last) epoch whose
    weights were kept, 0-based in the history; ``kept_score`` the monitor of the
    mean weights (None when not measured).
    """

    def __init__(
        self,
        history: TrainingHistory,
        monitor: str,
        window: int,
        patience: int,
        restore: bool,
        score: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        self.history, self.monitor, self.window = history, monitor, window
        self.patience, self.restore, self._score = patience, restore, score
        self.sign = -1.0 if monitor == "val_loss" else 1.0
        self.best: float | None = None
        # (epoch, weights) of this phase's last ``window`` epochs, and of the best stretch
        self._recent: deque[tuple[int, list[Any]]] = deque(maxlen=window)
        self._best_stretch: list[tuple[int, list[Any]]] = []
        self.kept: tuple[int, int] | None = None
        self.kept_score: float | None = None
        self.fell_back = False  # the mean scored worse than each epoch: the last one was kept
        self.wait = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = self.history.history.get(self.monitor)
        if not values:
            return
        if self.restore:
            self._recent.append((len(values) - 1, [w.copy() for w in self.model.get_weights()]))
        score = self.sign * smoothed(values[-self.window :], self.window)[-1]
        if score != score:  # NaN
            return
        if self.best is None or score > self.best:
            self.best, self.wait = score, 0
            self._best_stretch = list(self._recent)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if not (self.restore and self._best_stretch):
            return
        epochs = [e for e, _ in self._best_stretch]
        last = self._best_stretch[-1][1]
        self.kept = (epochs[0], epochs[-1])
        self.model.set_weights(mean_weights([w for _, w in self._best_stretch]))
        if self._score is None or len(epochs) == 1:
            return
        self.kept_score = float(self._score())
        values = self.history.history[self.monitor]
        own = [self.sign * values[e] for e in epochs if values[e] == values[e]]
        if own and not self.sign * self.kept_score >= min(own):  # worse than each (or NaN)
            self.model.set_weights(last)
            self.kept, self.fell_back = (epochs[-1], epochs[-1]), True


class ResumeCheckpoint(keras.callbacks.Callback):
    """After every epoch, write what a killed run needs to continue (see FineTuner ``resume_dir``).

    ``save_state(epoch_logs)`` is FineTuner's: it writes weights, optimizer
    state and progress atomically into the folder.
    """

    def __init__(self, save_state: Callable[[int, dict[str, Any]], None]) -> None:
        super().__init__()
        self._save = save_state

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._save(epoch, dict(logs or {}))


class EpochRecorder(keras.callbacks.Callback):
    """Record each epoch's logs and wall time into a :class:`TrainingHistory`."""

    def __init__(self, history: TrainingHistory, phase: str, rate: Callable[[], float]) -> None:
        super().__init__()
        self._history = history
        self._phase = phase
        self._rate = rate
        self._t0 = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        import time

        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        import time

        logs = dict(logs or {})
        logs["lr"] = self._rate()
        self._history.append(self._phase, logs, time.perf_counter() - self._t0)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` so that a crash leaves the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
