"""How ``Sequential`` runs its layers: in order, with convolutions kept channels-last.

Every layer's public ``forward``/``backward`` takes and returns NCHW images, the layout of
DESIGN.md and of saved weights. Inside a model, consecutive image layers (Conv2D, the
pooling layers and the element-wise activations between them) exchange channels-last
(NHWC) activations instead: the layout changes once on the way in and once on the way out,
not twice per layer. In NHWC the ``C`` values of a pixel are adjacent, so im2col copies
contiguous runs, the convolution of a whole batch is one matrix product whose result is
already the next layer's input, and pooling and activations run over contiguous channels.

Two fusions change nothing but the time. A ReLU directly followed by a MaxPool2D runs as
one step, ``relu(maxpool(x))``, which equals ``maxpool(relu(x))`` exactly (ReLU is
monotonic) and touches a quarter of the data; its backward routes each gradient to the
window's maximum only where that maximum was positive, which is the same gradient. And when
a Conv2D comes right before that pair, the convolution's bias is added by the pooling pass
as it reads each value (the same sums, one sweep over the largest activations fewer).
That fused convolution also skips the outputs its pooling never reads (the last row and
column of an odd-sized map): the same outputs and input gradients, and a weight gradient
summed over fewer zero terms, so equal up to the rounding of those sums.

:meth:`Sequential.execution_plan` lists the steps; each names the layers it runs, so the
plan can be printed and profiled. The layers' results are the same either way (to the
rounding just said); the tests compare the plan with running the layers one by one.
"""

import numpy as np

from .kernels import maxpool_backward, maxpool_forward, output_size
from .layers import AvgPool2D, BatchNorm2D, Conv2D, Flatten, LeakyReLU, MaxPool2D, ReLU, Sigmoid, Tanh
from .layers.base import to_channels_first, to_channels_last

__all__ = ["build_plan", "Step"]

_CHANNELS_LAST = (Conv2D, MaxPool2D, AvgPool2D, BatchNorm2D)
_ELEMENT_WISE = (ReLU, LeakyReLU, Sigmoid, Tanh)


class Step:
    """One step of a plan: a layer (or a fused pair) in a given layout, or a layout change."""

    #: Positions in the model of the layers this step runs.
    positions = ()

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @property
    def trainable(self):
        return False

    def describe(self):
        raise NotImplementedError


class _LayerStep(Step):
    """A layer run as written (NCHW), or an element-wise one on whatever layout it is given."""

    def __init__(self, position, layer):
        self.positions, self.layer = (position,), layer

    def forward(self, x, training=False):
        return self.layer.forward(x, training=training)

    def backward(self, grad):
        return self.layer.backward(grad)

    def _backward_params_only(self, grad):
        return self.layer._backward_params_only(grad)

    @property
    def trainable(self):
        return bool(self.layer.params)

    def describe(self):
        return f"{self.positions[0]} {type(self.layer).__name__}"


class _ChannelsLastStep(_LayerStep):
    """A Conv2D, pooling or BatchNorm2D layer on NHWC activations."""

    def forward(self, x, training=False):
        return self.layer._forward_channels_last(x, training)

    def backward(self, grad):
        return self.layer._backward_channels_last(grad)

    def _backward_params_only(self, grad):
        # Only Conv2D has a cheaper backward without the input gradient; the others compute both.
        return getattr(self.layer, "_backward_params_only_channels_last", self.layer._backward_channels_last)(grad)

    def describe(self):
        return f"{super().describe()} (NHWC)"


class _ReluMaxPoolStep(Step):
    """A ReLU and the MaxPool2D after it, as one NHWC pass: ``relu(maxpool(x))``."""

    def __init__(self, positions, pool):
        self.positions, self.pool = positions, pool

    def forward(self, x, training=False):
        return self.pool._forward_channels_last(x, training, relu=True)

    def backward(self, grad):
        return self.pool._backward_channels_last(grad)

    def describe(self):
        return f"{self.positions[0]} ReLU + {self.positions[1]} MaxPool2D (fused, NHWC)"


class _ConvReluMaxPoolStep(Step):
    """Conv2D, ReLU, MaxPool2D on a cache-sized chunk of images at a time.

    Each chunk is unfolded, multiplied by the filters, and pooled, clipped and given its bias
    (``relu(maxpool(conv(x)))``, ``+ b`` added as the pooling reads each value) while it is
    still in cache: the convolution's output, the largest activation of an MNIST CNN (11 MB
    for 128 images after the first layer), never exists for the whole batch. Backward goes
    the same way, chunk by chunk: the pooling routes the gradient, the convolution takes the
    columns it kept (or unfolds them again), and the weight gradients are summed over the chunks.

    Only the convolution outputs the pooling reads are computed. Pooling 2x2 with stride 2
    keeps ``floor(size / 2)`` windows, so an odd-sized map loses its last row and column (the
    MNIST CNN's second convolution: 11x11, of which the windows cover 10x10); the input rows
    and columns that feed only those outputs are left out of the convolution, and get a zero
    gradient, which is exactly theirs. 17% less work for that convolution; the weight
    gradient then sums over fewer zero terms, so it can differ from the layer-by-layer run's
    in the last bits.
    """

    def __init__(self, positions, conv, pool):
        self.positions, self.conv, self.pool = positions, conv, pool

    def forward(self, x, training=False):
        conv, pool = self.conv, self.pool
        if training:  # backward's gradient covers the rows and columns left out too
            self._input_shape = x.shape
        x = x[:, : self._rows_read(x.shape[1], 0), : self._rows_read(x.shape[2], 1)]
        y_shape = conv._output_shape(x.shape)
        window, bias = (*pool.pool_size, *pool.stride), conv.params["b"]
        pooled = [maxpool_forward(y, *window, relu=True, bias=bias) for _, y in conv._convolve_chunks(x, training)]
        if pooled:
            out, argmax = (np.concatenate(parts) for parts in zip(*pooled, strict=True))
        else:  # an empty batch
            out = np.empty((0, *_pooled_shape(pool, y_shape)), conv.dtype)
            argmax = np.empty(out.shape, np.int32)
        pool._save(training, argmax, y_shape)
        return out

    def _backward(self, grad, input_grad):
        argmax, y_shape = self.pool._saved_values()
        window = (*self.pool.pool_size, *self.pool.stride)

        def grad_chunk(start, stop):
            return maxpool_backward(grad[start:stop], argmax[start:stop], (stop - start, *y_shape[1:]), *window)

        grad_x = self.conv._backward_chunks(None, input_grad, grad_chunk)
        if grad_x is None or grad_x.shape == self._input_shape:
            return grad_x
        whole = np.zeros(self._input_shape, grad_x.dtype)  # the rows and columns no pooled output saw
        whole[:, : grad_x.shape[1], : grad_x.shape[2]] = grad_x
        return whole

    def _rows_read(self, size, axis):
        """How many input rows (``axis`` 0) or columns (1) of ``size`` feed the outputs the pooling reads."""
        conv, pool = self.conv, self.pool
        kernel, stride, padding = conv.kernel_size[axis], conv.stride[axis], conv.padding[axis]
        window, step = pool.pool_size[axis], pool.stride[axis]
        outputs = output_size(size, kernel, stride, padding)
        if padding or outputs < window:  # padded images, or too small to pool: as they are
            return size
        read = (outputs - window) // step * step + window  # outputs inside some pooling window
        return (read - 1) * stride + kernel

    def backward(self, grad):
        return self._backward(grad, input_grad=True)

    def _backward_params_only(self, grad):
        self._backward(grad, input_grad=False)

    @property
    def trainable(self):
        return True

    def describe(self):
        first, second, third = self.positions
        return f"{first} Conv2D + {second} ReLU + {third} MaxPool2D (fused, NHWC, chunked)"


def _pooled_shape(pool, y_shape):
    (kh, kw), (sh, sw) = pool.pool_size, pool.stride
    return (y_shape[1] - kh) // sh + 1, (y_shape[2] - kw) // sw + 1, y_shape[3]


class _ToChannelsLast(Step):
    """NCHW -> NHWC on the way into a run of image layers (free for one channel)."""

    def __init__(self, first_layer):
        self.first_layer = first_layer

    def forward(self, x, training=False):
        return to_channels_last(self.first_layer._checked_input(x))  # the layer's own errors, in NCHW terms

    def backward(self, grad):
        return to_channels_first(grad)

    def describe(self):
        return "NCHW -> NHWC"


class _ToChannelsFirst(Step):
    """NHWC -> NCHW on the way out of a run, for a layer that needs NCHW."""

    def forward(self, x, training=False):
        return to_channels_first(x)

    def backward(self, grad):
        return to_channels_last(grad)

    def describe(self):
        return "NHWC -> NCHW"


class _FlattenChannelsLast(Step):
    """Flatten of NHWC activations into NCHW order ``(c, h, w)``, so Dense weights keep their meaning."""

    def __init__(self, position, layer):
        self.positions, self.layer = (position,), layer
        self.shape = None

    def forward(self, x, training=False):
        self.shape = x.shape
        return to_channels_first(x).reshape(x.shape[0], -1)

    def backward(self, grad):
        n, h, w, c = self.shape
        return to_channels_last(grad.reshape(n, c, h, w))

    def describe(self):
        return f"{self.positions[0]} Flatten (from NHWC)"


def build_plan(layers):
    """The steps that run ``layers``: NHWC runs of image layers, fused ReLU + MaxPool2D pairs."""
    plan, position, count = [], 0, len(layers)
    while position < count:
        layer = layers[position]
        if not isinstance(layer, _CHANNELS_LAST):
            plan.append(_LayerStep(position, layer))
            position += 1
            continue
        plan.append(_ToChannelsLast(layer))
        while position < count and isinstance(layers[position], _CHANNELS_LAST + _ELEMENT_WISE):
            layer = layers[position]
            following = layers[position + 1] if position + 1 < count else None
            after = layers[position + 2] if position + 2 < count else None
            if type(layer) is Conv2D and type(following) is ReLU and type(after) is MaxPool2D:
                plan.append(_ConvReluMaxPoolStep((position, position + 1, position + 2), layer, after))
                position += 3
            elif type(layer) is ReLU and type(following) is MaxPool2D:
                plan.append(_ReluMaxPoolStep((position, position + 1), following))
                position += 2
            elif isinstance(layer, _CHANNELS_LAST):
                plan.append(_ChannelsLastStep(position, layer))
                position += 1
            else:
                plan.append(_LayerStep(position, layer))
                position += 1
        if position < count and type(layers[position]) is Flatten:
            plan.append(_FlattenChannelsLast(position, layers[position]))
            position += 1
        else:
            plan.append(_ToChannelsFirst())
    return plan
