"""Registry of zoo architectures, keyed by torchvision name.

Lookup is forgiving about spelling: case, '-', '_' and '.' are ignored where that leaves
one candidate, so `vit_b16`, `ViT-B-16` and `vit_b_16` all name torchvision's `vit_b_16`
(but `regnet_y_16gf` and `regnet_y_1_6gf` stay distinct). An unknown name is answered
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


_REGISTRY: Dict[str, ZooEntry] = {}          # exact torchvision name -> entry
_LOOSE: Dict[str, List[str]] = {}             # name without separators -> torchvision names


def _exact(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", name.lower())


def register(name: str, *, input_size: int = 224, family: str = ""):
    """Decorator: `@register('resnet50')` on `def resnet50(num_classes=1000) -> nn.Module`."""
    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"zoo name '{name}' registered twice")
        _REGISTRY[name] = ZooEntry(name, fn, input_size, family or fn.__module__.rsplit(".", 1)[-1])
        _LOOSE.setdefault(_norm(name), []).append(name)
        return fn
    return deco


def _ensure_loaded():
    # Importing the package imports every family module, which registers it.
    import ghn_jax.zoo  # noqa: F401


def canonical_name(name: str) -> str:
    return entry(name).name


def entry(name: str) -> ZooEntry:
    _ensure_loaded()
    if _exact(name) in _REGISTRY:
        return _REGISTRY[_exact(name)]
    loose = _LOOSE.get(_norm(name), [])
    if len(loose) == 1:                      # e.g. vit_b16 / ViT-B-16 -> vit_b_16
        return _REGISTRY[loose[0]]
    names = sorted(_REGISTRY)
    close = loose or difflib.get_close_matches(_exact(name), names, n=4, cutoff=0.5)
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
