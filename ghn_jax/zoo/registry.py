"""Registry of zoo architectures, keyed by torchvision name.

Lookup is forgiving about spelling: case, '-', '_' and '.' are ignored, so `vit_b16`,
`ViT-B-16` and `vit_b_16` all name torchvision's `vit_b_16`. An unknown name is answered
with the closest registered names.
"""
import dataclasses
import difflib
import re
from typing import Callable, Dict, List

import flax.linen as nn

from ghn_jax.errors import UnknownArchError


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    name: str                      # torchvision constructor name
    builder: Callable[..., nn.Module]
    input_size: int = 224          # image side the reference builds the graph at
    family: str = ""


_REGISTRY: Dict[str, ZooEntry] = {}


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", name.lower())


def register(name: str, *, input_size: int = 224, family: str = ""):
    """Decorator: `@register('resnet50')` on `def resnet50(num_classes=1000) -> nn.Module`."""
    def deco(fn):
        key = _norm(name)
        if key in _REGISTRY:
            raise ValueError(f"zoo name '{name}' registered twice")
        _REGISTRY[key] = ZooEntry(name, fn, input_size, family or fn.__module__.rsplit(".", 1)[-1])
        return fn
    return deco


def _ensure_loaded():
    # Importing the package imports every family module, which registers it.
    import ghn_jax.zoo  # noqa: F401


def canonical_name(name: str) -> str:
    return entry(name).name


def entry(name: str) -> ZooEntry:
    _ensure_loaded()
    key = _norm(name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    names = sorted(e.name for e in _REGISTRY.values())
    close = difflib.get_close_matches(name.lower(), names, n=4, cutoff=0.5)
    if not close:
        close = difflib.get_close_matches(key, [_norm(n) for n in names], n=4, cutoff=0.5)
        close = [_REGISTRY[c].name for c in close]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownArchError(
        f"unknown architecture '{name}'.{hint} (`python -m ghn_jax.graph --list` lists all {len(names)})")


def get(name: str, num_classes: int = 1000, **kwargs) -> nn.Module:
    """The Flax twin of torchvision's `name`, with `num_classes` outputs."""
    return entry(name).builder(num_classes=num_classes, **kwargs)


def input_size(name: str) -> int:
    return entry(name).input_size


def list_models() -> List[str]:
    _ensure_loaded()
    return sorted(e.name for e in _REGISTRY.values())
