"""Writing predicted Flax variables to files: .safetensors (flat paths) or .msgpack."""
from typing import Any, Dict

import numpy as np
import jax

from ghn_jax import tree_paths
from ghn_jax.cli import atomic_write


def flat_variables(variables: Any) -> Dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(np.asarray(v)) for k, v in tree_paths.flatten(dict(variables)).items()}


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
    return tree_paths.unflatten(load_file(path))
