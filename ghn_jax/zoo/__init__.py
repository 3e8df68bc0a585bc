"""Flax twins of torchvision's image classifiers (NHWC, torchvision's numbers).

`get('resnet50')` returns the Flax module; `list_models()` lists all names. Every module
in this package other than `registry` and `layers` is a model family that registers
its constructors on import.
"""
import importlib
import pkgutil

from ghn_jax.zoo.registry import (ZooEntry, canonical_name, entry, get, input_size,
                                  list_models, register)

_INFRA = {"registry", "layers"}
for _m in pkgutil.iter_modules(__path__):
    if _m.name not in _INFRA and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["ZooEntry", "canonical_name", "entry", "get", "input_size", "list_models", "register"]
