"""Pytrees addressed by '/'-joined paths ('params/layer1/0/conv1/kernel'), shared by the
graph, the checkpoint code and the file formats."""
from typing import Any, Dict, Mapping, Tuple

import jax


def path_keys(keypath) -> Tuple[str, ...]:
    """A jax key path as a tuple of strings."""
    return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in keypath)


def flatten(tree: Any) -> Dict[str, Any]:
    """{'a/b/c': leaf} in jax's tree order."""
    return {"/".join(path_keys(kp)): leaf for kp, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def unflatten(flat: Mapping[str, Any]) -> Dict[str, Any]:
    """Inverse of flatten for nested dicts."""
    tree: Dict[str, Any] = {}
    for path, leaf in flat.items():
        node = tree
        parts = path.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = leaf
    return tree


def get(tree: Any, path: str) -> Any:
    for k in path.split("/"):
        tree = tree[k]
    return tree
