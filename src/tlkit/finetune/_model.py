"""The classifier FineTuner trains: backbone, pooling, dropout, softmax head.

With a backbone built with ``pooling="blocks"`` the head starts with a
BatchNormalization without scale or offset, which standardises the pooled
features of every block.
"""

from __future__ import annotations

import keras

from tlkit.backbones import Backbone
from tlkit.errors import ScheduleError

__all__ = ["build_classifier", "head_model"]


def build_classifier(
    backbone: Backbone,
    *,
    num_classes: int,
    dropout: float,
    hidden: int | None,
    train_bn: bool,
    seed: int | None,
) -> tuple[keras.Model, list[keras.layers.Layer]]:
    """Return (model, head layers). The model takes raw RGB pixels in [0, 255].

    BatchNormalization behaviour is set per phase by ``trainable`` (see
    ``_fit._trainable_groups``), not by a ``training=False`` call here: Keras 3
    passes the outer model's ``training`` flag to nested models, overriding it.
    """
    if backbone.include_top or len(backbone.model.output_shape) != 2:
        raise ScheduleError(
            f"backbone {backbone.name} must give pooled features (include_top=False, "
            f"pooling='avg'); its output shape is {backbone.model.output_shape}"
        )
    h, w = backbone.image_size
    inputs = keras.Input((h, w, 3), name="image")
    features = backbone.model(inputs)
    layers: list[keras.layers.Layer] = []
    if backbone.options.get("pooling") == "blocks":
        # every block's pooled features live on scales far apart: standardise them, as a
        # linear probe's feature scaling does (statistics learnt while the head trains)
        layers.append(
            keras.layers.BatchNormalization(center=False, scale=False, name="head_standardize")
        )
    if hidden:
        layers.append(keras.layers.Dropout(dropout, seed=seed, name="head_dropout_1"))
        layers.append(keras.layers.Dense(hidden, activation="relu", name="head_hidden"))
    layers.append(keras.layers.Dropout(dropout, seed=seed, name="head_dropout"))
    layers.append(
        keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier")
    )
    x = features
    for layer in layers:
        x = layer(x)
    model = keras.Model(inputs, x, name=f"{backbone.name}_classifier")
    return model, layers


def head_model(feature_dim: int, layers: list[keras.layers.Layer]) -> keras.Model:
    """A model from pooled features to probabilities sharing the classifier's head layers."""
    inputs = keras.Input((feature_dim,), name="features")
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x, name="head")
