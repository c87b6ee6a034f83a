"""Data: data sets and the files people bring, and augmentation.

- :mod:`.datasets`: MNIST and Fashion-MNIST (checked, cached), and the public loaders;
- :mod:`._formats`: Kaggle's CSV files and the reference notebook's ``.mat``;
- :mod:`._images`: your own digit pictures, prepared the MNIST way;
- :mod:`.augment`: random shifts and affine warps of training batches.
"""
