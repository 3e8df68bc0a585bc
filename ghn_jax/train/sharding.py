"""Device mesh and parameter sharding rules (big_vision's conventions).

    config.mesh = [("data", -1)]                          # -1: all remaining devices
    config.sharding_rules = [(".*", "replicate")]         # GHN-3 T/S
    config.sharding_rules = [(".*", "fsdp(axis='data')")] # GHN-3 L/XL: each tensor split along
                                                          # its largest divisible dimension

Images are sharded along their batch axis over every mesh axis (`batch_sharding`). The
executor keeps each activation sharded like the images it comes from, so batch-norm
statistics, the loss and all gradient reductions are global (the same numbers as on one
device, up to summation order).
"""
import re
from typing import Any, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ghn_jax import tree_paths
from ghn_jax.errors import GhnError


def make_mesh(axes: Sequence[Tuple[str, int]], devices=None) -> Mesh:
    """Mesh over all (global) devices; one size may be -1 (the rest)."""
    devices = list(jax.devices() if devices is None else devices)
    names = [a for a, _ in axes]
    sizes = [int(s) for _, s in axes]
    if sizes.count(-1) > 1:
        raise GhnError(f"config.mesh {list(axes)}: at most one axis may have size -1")
    known = int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
        if len(devices) % known:
            raise GhnError(f"config.mesh {list(axes)} does not divide {len(devices)} devices")
        sizes[sizes.index(-1)] = len(devices) // known
    if int(np.prod(sizes)) != len(devices):
        raise GhnError(f"config.mesh {list(axes)} needs {int(np.prod(sizes))} devices, there are {len(devices)}")
    return Mesh(np.asarray(devices, dtype=object).reshape(sizes), tuple(names))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The batch axis split over every mesh axis."""
    return NamedSharding(mesh, P(tuple(mesh.axis_names)))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def _rule(spec: str, shape, mesh: Mesh) -> P:
    if spec == "replicate":
        return P()
    m = re.fullmatch(r"fsdp\(axis=['\"]?(\w+)['\"]?\)", spec.replace(" ", ""))
    if m:
        axis = m.group(1)
        if axis not in mesh.axis_names:
            raise GhnError(f"sharding rule '{spec}': the mesh has no axis '{axis}' ({mesh.axis_names})")
        n = mesh.shape[axis]
        # the largest dimension the axis divides; small or indivisible tensors stay replicated
        for d in sorted(range(len(shape)), key=lambda i: -shape[i]):
            if shape[d] % n == 0 and shape[d] >= n:
                return P(*([None] * d + [axis]))
        return P()
    raise GhnError(f"unknown sharding rule '{spec}' (replicate, fsdp(axis='data'))")


def param_shardings(params: Any, mesh: Mesh, rules: Sequence[Tuple[str, str]]) -> Any:
    """A NamedSharding per leaf: the first rule whose regex matches the leaf's path wins."""
    flat = tree_paths.flatten(params)
    out = {}
    for path, leaf in flat.items():
        for pattern, spec in rules:
            if re.fullmatch(pattern, path):
                out[path] = NamedSharding(mesh, _rule(spec, tuple(leaf.shape), mesh))
                break
        else:
            raise GhnError(f"no sharding rule matches parameter '{path}' (add a catch-all ('.*', 'replicate'))")
    return tree_paths.unflatten(out)


def from_process_local(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """Each process's slice of the global batch (its rows, in process order) -> a global array."""
    return jax.make_array_from_process_local_data(sharding, np.asarray(x))


# ------------------------------------------------------------------------------------------
# parallel='arch': one group of devices per process, each running its own architectures
# ------------------------------------------------------------------------------------------

def _by_id(devices):
    return sorted(devices, key=lambda d: d.id)


def arch_meshes() -> Tuple[Mesh, Mesh]:
    """(global mesh ('arch' = processes, 'data' = their local devices), this process's local
    mesh ('data',)). Every process must have the same number of local devices."""
    per = {}
    for d in jax.devices():
        per.setdefault(d.process_index, []).append(d)
    sizes = {len(v) for v in per.values()}
    if len(sizes) != 1:
        raise GhnError(f"parallel='arch' needs the same number of devices on every process, got {sorted(sizes)}")
    rows = [_by_id(per[p]) for p in sorted(per)]
    glob = Mesh(np.asarray(rows, dtype=object), ("arch", "data"))
    local = Mesh(np.asarray(_by_id(jax.local_devices()), dtype=object), ("data",))
    return glob, local


def local_view(tree: Any, local_mesh: Mesh) -> Any:
    """Globally replicated arrays -> the same values as arrays on this process's devices only
    (no copy: the local shards are reused)."""
    target = NamedSharding(local_mesh, P())
    order = {d: i for i, d in enumerate(local_mesh.devices.flat)}

    def one(a):
        shards = sorted(a.addressable_shards, key=lambda s: order[s.device])
        return jax.make_array_from_single_device_arrays(a.shape, target, [s.data for s in shards])
    return jax.tree_util.tree_map(one, tree)


def _add_axis(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], tree)


_ADD_AXIS = {}


def stack_groups(tree: Any, local_mesh: Mesh, glob: Mesh) -> Any:
    """Each process's values (arrays on its local mesh, or host arrays) -> global arrays with a
    leading 'arch' axis, one row per process (their sum or mean is then one jitted reduction)."""
    rep = NamedSharding(local_mesh, P())
    tree = jax.tree_util.tree_map(lambda a: jax.device_put(a, rep), tree)
    if local_mesh not in _ADD_AXIS:
        _ADD_AXIS[local_mesh] = jax.jit(_add_axis, out_shardings=rep)
    expanded = _ADD_AXIS[local_mesh](tree)
    order = {d: i for i, d in enumerate(local_mesh.devices.flat)}

    def one(a):
        shards = sorted(a.addressable_shards, key=lambda s: order[s.device])
        return jax.make_array_from_single_device_arrays((glob.shape["arch"],) + a.shape[1:],
                                                        NamedSharding(glob, P("arch")), [s.data for s in shards])
    return jax.tree_util.tree_map(one, expanded)
