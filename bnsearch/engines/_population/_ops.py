"""Tensor functions of the population engine: the dropout hash, convolution patches,
pooling and activations. Members sit on the leading axis; none of these mixes them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["activation_function", "hash_uniform", "max_pool_2x2", "patches", "pool"]


def hash_uniform(tf: Any, seeds: Any, counter: Any, shape: Sequence[Any]) -> Any:
    """Uniform [0, 1) numbers from a counter-based integer hash of (seed, counter, index).

    ``seeds`` is ``[P]`` int64, ``counter`` a scalar int64, ``shape`` is ``[P, ...]``. The
    hash is computed in uint32 arithmetic (wrap-around multiplication, logical shifts), which
    gives the same bits as 64-bit arithmetic masked to 32 bits at half the memory traffic.
    """
    bits = tf.bitwise
    u32 = tf.uint32
    size = tf.cast(tf.reduce_prod(shape[1:]), tf.int32)
    index = tf.cast(tf.reshape(tf.range(size, dtype=tf.int32), [1, -1]), u32)
    low32 = lambda v: tf.cast(bits.bitwise_and(tf.cast(v, tf.int64), 0xFFFFFFFF), u32)  # noqa: E731
    const = lambda v: tf.constant(v, u32)  # noqa: E731

    def mix(x: Any, shift: int, factor: int | None) -> Any:
        x = bits.bitwise_xor(x, bits.right_shift(x, const(shift)))
        return x if factor is None else x * const(factor)

    x = low32(seeds)[:, None] * const(0x9E3779B1)
    x = x + low32(counter) * const(0x85EBCA77) + index * const(0xC2B2AE3D)
    x = mix(x, 16, 0x7FEB352D)
    x = mix(x, 15, 0x846CA68B)
    x = mix(x, 16, None)
    u = tf.cast(bits.right_shift(x, const(8)), tf.float32) * (1.0 / (1 << 24))
    return tf.reshape(u, shape)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding of one axis: the output has ``ceil(size / stride)``
    positions, the padding is split with the odd one after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def patches(
    tf: Any,
    images: Any,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
) -> Any:
    """``[n, h, w, c]`` → ``[n, h', w', kh*kw*c]``: each output pixel's kh×kw neighbourhood
    in Keras' kernel order (row, column, channel), so a Conv2D is one matrix product with
    the kernel reshaped to ``[kh*kw*c, filters]``. 'same' pads with zeros as TensorFlow
    does; 'valid' takes the windows that fit. Strided slices and a concat (rather than
    ``extract_patches``) keep the gradient cheap and XLA-friendly."""
    (kh, kw), (sh, sw) = kernel, strides
    height, width = int(images.shape[1]), int(images.shape[2])
    if padding == "same":
        top, bottom = _same_padding(height, kh, sh)
        left, right = _same_padding(width, kw, sw)
        images = tf.pad(images, [[0, 0], [top, bottom], [left, right], [0, 0]])
        height, width = height + top + bottom, width + left + right
    out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
    shifted = [
        images[:, i : i + (out_h - 1) * sh + 1 : sh, j : j + (out_w - 1) * sw + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    return tf.concat(shifted, axis=-1) if len(shifted) > 1 else shifted[0]


def max_pool_2x2(tf: Any, images: Any, height: int, width: int) -> Any:
    """``MaxPooling2D(2, padding='same')`` as a maximum over each window's four positions
    (an odd edge padded with -inf after its last row or column, as 'same' pooling pads).

    Measured in the digits CNN's XLA training step at P=64 on a CPU: 12.9 ms a step
    against 17.1 ms with ``max_pool2d``, whose gradient (select-and-scatter) was the step's
    largest cost. One difference: where a window holds several equal maxima, this gradient
    is shared among them, ``max_pool2d``'s goes to the first. Exact ties come from equal
    inputs (a ReLU's zeros, whose gradient the ReLU stops anyway), and the parity test
    against Keras' MaxPooling2D holds.
    """
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        padding = [[0, 0], [0, pad_h], [0, pad_w], [0, 0]]
        images = tf.pad(images, padding, constant_values=float("-inf"))
    half_h, half_w = (height + pad_h) // 2, (width + pad_w) // 2
    windows = tf.reshape(images, [-1, half_h, 2, half_w, 2, images.shape[-1]])
    return tf.reduce_max(windows, axis=[2, 4])


def pool(
    tf: Any,
    images: Any,
    kind: str,
    size: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
) -> Any:
    """Max or average pooling of ``[n, h, w, c]`` as Keras' MaxPooling2D/AveragePooling2D
    (TensorFlow's pooling ops, which Keras' TensorFlow backend calls; 'same' average
    pooling divides by the pixels inside the image). 2×2 max pooling with stride 2 takes
    :func:`max_pool_2x2`."""
    if kind == "max_pool" and size == (2, 2) and strides == (2, 2) and padding == "same":
        return max_pool_2x2(tf, images, int(images.shape[1]), int(images.shape[2]))
    op = tf.nn.max_pool2d if kind == "max_pool" else tf.nn.avg_pool2d
    return op(images, ksize=list(size), strides=list(strides), padding=padding.upper())


def activation_function(tf: Any, name: str) -> Callable[[Any], Any]:
    """The activation ``name`` as Keras computes it (``gelu``: the exact erf form)."""
    if name == "linear":
        return tf.identity
    if name == "sigmoid":
        return tf.sigmoid
    if name == "gelu":
        return lambda v: tf.nn.gelu(v, approximate=False)
    return getattr(tf.nn, name)
