"""Writing predicted Flax variables to files: .safetensors (flat paths) or .msgpack."""
from typing import Any, Dict

import numpy as np
import jax

from ghn_jax.cli import atomic_write


def flat_variables(variables: Any) -> Dict[str, np.ndarray]:
    out = {}
    for kp, leaf in jax.tree_util.tree_flatten_with_path(dict(variables))[0]:
        out["/".join(getattr(k, "key", str(k)) for k in kp)] = np.ascontiguousarray(np.asarray(leaf))
    return out


def save_flax(path: str, variables: Any, metadata: Dict[str, str] = None) -> None:
    if path.endswith(".msgpack"):
        from flax import serialization
        data = serialization.msgpack_serialize(jax.tree_util.tree_map(np.asarray, dict(variables)))
        with atomic_write(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
        return
    from safetensors.numpy import save_file
    with atomic_write(path) as tmp:
        save_file(flat_variables(variables), tmp, metadata=metadata or {})


def load_flax(path: str) -> Any:
    """Inverse of save_flax: nested {'params': ..., 'batch_stats': ...} of numpy arrays."""
    if path.endswith(".msgpack"):
        from flax import serialization
        with open(path, "rb") as f:
            return serialization.msgpack_restore(f.read())
    from safetensors.numpy import load_file
    tree: Dict[str, Any] = {}
    for k, v in load_file(path).items():
        node = tree
        parts = k.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return tree
