"""Layers: each a hand-written ``forward`` and ``backward`` (see :mod:`.base` for the contract)."""

from .activations import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from .attention import MultiHeadAttention
from .base import Layer
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout
from .embedding import Patches, PositionalEmbedding
from .normalization import BatchNorm1D, BatchNorm2D, LayerNorm
from .pooling import AvgPool2D, GlobalAvgPool1D, MaxPool2D
from .recurrent import LSTM, RNN
from .reshape import Flatten, Reshape
from .residual import Residual
from .softmax import Softmax

__all__ = [
    "Layer",
    "Dense",
    "Conv2D",
    "MaxPool2D",
    "AvgPool2D",
    "Flatten",
    "Reshape",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "Dropout",
    "BatchNorm1D",
    "BatchNorm2D",
    "Residual",
    "RNN",
    "LSTM",
    "LayerNorm",
    "GELU",
    "MultiHeadAttention",
    "Patches",
    "PositionalEmbedding",
    "GlobalAvgPool1D",
]
