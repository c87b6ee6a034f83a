"""The engine: how ``Sequential`` runs its layers fast.

The layers (:mod:`tinynet.layers`) are the textbook: each one's ``forward`` and
``backward`` say, in NCHW NumPy, what it computes. The engine runs the same arithmetic
faster: a plan of steps (:mod:`.plan`) with channels-last activations between image layers,
convolutions a cache-sized chunk of images at a time on numba kernels (:mod:`.conv`),
pooling as numba loops fused with the ReLU and convolution before it (:mod:`.pool`),
BatchNorm as two passes over channels-last rows (:mod:`.normalization`).

It reads layers only through what they show in public: ``params``, their configuration
(``kernel_size``, ``stride``, ...), ``check_input`` and the declared ``elementwise``. Each
step keeps its own saved values and fills the ``grads`` of the layers it runs, as their
backward would. Its readable twin is the textbook itself: ``model.layer_by_layer()`` runs
every layer's own code, and the tests require the same results from both.
"""

from .plan import FAST_STEPS, build_plan
from .steps import Step

__all__ = ["build_plan", "Step", "FAST_STEPS"]
