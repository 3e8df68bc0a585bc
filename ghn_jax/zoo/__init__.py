"""Flax twins of torchvision's image classifiers (NHWC, torchvision's numbers).

`get('resnet50')` returns the Flax module; `list_models()` lists all names. Every module
in this package other than `registry`, `layers` and `_index` is a model family that
registers its constructors on import; a lookup imports only the family it needs
(`_index`), `list_models()` imports them all.
"""
from ghn_jax.zoo.registry import (ZooEntry, canonical_name, entry, get, input_size,
                                  list_models, register)

__all__ = ["ZooEntry", "canonical_name", "entry", "get", "input_size", "list_models", "register"]
