"""The preprocessing layer that every registry model carries after its input."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tlkit._validation import check_choice

__all__ = ["PREPROCESSING_MODES", "ImagePreprocessing"]

# mode -> what it does, in plain words (shown in docs and BackboneConfig).
PREPROCESSING_MODES: dict[str, str] = {
    "tf": "x / 127.5 - 1, to [-1, 1]",
    "torch": "x / 255, minus the ImageNet mean (0.485, 0.456, 0.406), divided by the std "
    "(0.229, 0.224, 0.225), per RGB channel",
    "caffe": "RGB to BGR, minus the ImageNet mean (103.939, 116.779, 123.68) in BGR order, "
    "no scaling",
    "lite": "(x - 127) / 128, as in the TF-Lite EfficientNet-Lite originals",
}

_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="tlkit")
class ImagePreprocessing(keras.layers.Layer):
    """Map raw RGB pixels (floats in [0, 255], channels last) to a network's input range.

    The arithmetic follows ``keras.applications.imagenet_utils.preprocess_input``
    step by step, so a registry model on raw pixels matches the plain Keras
    application on ``preprocess_input(pixels)``.

    Parameters
    ----------
    mode
        One of ``"tf"``, ``"torch"``, ``"caffe"`` or ``"lite"`` (see
        :data:`PREPROCESSING_MODES`).

    Examples
    --------
    >>> import numpy as np
    >>> layer = ImagePreprocessing("tf")
    >>> np.asarray(layer(np.array([[[[0.0, 127.5, 255.0]]]]))).ravel().tolist()
    [-1.0, 0.0, 1.0]
    """

    def __init__(self, mode: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = check_choice("mode", mode, sorted(PREPROCESSING_MODES))
        self.supports_masking = True

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "lite":
            return (x - 127.0) / 128.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, dtype=self.compute_dtype)
            return (x / 255.0 - mean) / std
        # caffe
        mean = ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=self.compute_dtype)
        return ops.flip(x, axis=-1) - mean

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}
