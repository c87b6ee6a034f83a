"""Inference in the engine: the rewrites a runtime makes before it serves a model.

A model that predicts (``forward(x, training=False)``, ``predict``, ``evaluate``) runs a plan
of its own, made from the same layers by the inference rules (:data:`~.rules.INFERENCE_RULES`).
It computes what the layers compute at inference, with the rewrites ONNX Runtime and
PyTorch's ``freeze`` make, each a rule tested against the layers run one by one:

- **Dropout goes**: at inference it is the identity.
- **BatchNorm becomes an epilogue.** With its running statistics it is an affine map per
  channel, ``y = s*x + t`` (the layer's own :func:`~tinynet.layers.normalization.inference_affine`).
  It is applied to the output of the step before it while that output is still in cache:
  ``(x @ W + b)*s + t`` after a convolution or a dense layer, ``s*pool + t`` after a pooling.
  Runtimes fold ``s`` into the weights instead, which needs a copy of the weights kept in
  step with every change to them; ``s`` and ``t`` are a few dozen numbers, worked out again
  at every call from the layers as they are, so a model whose weights or statistics change
  never predicts with stale ones.
- **Bias and ReLU join the product's epilogue**: applied as the register tiles store each
  part of the output (:func:`~tinynet.kernels.matmul`'s ``scale``, ``shift`` and ``relu``),
  or right after the product on each output chunk where the BLAS multiplies, instead of a
  step per layer.
- **A convolution without padding reads its windows where they lie** when its product runs
  in tiles (a thin one with a pooling goes to its own kernel, below): no columns are written
  (:func:`~tinynet.kernels.convolution_matmul`);
  and a 2x2 max pooling after it is taken in the tiles' store, the four pixels of a window
  side by side in a tile, so the convolution's output is not written either
  (:func:`~tinynet.kernels.convolution_maxpool`).
- **Pooling keeps no argmax**: nothing will route a gradient back.
- **A thin convolution goes straight into its pooling.** One input channel and a 3x3 kernel
  (9 products an output, 32 filters) is little arithmetic on a large output; the kernel
  :func:`~tinynet.kernels.conv_maxpool_infer` sums a row of outputs at a time and pools it
  at once, or, for a batch in the engine's hold, sends it to the pooled tiles; neither
  columns nor the convolution's output are ever stored.
- **A Flatten of channels-last activations meets the Dense after it halfway.** Training puts
  every image back in NCHW order so the Dense weights' rows keep their meaning; at inference,
  when the batch has more images than the Dense layer has outputs, the weights' rows are put
  in the activations' order instead, the smaller copy (:class:`FlattenDenseEpilogueStep`).

- **A Residual's inner layers** get the same rewrites, planned by the same rules.

Everything else runs on the training engine's steps with ``training=False``.
"""

import numpy as np

from ..kernels import conv_maxpool_infer, convolution_maxpool, matmul, maxpool_infer
from ..layers.normalization import inference_affine
from ..layers.reshape import flatten
from .conv import ConvReluMaxPoolStep, _Convolution
from .pool import check_pool_fits
from .steps import FlattenChannelsLast, Step

__all__ = ["folded_batchnorm", "ConvEpilogueStep", "ConvPoolInferenceStep", "DenseEpilogueStep",
           "FlattenDenseEpilogueStep", "FlattenRows"]


def folded_batchnorm(norm):
    """``(s, t)``: a BatchNorm layer at inference as ``y = s*x + t`` per channel (the layer's own map), or
    ``(None, None)`` for no layer."""
    if norm is None:
        return None, None
    return inference_affine(norm.params["gamma"], norm.params["beta"], norm.running_mean, norm.running_var, norm.eps)


def _epilogue(bias, norm):
    """``(scale, shift)`` per output column for the product's epilogue (:func:`~tinynet.kernels.matmul`):
    ``(x @ W) * scale + shift`` is ``x @ W + bias`` (no scale) and, with a BatchNorm after it, that layer's
    ``(x @ W + bias) * s + t`` as ``(x @ W) * s + (bias * s + t)``."""
    scale, shift = folded_batchnorm(norm)
    if scale is None:
        return None, bias
    return scale, shift if bias is None else bias * scale + shift


def _named(positions, layers, suffix):
    names = " + ".join(f"{position} {type(layer).__name__}" for position, layer in zip(positions, layers,
                                                                                           strict=True))
    return f"{names} ({suffix})"


class _EpilogueStep(Step):
    """A product (``layer``), then (optionally) its BatchNorm and a ReLU applied to its output in place."""

    def __init__(self, positions, layers, layer, norm=None, relu=False):
        super().__init__()
        self.positions, self.layers = positions, layers
        self.layer, self.norm, self.relu = layer, norm, relu


class ConvEpilogueStep(_EpilogueStep):
    """Conv2D on NHWC activations, then (optionally) its BatchNorm2D and a ReLU on each chunk while in cache."""

    convolves = True

    def forward(self, x, training=False):
        convolution = _Convolution(self.layer)
        x = convolution.checked(x)
        out = np.empty(convolution.output_shape(x.shape), dtype=self.layer.dtype)
        scale, shift = _epilogue(self.layer.params["b"], self.norm)
        for _ in convolution.chunks(x, out=out, scale=scale, shift=shift, relu=self.relu, in_place=True):
            pass  # each chunk is written into out, its epilogue with it
        return out

    def describe(self):
        return _named(self.positions, self.layers, "inference, NHWC, chunked")


class ConvPoolInferenceStep(ConvReluMaxPoolStep):
    """Conv2D, ReLU, MaxPool2D and (optionally) the BatchNorm2D after them, a chunk of images at a time.

    The training step's arithmetic (:class:`~.conv.ConvReluMaxPoolStep`), with the pooling's
    argmax left out and the BatchNorm applied to each pooled value as it is written; a thin
    convolution without padding is computed inside its pooling windows instead.
    """

    def __init__(self, positions, layers, conv, pool, norm=None):
        super().__init__(positions, conv, pool)
        self.layers, self.norm = layers, norm

    def forward(self, x, training=False):
        convolution = _Convolution(self.conv)
        x = convolution.checked(x)
        x = x[:, : self._rows_read(x.shape[1], 0), : self._rows_read(x.shape[2], 1)]
        window = (*self.pool.pool_size, *self.pool.stride)
        if not len(x):  # an empty batch: the training step's shapes, no work
            return super().forward(x)
        y_shape = convolution.output_shape(x.shape)
        check_pool_fits(self, self.positions[2], self.pool, y_shape[1], y_shape[2])
        scale, shift = folded_batchnorm(self.norm)
        if self._in_pooling_windows():
            return conv_maxpool_infer(x, convolution.weight_rows().T, *self.conv.kernel_size, *self.conv.stride,
                                      *window, True, self.conv.params["b"], scale, shift)
        x = np.ascontiguousarray(x)
        if window == (2, 2, 2, 2) and not any(self.conv.padding):  # the pooling in the product's store, where tiled
            columns, chunk = convolution.weight_columns(), convolution.images_per_chunk(x.shape)
            pooled = [convolution_maxpool(x[start : start + chunk], *self.conv.kernel_size, *self.conv.stride, columns,
                                          True, self.conv.params["b"], scale, shift)
                      for start in range(0, len(x), chunk)]
        else:
            pooled = [maxpool_infer(y, *window, True, self.conv.params["b"], scale, shift)
                      for _, y in convolution.chunks(x, in_place=True)]
        return np.concatenate(pooled) if len(pooled) > 1 else pooled[0]

    def _in_pooling_windows(self):
        """Whether the convolution is computed inside the pooling windows: thin, and without padding."""
        return _Convolution(self.conv).thin and not any(self.conv.padding)

    def describe(self):
        how = "in the pooling windows" if self._in_pooling_windows() else "chunked"
        return _named(self.positions, self.layers, f"inference, NHWC, {how}")


def _dense_product(x, weights, bias, norm, relu):
    """Dense's ``x @ W + b`` on ``(N, ..., D)`` (every position a row, as the layer's :func:`affine`), its
    BatchNorm and ReLU in the product's epilogue."""
    scale, shift = _epilogue(bias, norm)
    rows = matmul(x.reshape(-1, x.shape[-1]), weights, scale=scale, shift=shift, relu=relu)  # (R,D) @ (D,M)
    return rows.reshape(*x.shape[:-1], weights.shape[1])


class DenseEpilogueStep(_EpilogueStep):
    """Dense, then (optionally) its BatchNorm1D and a ReLU, in place on the product."""

    def forward(self, x, training=False):
        weights = self.layer.params["W"]
        if not (x.ndim == 2 and x.shape[1] == len(weights) and x.dtype == weights.dtype):
            x = self.layer.check_input(x)  # converts, or says what is wrong
        if x.ndim > 2 and self.norm is not None:  # BatchNorm1D takes (N, C) only: its own error
            self.norm.check_input(x @ weights)
        return _dense_product(x, weights, self.layer.params["b"], self.norm, self.relu)

    def describe(self):
        return _named(self.positions, self.layers, "inference")


class FlattenDenseEpilogueStep(Step):
    """Flatten of NHWC activations, then Dense (+ BatchNorm1D) (+ ReLU): the Dense weights' rows laid out in the
    activations' ``(h, w, c)`` order when that copies fewer values than putting the batch in NCHW order would.

    Dense's rows follow NCHW's flattening, ``(c, h, w)``; the training plan reorders every image to match them
    (:class:`~.steps.FlattenChannelsLast`). ``W`` has ``C*H*W`` rows of ``M`` values, a batch ``N`` images of
    ``C*H*W``: for ``N > M`` reordering ``W`` is the smaller copy (a Keras convnet predicting 1,000 images:
    16,000 values instead of 1.6 million). Copied at every call, so a changed weight shows at once.
    """

    def __init__(self, positions, layers, norm=None, relu=False):
        super().__init__()
        self.positions, self.layers, self.layer = positions, layers, layers[1]
        self._flatten = FlattenChannelsLast(positions[0], layers[0])
        self._dense = DenseEpilogueStep(positions[1:], layers[1:], layers[1], norm, relu)

    def forward(self, x, training=False):
        weights = self.layer.params["W"]
        if (isinstance(x, np.ndarray) and x.ndim == 4 and x.dtype == weights.dtype
                and x.size > weights.size and x[0].size == len(weights)):
            n, h, w, c = x.shape
            rows_in_hwc = weights.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(len(weights), -1)
            return _dense_product(x.reshape(n, -1), rows_in_hwc, self.layer.params["b"], self._dense.norm,
                                  self._dense.relu)  # (N,HWC) @ (HWC,M)
        return self._dense.forward(self._flatten.forward(x))  # the layers' checks and errors, in their order

    def describe(self):
        return _named(self.positions, self.layers, "inference, from NHWC")


class FlattenRows(Step):
    """Flatten of NCHW (or any) floats at inference: a reshape, the layer's checks only when it has something to say."""

    def __init__(self, position, layer):
        super().__init__()
        self.positions, self.layer = (position,), layer

    def forward(self, x, training=False):
        if isinstance(x, np.ndarray) and x.ndim >= 2 and x.dtype.kind == "f":
            return flatten(x)
        return self.layer.forward(x)

    def describe(self):
        return f"{self.positions[0]} Flatten (inference)"
