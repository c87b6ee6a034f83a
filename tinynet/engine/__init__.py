"""The engine: how ``Sequential`` runs its layers fast.

The layers (:mod:`tinynet.layers`) are the textbook: each one's ``forward`` and
``backward`` say, in NCHW NumPy, what it computes, and each formula a step needs is a
function in the layer's file. The engine runs the same arithmetic faster: an
:class:`Engine` turns a model's layers into a plan of steps by a table of rewrite rules
(:mod:`.rules`), with channels-last activations between image layers, convolutions a
cache-sized chunk of images at a time on numba kernels (:mod:`.conv`), pooling as numba
loops fused with the ReLU and convolution before it (:mod:`.pool`), BatchNorm as two passes
over channels-last rows (:mod:`.normalization`), and the rewrites of a model that predicts
(:mod:`.inference`). Its readable twin is the textbook itself: ``model.layer_by_layer()``
runs every layer's own code, and the tests require the same results from both.

docs/engine.md is the protocol between the engine and the layers: what the engine may
read, what a layer declares, what the author of a new layer writes.
"""

from .plan import Engine, build_plan, plan_layers
from .rules import AS_WRITTEN, INFERENCE_RULES, TRAINING_RULES, Optional, Rule
from .steps import Step

__all__ = ["Engine", "build_plan", "plan_layers", "Rule", "Optional", "AS_WRITTEN", "TRAINING_RULES",
           "INFERENCE_RULES", "Step"]
