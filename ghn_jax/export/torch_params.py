"""Flax variables <-> torchvision state_dict: one rule set keyed by layer kind.

Zoo twins name their Flax modules after torchvision's module paths (`layer1/0/conv1`),
so the torch key is the Flax path joined with '.', with the leaf renamed and the array
re-laid-out by the kind of layer that owns it:

| Flax leaf (collection/ndim)  | torch leaf      | layout                               |
|------------------------------|-----------------|--------------------------------------|
| params/kernel, 4-D (conv)    | weight          | HWIO <-> OIHW                        |
| params/kernel, 2-D (dense)   | weight          | (in, out) <-> (out, in)              |
| params/kernel, 3-D / 5-D     | weight          | conv1d / conv3d analogues            |
| params/scale (norms)         | weight          | same                                 |
| params/embedding (nn.Embed)  | weight          | same                                 |
| params/bias                  | bias            | same                                 |
| batch_stats/mean, var        | running_mean/var| same                                 |
| in_proj/{kernel,bias}        | parent.in_proj_weight / in_proj_bias (nn.MultiheadAttention's packed qkv) |
| any other param (class_token, pos_embedding, layer_scale, relative tables) | same name | same (twins keep torch's shape) |

Numpy only: torch is not needed to convert.
"""
from typing import Any, Dict, Mapping, Tuple

import numpy as np
import jax

from ghn_jax.errors import ParamConversionError
from ghn_jax.tree_paths import path_keys

_KERNEL_TO_TORCH = {2: (1, 0), 3: (2, 1, 0), 4: (3, 2, 0, 1), 5: (4, 3, 0, 1, 2)}
_KERNEL_TO_FLAX = {n: tuple(int(i) for i in np.argsort(p)) for n, p in _KERNEL_TO_TORCH.items()}
_STAT_NAMES = {"mean": "running_mean", "var": "running_var"}
_PARAM_NAMES = {"kernel": "weight", "scale": "weight", "embedding": "weight"}


def torch_name(collection: str, path: Tuple[str, ...]) -> str:
    """torch state_dict key of a Flax variable at `path` (module names..., leaf)."""
    *mods, leaf = path
    if collection == "batch_stats":
        leaf = _STAT_NAMES.get(leaf, leaf)
    elif collection == "params":
        if mods and mods[-1] == "in_proj" and leaf in ("kernel", "bias"):
            mods = mods[:-1]
            leaf = "in_proj_weight" if leaf == "kernel" else "in_proj_bias"
        else:
            leaf = _PARAM_NAMES.get(leaf, leaf)
    else:
        raise ParamConversionError(f"no torch equivalent for Flax collection '{collection}'")
    return ".".join(list(mods) + [leaf])


def _is_kernel(collection: str, path: Tuple[str, ...]) -> bool:
    return collection == "params" and path[-1] == "kernel"


def to_torch_layout(collection: str, path: Tuple[str, ...], value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    if _is_kernel(collection, path) and value.ndim in _KERNEL_TO_TORCH:
        return np.ascontiguousarray(np.transpose(value, _KERNEL_TO_TORCH[value.ndim]))
    return value


def to_flax_layout(collection: str, path: Tuple[str, ...], value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    if _is_kernel(collection, path) and value.ndim in _KERNEL_TO_FLAX:
        return np.ascontiguousarray(np.transpose(value, _KERNEL_TO_FLAX[value.ndim]))
    return value


def iter_variables(variables: Mapping[str, Any]):
    """Yields (collection, path, leaf) over a Flax variables dict, in tree order."""
    for kp, leaf in jax.tree_util.tree_flatten_with_path(dict(variables))[0]:
        keys = path_keys(kp)
        yield keys[0], keys[1:], leaf


def flax_to_torch(variables: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """{'params': ..., 'batch_stats': ...} -> {torch key: array in torch layout}."""
    out: Dict[str, np.ndarray] = {}
    for col, path, leaf in iter_variables(variables):
        key = torch_name(col, path)
        if key in out:
            raise ParamConversionError(f"two Flax variables map to torch key '{key}'")
        out[key] = to_torch_layout(col, path, np.asarray(leaf))
    return out


def torch_to_flax(state_dict: Mapping[str, Any], template: Mapping[str, Any], strict: bool = True):
    """Fills a Flax variables tree shaped like `template` from a torch state_dict.

    `template` may hold arrays or `jax.ShapeDtypeStruct`s (e.g. from `jax.eval_shape`).
    Every template leaf must be found with the right shape. With `strict`, every float
    entry of `state_dict` must be used too; integer entries (num_batches_tracked,
    index buffers such as Swin's relative_position_index) are bookkeeping and skipped.
    """
    sd = {k: _to_numpy(v) for k, v in state_dict.items()}
    used = set()
    flat, treedef = jax.tree_util.tree_flatten_with_path(dict(template))
    leaves = []
    for kp, leaf in flat:
        keys = path_keys(kp)
        col, path = keys[0], keys[1:]
        key = torch_name(col, path)
        if key not in sd:
            raise ParamConversionError(
                f"torch state_dict has no '{key}' (needed for Flax {col}/{'/'.join(path)})")
        value = to_flax_layout(col, path, sd[key])
        if tuple(value.shape) != tuple(leaf.shape):
            raise ParamConversionError(
                f"'{key}': torch shape {tuple(sd[key].shape)} does not fit Flax shape "
                f"{tuple(leaf.shape)} at {col}/{'/'.join(path)}")
        leaves.append(value.astype(leaf.dtype))
        used.add(key)
    if strict:
        extra = sorted(k for k, v in sd.items()
                       if k not in used and np.issubdtype(v.dtype, np.floating))
        if extra:
            shown = ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else "")
            raise ParamConversionError(
                f"{len(extra)} torch tensors have no place in the Flax model: {shown}")
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _to_numpy(v) -> np.ndarray:
    if hasattr(v, "detach"):  # torch.Tensor, without importing torch here
        v = v.detach().cpu().numpy()
    return np.asarray(v)
