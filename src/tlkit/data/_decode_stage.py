"""The input pipeline's decoding map: ``(path, orientation, label)`` to ``(image, label)``.

Decodes in parallel and in order, and names the file when one fails (a
``tf.data`` map has no ``try``; see :func:`decode_stage`). TensorFlow is
imported when the stage is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["decode_stage"]


def decode_stage(
    ds: tf.data.Dataset, size: tuple[int, int], policy: str, parallel: int
) -> tf.data.Dataset:
    """``(path, orientation, label)`` to ``(uint8 image, label)``, in order, in parallel.

    A decode error inside a ``map`` is a bare TensorFlow error without the file
    name, and a ``tf.data`` pipeline has no ``try``. So the decoding map ignores
    errors, and a scan after it checks that no element went missing: each
    element carries its position and the path of the element before it, and
    an end marker closes the stream. When a position is skipped, the file
    before the first element that did arrive failed: the scan raises an error
    naming it, saying whether it is missing or undecodable. An image over a
    limit of :mod:`tlkit._files` (pixels, crop aspect ratio) is not decoded:
    the header is checked first and the scan raises an error naming the file
    and the limit. The successful path costs one counter per image.
    """
    import tensorflow as tf

    from tlkit.data._decode import (
        decode_checked,
        decode_error_message,
        limit_message,
        limit_problem,
    )

    end = tf.data.Dataset.from_tensors((tf.constant(""), tf.constant(1), tf.constant(-1)))
    blank = tf.zeros((size[0], size[1], 3), tf.uint8)

    def number(state: tuple[tf.Tensor, tf.Tensor], element: tuple[tf.Tensor, ...]):
        position, previous = state
        path, orientation, label = element
        return (position + 1, path), (position, previous, path, orientation, label)

    def decode(position, previous, path, orientation, label):
        def read() -> tuple[tf.Tensor, tf.Tensor]:
            data = tf.io.read_file(path)
            code = limit_problem(data, orientation, size, policy)
            image = tf.cond(
                tf.equal(code, 0),
                lambda: decode_checked(data, orientation, size, policy),
                lambda: blank,
            )
            return image, code

        image, code = tf.cond(label >= 0, read, lambda: (blank, tf.constant(0)))
        return position, previous, path, image, label, code

    def check(expected: tf.Tensor, element: tuple[tf.Tensor, ...]):
        position, previous, path, image, label, code = element

        def fail() -> tf.Tensor:
            readable = (
                tf.data.Dataset.from_tensors(previous)
                .map(lambda p: tf.strings.length(tf.io.read_file(p)))
                .ignore_errors()
                .reduce(tf.constant(0), lambda count, _: count + 1)
            )
            message = tf.where(
                readable > 0,
                decode_error_message("corrupt", previous),
                decode_error_message("missing", previous),
            )
            with tf.control_dependencies([tf.debugging.Assert(False, [message], summarize=1)]):
                return tf.identity(image)

        def over(kind: int):
            def fn() -> tf.Tensor:
                message = limit_message(kind, path)
                assertion = tf.debugging.Assert(False, [message], summarize=1)
                with tf.control_dependencies([assertion]):
                    return tf.identity(image)

            return fn

        image = tf.cond(tf.equal(position, expected), lambda: image, fail)
        image = tf.switch_case(code, [lambda: image, over(1), over(2)])
        return position + 1, (image, label)

    ds = ds.concatenate(end).scan((tf.constant(0, tf.int64), tf.constant("")), number)
    ds = ds.map(decode, num_parallel_calls=parallel, deterministic=True).ignore_errors()
    ds = ds.scan(tf.constant(0, tf.int64), check)
    return ds.filter(lambda image, label: label >= 0)
