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


_INFRA = {"registry", "layers"}
_LOADED = False


def _ensure_loaded():
    """Imports every family module (each registers its constructors on import)."""
    global _LOADED
    if _LOADED:
        return
    import importlib
    import pkgutil
    import ghn_jax.zoo as package
    for m in pkgutil.iter_modules(package.__path__):
        if m.name not in _INFRA and not m.name.startswith("_"):
            importlib.import_module(f"ghn_jax.zoo.{m.name}")
    _LOADED = True


def _load_family(name: str) -> None:
    """Imports only the family module of `name` when the index knows it."""
    import importlib
    from ghn_jax.zoo._index import MODULE
    exact = _exact(name)
    if exact not in MODULE:
        loose = [n for n in MODULE if _norm(n) == _norm(name)]
        if len(loose) != 1:
            return
        exact = loose[0]
    importlib.import_module(f"ghn_jax.zoo.{MODULE[exact]}")


def canonical_name(name: str) -> str:
    return entry(name).name


def entry(name: str) -> ZooEntry:
    for load in (_load_family, lambda _: _ensure_loaded()):
        load(name)
        if _exact(name) in _REGISTRY:
            return _REGISTRY[_exact(name)]
        loose = _LOOSE.get(_norm(name), [])
        if len(loose) == 1 and (_LOADED or len([n for n in _index_names() if _norm(n) == _norm(name)]) == 1):
            return _REGISTRY[loose[0]]          # e.g. vit_b16 / ViT-B-16 -> vit_b_16
    loose = _LOOSE.get(_norm(name), [])
    names = sorted(_REGISTRY)
    close = loose or difflib.get_close_matches(_exact(name), names, n=4, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownArchError(
        f"unknown architecture '{name}'.{hint} (`python -m ghn_jax.graph --list` lists all {len(names)})")


def _index_names():
    from ghn_jax.zoo._index import MODULE
    return MODULE


def get(name: str, num_classes: int = 1000, **kwargs) -> nn.Module:
    """The Flax twin of torchvision's `name`, with `num_classes` outputs."""
    return entry(name).builder(num_classes=num_classes, **kwargs)


def input_size(name: str) -> int:
    return entry(name).input_size


def list_models() -> List[str]:
    _ensure_loaded()
    return sorted(e.name for e in _REGISTRY.values())
