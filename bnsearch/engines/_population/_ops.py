"""The population engine's tensor functions (members on the leading axis, never mixed)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from bnsearch.networks import GraphOp


def hash_uniform(seeds: Any, counter: Any, shape: Sequence[Any]) -> Any:
    """Uniform [0, 1) numbers ``shape`` (``[P, ...]``) from a counter-based uint32 hash of
    (seed ``[P]``, scalar counter, index): 64-bit arithmetic's bits masked to 32, at half the
    memory traffic."""
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


_Pads = tuple[tuple[int, int], tuple[int, int]]


def _padding(size: tuple[int, int], kernel: Any, strides: Any, padding: str) -> _Pads:
    """TensorFlow's padding of the two spatial axes: none if 'valid'; if 'same', each output
    axis has ``ceil(size / stride)`` positions, the padding split with the odd one after."""
    if padding != "same":
        return (0, 0), (0, 0)
    height, width = (
        max((-(-n // s) - 1) * s + k - n, 0) for n, k, s in zip(size, kernel, strides, strict=True)
    )
    return (height // 2, height - height // 2), (width // 2, width - width // 2)


def patches(images: Any, kernel: tuple[int, int], strides: tuple[int, int], padding: str) -> Any:
    """``[n, h, w, c]`` → ``[n, h', w', kh*kw*c]``: each output pixel's kh×kw neighbourhood
    in Keras' kernel order, as strided slices (a cheaper gradient than ``extract_patches``)."""
    (kh, kw), (sh, sw) = kernel, strides
    height, width = int(images.shape[1]), int(images.shape[2])
    if padding == "same":
        (top, bottom), (left, right) = _padding((height, width), kernel, strides, padding)
        images = tf.pad(images, [[0, 0], [top, bottom], [left, right], [0, 0]])
        height, width = height + top + bottom, width + left + right
    out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
    shifted = [
        images[:, i : i + (out_h - 1) * sh + 1 : sh, j : j + (out_w - 1) * sw + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    return tf.concat(shifted, axis=-1) if len(shifted) > 1 else shifted[0]


def member_conv2d(x: Any, kernels: Any, strides: tuple[int, int], padding: str) -> Any:
    """Each member's Conv2D (``x`` ``[P, rows, h, w, c]``, ``kernels`` ``[P, kh, kw, c, f]``),
    one ``conv2d`` a member, its gradients forward convolutions too: on a CPU TensorFlow's
    own input gradient (``Conv2DBackpropInput``) is many times slower, and XLA emits it as
    plain loops; a 1x1 convolution is one batched ``matmul``."""
    (kh, kw), (sh, sw) = kernels.shape[1:3], strides
    height, width = int(x.shape[2]), int(x.shape[3])
    if (kh, kw) == (1, 1):
        return _pointwise(x[:, :, ::sh, ::sw, :], kernels)
    pads = _padding((height, width), (kh, kw), strides, padding)

    @tf.custom_gradient
    def convolve(x: Any, kernels: Any) -> Any:
        def gradient(dy: Any) -> tuple[Any, Any]:
            # dx: dy dilated by the strides, padded, correlated with the flipped kernels
            spread = _spread_and_pad(dy, (kh, kw), (height, width), strides, pads)
            flipped = tf.transpose(tf.reverse(kernels, [1, 2]), [0, 1, 2, 4, 3])
            dx = _each_member(spread, flipped, (1, 1), "valid")
            if (sh, sw) == (1, 1):
                return dx, _kernel_gradient(x, dy, pads)
            return dx, _strided_kernel_gradient(x, dy, (kh, kw), strides, padding)

        return _each_member(x, kernels, strides, padding), gradient

    return convolve(x, kernels)


def _pointwise(x: Any, kernels: Any) -> Any:
    """A 1x1 convolution of every member as one batched ``matmul`` over the channels: one op
    whatever the population's size, where a ``conv2d`` a member is P of them."""
    size, height, width, channels = kernels.shape[0], int(x.shape[2]), int(x.shape[3]), x.shape[-1]
    filters = kernels.shape[-1]
    y = tf.matmul(
        tf.reshape(x, [size, -1, channels]), tf.reshape(kernels, [size, channels, filters])
    )
    return tf.reshape(y, [size, tf.shape(x)[1], height, width, filters])


def _strided_kernel_gradient(
    x: Any, dy: Any, kernel: tuple[int, int], strides: tuple[int, int], padding: str
) -> Any:
    """``dk`` of a strided convolution: each member's im2col patches of ``x`` times ``dy``."""
    P, height, width, c = x.shape[0], int(x.shape[2]), int(x.shape[3]), x.shape[-1]
    columns = patches(tf.reshape(x, [-1, height, width, c]), kernel, strides, padding)
    columns = tf.reshape(columns, [P, -1, kernel[0] * kernel[1] * c])
    dk = tf.matmul(columns, tf.reshape(dy, [P, -1, dy.shape[-1]]), transpose_a=True)
    return tf.reshape(dk, [P, *kernel, c, dy.shape[-1]])


def member_depthwise_conv2d(x: Any, kernels: Any, strides: tuple[int, int], padding: str) -> Any:
    """Each member's DepthwiseConv2D (``kernels`` ``[P, kh, kw, c, m]``) as one
    ``depthwise_conv2d`` over the members' channels side by side, which it never mixes."""
    size, kh, kw, channels, multiplier = (int(n) for n in kernels.shape)
    rows, height, width = tf.shape(x)[1], int(x.shape[2]), int(x.shape[3])
    joined = tf.reshape(tf.transpose(x, [1, 2, 3, 0, 4]), [rows, height, width, -1])
    kernel = tf.reshape(tf.transpose(kernels, [1, 2, 0, 3, 4]), [kh, kw, -1, multiplier])
    convolve = _depthwise if multiplier == 1 else _depthwise_forward
    y = convolve(joined, kernel, strides, padding)
    shape = [rows, int(y.shape[1]), int(y.shape[2]), size, channels * multiplier]
    return tf.transpose(tf.reshape(y, shape), [3, 0, 1, 2, 4])


def _depthwise(x: Any, kernel: Any, strides: tuple[int, int], padding: str) -> Any:
    """``depthwise_conv2d`` of ``[n, h, w, c]`` by ``[kh, kw, c, 1]``, its gradients forward
    depthwise convolutions too: on a CPU TensorFlow's kernel gradient
    (``DepthwiseConv2dNativeBackpropFilter``) is far slower than a forward one."""
    (kh, kw), (sh, sw) = kernel.shape[:2], strides
    height, width = int(x.shape[1]), int(x.shape[2])
    pads = _padding((height, width), (kh, kw), strides, padding)

    @tf.custom_gradient
    def convolve(x: Any, kernel: Any) -> Any:
        def gradient(dy: Any) -> tuple[Any, Any]:
            # dk: each (row, channel) of the padded x correlated with its own dy, dilated by
            # the strides, in one depthwise convolution with the rows beside the channels.
            out_h, out_w, channels = int(dy.shape[1]), int(dy.shape[2]), int(x.shape[3])
            padded = tf.pad(x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])
            used_h, used_w = (out_h - 1) * sh + kh, (out_w - 1) * sw + kw
            padded = padded[:, :used_h, :used_w, :]
            wide = tf.reshape(tf.transpose(padded, [1, 2, 0, 3]), [1, used_h, used_w, -1])
            taps = tf.reshape(tf.transpose(dy, [1, 2, 0, 3]), [out_h, out_w, -1, 1])
            per_row = tf.nn.depthwise_conv2d(wide, taps, [1, 1, 1, 1], "VALID", dilations=[sh, sw])
            dk = tf.reshape(
                tf.reduce_sum(tf.reshape(per_row, [kh, kw, -1, channels]), axis=2), kernel.shape
            )
            spread = _spread_and_pad(dy[None], (kh, kw), (height, width), strides, pads)[0]
            dx = tf.nn.depthwise_conv2d(spread, tf.reverse(kernel, [0, 1]), [1, 1, 1, 1], "VALID")
            return dx, dk

        return _depthwise_forward(x, kernel, strides, padding), gradient

    return convolve(x, kernel)


def _depthwise_forward(x: Any, kernel: Any, strides: tuple[int, int], padding: str) -> Any:
    """``depthwise_conv2d``; unequal strides, on every machine, as stride 1 and every
    stride-th output (that layer's arithmetic times ``sh * sw``): TensorFlow's own CPU kernel
    refuses them where oneDNN is off (an AMD CPU without AVX-512)."""
    sh, sw = strides
    if sh == sw:
        return tf.nn.depthwise_conv2d(x, kernel, [1, sh, sw, 1], padding.upper())
    pads = _padding((int(x.shape[1]), int(x.shape[2])), kernel.shape[:2], strides, padding)
    padded = tf.pad(x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")[:, ::sh, ::sw, :]


def _each_member(images: Any, kernels: Any, strides: Sequence[int], padding: str) -> Any:
    """``conv2d`` of member p's images ``[P, n, h, w, c]`` with its kernel, stacked."""
    members = zip(tf.unstack(images), tf.unstack(kernels), strict=True)
    return tf.stack([tf.nn.conv2d(a, k, list(strides), padding.upper()) for a, k in members])


def _spread_and_pad(
    dy: Any, kernel: tuple[int, int], size: tuple[int, int], strides: tuple[int, int], pads: _Pads
) -> Any:
    """``dy`` (``[P, rows, h', w', f]``) dilated by the strides and padded so that its valid
    correlation with the flipped kernel is the input's gradient, of the input's size."""
    (kh, kw), (sh, sw) = kernel, strides
    P, out_h, out_w, f = dy.shape[0], int(dy.shape[2]), int(dy.shape[3]), dy.shape[-1]
    if (sh, sw) != (1, 1):  # zeros between dy's rows and columns
        spread = dy[:, :, :, None, :, None, :]
        spread = tf.pad(spread, [[0, 0]] * 3 + [[0, sh - 1], [0, 0], [0, sw - 1], [0, 0]])
        spread = tf.reshape(spread, [P, -1, out_h * sh, out_w * sw, f])
        dy = spread[:, :, : (out_h - 1) * sh + 1, : (out_w - 1) * sw + 1, :]
    edges = [
        [k - 1 - before, n + before - (out - 1) * s - 1]
        for (before, _), n, k, s, out in zip(
            pads, size, (kh, kw), strides, (out_h, out_w), strict=True
        )
    ]
    return tf.pad(dy, [[0, 0], [0, 0], *edges, [0, 0]])


def _kernel_gradient(x: Any, dy: Any, pads: _Pads) -> Any:
    """``dk`` for stride 1: padded ``x``, channels as the batch, correlated with ``dy``; each
    member's operands transposed on their own (a transpose of the stacked tensors would be
    fused into each member's slice, which then copies strided memory)."""
    padded = tf.pad(x, [[0, 0], [0, 0], list(pads[0]), list(pads[1]), [0, 0]])
    correlated = [  # [c, h + pad, w + pad, rows] with [h', w', rows, f]: [c, kh, kw, f]
        tf.nn.conv2d(tf.transpose(a, [3, 1, 2, 0]), tf.transpose(g, [1, 2, 0, 3]), 1, "VALID")
        for a, g in zip(tf.unstack(padded), tf.unstack(dy), strict=True)
    ]
    return tf.transpose(tf.stack(correlated), [0, 2, 3, 1, 4])  # Keras' [P, kh, kw, c, f]


def max_pool_2x2(images: Any, height: int, width: int) -> Any:
    """``MaxPooling2D(2, padding='same')`` as a maximum over each window's four positions,
    faster under XLA than ``max_pool2d``'s gradient (which goes to the first of equal maxima;
    this one is shared among them)."""
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        padding = [[0, 0], [0, pad_h], [0, pad_w], [0, 0]]
        images = tf.pad(images, padding, constant_values=float("-inf"))
    half_h, half_w = (height + pad_h) // 2, (width + pad_w) // 2
    windows = tf.reshape(images, [-1, half_h, 2, half_w, 2, images.shape[-1]])
    return tf.reduce_max(windows, axis=[2, 4])


def activation_function(name: str) -> Callable[[Any], Any]:
    """The activation ``name`` as Keras computes it (``gelu``: the exact erf form; a
    ``relu(max_value=…,negative_slope=…,threshold=…)``: Keras' ``ReLU`` layer's)."""
    if name == "linear":
        return tf.identity
    if name == "sigmoid":
        return tf.sigmoid
    if name == "gelu":
        return lambda v: tf.nn.gelu(v, approximate=False)
    if name in ("tanh", "relu", "elu", "selu"):
        return getattr(tf.nn, name)
    import keras  # the rest as Keras computes them: on TensorFlow, TensorFlow ops

    if name.startswith("relu("):
        settings = dict(part.split("=") for part in name[5:-1].split(","))
        kwargs = {k: None if v == "None" else float(v) for k, v in settings.items()}
        return lambda v: keras.activations.relu(v, **kwargs)
    return keras.activations.get(name)


# long because each stateless kind is one short branch; splitting them scatters the forms.
def stateless_op(op: GraphOp, inputs: list[Any]) -> Any:
    """An op without weights or per-member state (joins, pooling, padding and cropping,
    fixed preprocessing, reshapes) on ``[P, rows, ...]``."""
    x = inputs[0]
    if op.kind == "add":
        return tf.add_n(inputs)
    if op.kind == "multiply":
        return functools.reduce(tf.multiply, inputs)
    if op.kind == "concat":
        return tf.concat(inputs, axis=-1)
    if op.kind in ("global_avg_pool", "global_max_pool"):  # over the spatial axes, 1-D or 2-D
        reduce = tf.reduce_mean if op.kind == "global_avg_pool" else tf.reduce_max
        return reduce(x, axis=list(range(2, x.shape.rank - 1)))
    if op.kind == "permute":  # Keras' dims count from 1 after the batch axis
        return tf.transpose(x, [0, 1, *(int(d) + 1 for d in op.params)])
    if op.kind == "zero_pad":
        top, bottom, left, right = (int(n) for n in op.params)
        return tf.pad(x, [[0, 0], [0, 0], [top, bottom], [left, right], [0, 0]])
    if op.kind == "crop":
        top, bottom, left, right = (int(n) for n in op.params)
        height, width = x.shape[2], x.shape[3]
        return x[:, :, top : height - bottom, left : width - right, :]
    if op.kind == "rescale":
        return x * op.params[0] + op.params[1]
    if op.kind == "normalize":  # Keras': (x - mean) / max(sqrt(variance), epsilon)
        channels = op.shape[-1]
        mean = tf.constant(op.params[:channels], tf.float32)
        deviation = tf.sqrt(tf.constant(op.params[channels:], tf.float32))
        return (x - mean) / tf.maximum(deviation, 1e-7)
    if op.kind in ("flatten", "reshape"):
        return tf.reshape(x, [tf.shape(x)[0], tf.shape(x)[1], *op.shape])
    # max_pool / avg_pool: members and rows share the image axis of TF's pooling.
    images = tf.reshape(x, [-1, *x.shape[2:]])
    if op.kind == "max_pool" and op.pool_size == op.strides == (2, 2) and op.padding == "same":
        pooled = max_pool_2x2(images, int(images.shape[1]), int(images.shape[2]))
    else:
        pool = tf.nn.max_pool2d if op.kind == "max_pool" else tf.nn.avg_pool2d
        size, strides = list(op.pool_size), list(op.strides)
        pooled = pool(images, ksize=size, strides=strides, padding=op.padding.upper())
    return tf.reshape(pooled, [tf.shape(x)[0], tf.shape(x)[1], *op.shape])
