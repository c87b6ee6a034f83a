"""Input and output: models and checkpoints in files, and models for other frameworks.

- :mod:`.serialization`: a model's architecture and arrays, written to ``.npz``;
- :mod:`.checkpoint`: training state (weights, optimizer, epoch, history, generators), and resuming it;
- :mod:`.loading`: ``load_model`` and ``load_checkpoint``, which never unpickle;
- :mod:`._archive`: the hardened zip reader both use (writes are atomic, :mod:`tinynet._io`);
- :mod:`.export`: ONNX graphs and PyTorch modules.
"""
