"""Views: a finite, declared set of exact image transforms (flips, the square's symmetries, crops).

Random augmentation draws a new image every epoch, so nothing computed from it
can be cached. A finite set of views can: the FineTuner's boundary cache stores
the frozen layers' output once per image and per view, and each epoch trains
on one view per image drawn at random. The same views average predictions at
test time (``FineTuner.predict(..., tta=views)``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tlkit._validation import check_choice, type_name
from tlkit.augment._keras_seeding import seed_tensor
from tlkit.errors import ArgumentTypeError, InvalidArgumentError

__all__ = ["CROP_FRACTION", "VIEWS", "VIEW_SETS", "Views"]

#: Side of a fixed crop as a fraction of the image side (``crops`` view set).
CROP_FRACTION = 0.8

#: Every single view by name.
VIEWS = (
    "identity", "hflip", "vflip", "rot90", "rot180", "rot270", "transpose", "transverse",
    "crop_center", "crop_top_left", "crop_top_right", "crop_bottom_left", "crop_bottom_right",
)  # fmt: skip

#: Named sets of views.
VIEW_SETS: dict[str, tuple[str, ...]] = {
    "identity": ("identity",),
    "flip": ("identity", "hflip"),
    "dihedral": ("identity", "rot90", "rot180", "rot270", "hflip", "vflip", "transpose", "transverse"),
    "crops": ("identity", "crop_top_left", "crop_top_right", "crop_bottom_left", "crop_bottom_right"),
}  # fmt: skip

_SQUARE_ONLY = {"rot90", "rot270", "transpose", "transverse"}


def _crop(x: tf.Tensor, name: str, fraction: float) -> tf.Tensor:
    h, w = int(x.shape[1]), int(x.shape[2])
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    where = name.removeprefix("crop_")
    top = {"center": (h - ch) // 2, "top_left": 0, "top_right": 0}.get(where, h - ch)
    left = {"center": (w - cw) // 2, "top_left": 0, "bottom_left": 0}.get(where, w - cw)
    part = x[:, top : top + ch, left : left + cw, :]
    return tf.image.resize(part, (h, w), method="bilinear")


def _transform(x: tf.Tensor, name: str, fraction: float) -> tf.Tensor:
    if name == "identity":
        return x
    if name == "hflip":
        return x[:, :, ::-1, :]
    if name == "vflip":
        return x[:, ::-1, :, :]
    if name in ("rot90", "rot180", "rot270"):
        return tf.image.rot90(x, k=int(name[3:]) // 90)  # counter-clockwise, as np.rot90
    if name == "transpose":
        return tf.transpose(x, [0, 2, 1, 3])
    if name == "transverse":  # the anti-diagonal mirror
        return tf.transpose(x[:, ::-1, ::-1, :], [0, 2, 1, 3])
    return _crop(x, name, fraction)


class Views:
    """A finite set of exact views of an image, cacheable and usable for test-time augmentation.

    Used as ``FineTuner(augment=Views("dihedral"))``, each epoch trains on one
    view per image drawn at random: phases that train only the top layer
    groups train on boundary features cached once per image and view; other
    phases apply the drawn view to the images. Used as
    ``predict(..., tta=Views("flip"))``, it averages the probabilities of every view.

    Parameters
    ----------
    views : str or sequence of str
        A set name: ``"identity"``; ``"flip"`` (identity and the horizontal
        mirror: most photos); ``"dihedral"`` (the 8 symmetries of the square:
        rotations by 0/90/180/270 degrees, with and without a mirror: cells,
        tiles, microscopy, documents or solar cells scanned flat, satellite
        images, wherever "up" means nothing; square images only); ``"crops"``
        (identity and four corner crops of ``crop_fraction`` of the side,
        resized back). Or a sequence of single view names from :data:`VIEWS`.
    crop_fraction : float
        Side of the fixed crops as a fraction of the image (default
        :data:`CROP_FRACTION`, 0.8), in (0, 1].
    seed : int, optional
        Seeds the random choice of a view when used as augmentation.

    Examples
    --------
    >>> import numpy as np
    >>> v = Views("flip")
    >>> v.names
    ('identity', 'hflip')
    >>> x = np.arange(12, dtype="float32").reshape(1, 2, 2, 3)
    >>> bool(np.array_equal(v.view(x, 1), x[:, :, ::-1]))
    True
    >>> Views.from_config(v.get_config()) == v
    True
    """

    def __init__(
        self,
        views: str | Sequence[str] = "flip",
        crop_fraction: float = CROP_FRACTION,
        seed: int | None = None,
    ) -> None:
        if isinstance(views, str):
            names = VIEW_SETS[check_choice("views", views, tuple(VIEW_SETS))]
        elif isinstance(views, (list, tuple)) and views:
            names = tuple(check_choice("views[]", str(v), VIEWS) for v in views)
            if len(set(names)) != len(names):
                raise InvalidArgumentError(f"views lists a view twice: {list(names)}")
        else:
            raise ArgumentTypeError(
                f"views must be a set name ({', '.join(VIEW_SETS)}) or a non-empty list of view "
                f"names, got {views!r}"
            )
        if not isinstance(crop_fraction, (int, float)) or not 0 < crop_fraction <= 1:
            raise InvalidArgumentError(f"crop_fraction must be in (0, 1], got {crop_fraction!r}")
        self.names: tuple[str, ...] = names
        self.crop_fraction = float(crop_fraction)
        self.seed = seed

    # -- the views ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    @classmethod
    def coerce(cls, value: Any, name: str = "tta") -> Views | None:
        """``value`` as views: None stays None, a set name or list of view names is built.

        How ``predict(..., tta=)``, ``evaluate(..., tta=)`` and
        ``ModelComparator.add(..., tta=)`` read their argument.

        Examples
        --------
        >>> Views.coerce("flip").names, Views.coerce(None)
        (('identity', 'hflip'), None)
        >>> Views.coerce(3)
        Traceback (most recent call last):
        ...
        tlkit.errors.ArgumentTypeError: tta must be None, a tlkit.augment.Views, a view-set name or a list of view names, got 3 (int)
        """
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, (str, list, tuple)):
            return cls(value)
        raise ArgumentTypeError(
            f"{name} must be None, a tlkit.augment.Views, a view-set name or a list of view "
            f"names, got {value!r} ({type_name(value)})"
        )

    def view(self, images: Any, index: int) -> tf.Tensor:
        """View ``index`` of a batch ``(B, H, W, 3)`` of images, as float32."""
        x = tf.convert_to_tensor(images, tf.float32)
        name = self.names[index]
        if name in _SQUARE_ONLY and x.shape[1] != x.shape[2]:
            raise InvalidArgumentError(
                f"view {name!r} needs square images, got {x.shape[1]}x{x.shape[2]}: use "
                "Views('flip') or a square image_size"
            )
        return _transform(x, name, self.crop_fraction)

    def all_views(self, images: Any) -> list[tf.Tensor]:
        """Every view of a batch, in the order of :attr:`names`."""
        return [self.view(images, i) for i in range(len(self))]

    def average(self, predict: Any, images: Any) -> np.ndarray:
        """Mean of ``predict(view)`` over the views of a batch (test-time augmentation).

        ``predict`` maps a batch of images to class probabilities, shape ``(n, K)``.
        """
        total: np.ndarray | None = None
        for v in self.all_views(images):
            p = np.asarray(predict(v), dtype=np.float64)
            total = p if total is None else total + p
        if total is None:  # pragma: no cover - a Views holds at least one view
            raise ValueError("no views to average over")
        return np.asarray(total / len(self), dtype=np.float32)

    # -- the Augmenter protocol: one view per image, drawn at random ---------------------------

    @property
    def layers(self) -> tuple[str, ...]:
        """The view names; empty for the identity alone (no augmentation)."""
        return () if self.names == ("identity",) else self.names

    @property
    def mixes_labels(self) -> bool:
        return False

    def clone(self) -> Views:
        return Views(self.names, self.crop_fraction, self.seed)

    def output_size(self, size: tuple[int, int]) -> tuple[int | None, int | None]:
        return size

    def apply(self, images: Any, labels: Any = None, seed: Any = None) -> tuple[Any, Any]:
        """One view per image, drawn at random (stateless when ``seed`` is given)."""
        x = tf.convert_to_tensor(images, tf.float32)
        stacked = tf.stack(self.all_views(x))  # (V, B, H, W, 3)
        b = tf.shape(x)[0]
        if seed is None:
            pick = tf.random.uniform((b,), 0, len(self), tf.int32, seed=self.seed)
        else:
            pick = tf.random.stateless_uniform((b,), seed_tensor(seed), 0, len(self), tf.int32)
        out = tf.gather_nd(stacked, tf.stack([pick, tf.range(b)], axis=1))
        return out, labels

    def __call__(self, images: Any, seed: Any = None) -> tf.Tensor:
        return self.apply(images, None, seed)[0]

    # -- configuration --------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """A JSON-friendly dict; :meth:`from_config` makes the same views."""
        return {"views": list(self.names), "crop_fraction": self.crop_fraction, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Views:
        return cls(tuple(config["views"]), config.get("crop_fraction", CROP_FRACTION),
                   config.get("seed"))  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Views):
            return NotImplemented
        return self.get_config() == other.get_config()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        for name, names in VIEW_SETS.items():
            if names == self.names:
                return f"Views({name!r})"
        return f"Views({list(self.names)!r})"
