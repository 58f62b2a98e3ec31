"""The learning-rate range test (Smith 2017; fastai's ``lr_find``)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tlkit._validation import check_int, check_number
from tlkit.errors import InvalidArgumentError

if TYPE_CHECKING:  # pragma: no cover
    from tlkit.finetune._tuner import FineTuner

__all__ = ["LRFinderResult", "lr_find"]


@dataclass
class LRFinderResult:
    """Loss against learning rate from :meth:`tlkit.FineTuner.lr_find`.

    Attributes
    ----------
    learning_rates, losses : list of float
        The rate of each step and the smoothed training loss after it.
    suggestion : float
        The rate where the smoothed loss falls fastest (steepest negative
        slope in log-rate), a good ``learning_rate`` for the first phase.
    phase : str
        The schedule phase that was probed (its trainable groups).
    """

    learning_rates: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    suggestion: float = math.nan
    phase: str = ""

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Write the curve, with the suggestion marked, as a PNG."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        ax.plot(self.learning_rates, self.losses)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss (smoothed)")
        if math.isfinite(self.suggestion):
            ax.axvline(self.suggestion, color="tab:red", linestyle="--")
            ax.annotate(
                f"suggested {self.suggestion:.2g}",
                (self.suggestion, float(np.nanmax(self.losses))),
                color="tab:red",
            )
        ax.set_title(f"learning-rate range test ({self.phase} phase)")
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out)
        plt.close(fig)
        return out


def _suggest(lrs: np.ndarray, losses: np.ndarray) -> float:
    if len(lrs) < 5:
        return math.nan
    slopes = np.gradient(losses, np.log(lrs))
    return float(lrs[int(np.argmin(slopes))])


def lr_find(
    tuner: FineTuner, train: Any, *, min_lr: float, max_lr: float, steps: int
) -> LRFinderResult:
    import keras

    from tlkit.finetune._data import as_data
    from tlkit.finetune._fit import _Context, _trainable_groups, decide_cache
    from tlkit.finetune._model import head_model
    from tlkit.finetune._optim import GroupOptimizer

    min_lr = check_number("min_lr", min_lr, low=0.0, low_open=True)
    max_lr = check_number("max_lr", max_lr, low=0.0, low_open=True)
    if not min_lr < max_lr:
        raise InvalidArgumentError(f"need 0 < min_lr < max_lr, got {min_lr!r}, {max_lr!r}")
    steps = check_int("steps", steps, minimum=5)
    data = as_data(train, "train")
    if data.part is not None and tuner.class_names is None:
        tuner.class_names = list(data.part.class_names)
    net = tuner.build()
    phase = tuner.phases[0]
    cache, _ = decide_cache(tuner, data, [phase])
    ctx = _Context(
        tuner, data, None, None, tuner.label_smoothing > 0, len(tuner._known_class_names())
    )
    groups = _trainable_groups(tuner, phase)
    if cache:
        model = head_model(tuner.backbone.feature_dim, tuner._head_layers)
        ds = ctx.train_features()
    else:
        model = keras.Model(net.inputs, net.outputs)
        ds = ctx.train_images(augment=False)
    saved = [np.array(w) for w in net.get_weights()]
    ratio = (max_lr / min_lr) ** (1.0 / (steps - 1))
    grid = np.geomspace(min_lr, max_lr, steps)  # the rate of each step, ends exact
    rate = keras.optimizers.schedules.ExponentialDecay(min_lr, 1, ratio)
    from tlkit.finetune._optim import make_optimizer

    entries = [
        (name, make_optimizer(tuner.optimizer, rate), vs) for name, depth, vs in groups if vs
    ]
    model.compile(
        optimizer=GroupOptimizer(entries, name="lr_find"),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=tuner.label_smoothing)
        if ctx.onehot
        else keras.losses.SparseCategoricalCrossentropy(),
    )
    lrs: list[float] = []
    losses: list[float] = []
    best = math.inf
    avg = 0.0
    done = 0
    while done < steps:
        for x, y in ds:
            loss = float(np.asarray(model.train_on_batch(x, y)))
            lr = float(grid[done])
            done += 1
            avg = 0.98 * avg + 0.02 * loss
            smooth = avg / (1 - 0.98**done)
            if not math.isfinite(smooth) or (done > 5 and smooth > 4 * best):
                done = steps
                break
            best = min(best, smooth)
            lrs.append(lr)
            losses.append(smooth)
            if done >= steps:
                break
    net.set_weights(saved)
    result = LRFinderResult(lrs, losses, _suggest(np.asarray(lrs), np.asarray(losses)), phase.name)
    tuner.log(f"tlkit: lr_find suggests learning_rate={result.suggestion:.2g}")
    return result
