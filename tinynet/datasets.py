"""MNIST and Fashion-MNIST loaders (IDX format)."""

__all__ = ["load_mnist", "load_fashion_mnist"]


def load_mnist(data_dir=None, download=True):
    raise NotImplementedError


load_fashion_mnist = load_mnist
