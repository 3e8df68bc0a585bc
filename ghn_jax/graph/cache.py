"""Graph cache: a zoo architecture's graph is traced once per process and kept on disk.

The graph of a zoo model depends only on its name, class count, input shape and the code
of ghn_jax's graph and zoo packages, so the on-disk key includes a hash of that code: an
edited model or tracer never reuses a stale graph.
"""
import json
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import jax

from ghn_jax import tree_paths
from ghn_jax.graph.graph import ArchGraph

_MEMORY: Dict[Tuple, ArchGraph] = {}


def _code_hash() -> str:
    from ghn_jax.code_hash import code_hash
    return code_hash("graph", "zoo", "export")


def _to_arrays(g: ArchGraph) -> Dict[str, np.ndarray]:
    variables = [[p, list(l.shape), str(l.dtype)] for p, l in tree_paths.flatten(g.abstract_variables).items()]
    meta = {"name": g.name, "param_names": g.param_names, "torch_names": g.torch_names,
            "extra_params": [list(e) for e in g.extra_params], "target_shapes": [list(t) for t in g.target_shapes],
            "modules": g.modules, "last_weight": g.last_weight, "last_bias": g.last_bias,
            "not_predicted": g.not_predicted, "input_shape": list(g.input_shape), "variables": variables}
    return {"node_types": g.node_types, "shapes": g.shapes, "spd": g.spd, "meta": np.array(json.dumps(meta))}


def _from_arrays(z) -> ArchGraph:
    meta = json.loads(str(z["meta"]))
    tree = tree_paths.unflatten({p: jax.ShapeDtypeStruct(tuple(s), np.dtype(d)) for p, s, d in meta["variables"]})
    return ArchGraph(meta["name"], z["node_types"], z["shapes"], z["spd"], meta["param_names"],
                     meta["torch_names"], [tuple(e) for e in meta["extra_params"]],
                     [tuple(t) for t in meta["target_shapes"]], meta["modules"], meta["last_weight"],
                     meta["last_bias"], meta["not_predicted"], tree, tuple(meta["input_shape"]))


def zoo_graph(name: str, num_classes: int = 1000, input_shape: Optional[Sequence[int]] = None,
              cache_dir: Optional[str] = None) -> ArchGraph:
    """build_graph(name) through an in-memory and an on-disk cache."""
    from ghn_jax import zoo
    from ghn_jax.graph import build_graph
    entry = zoo.entry(name)
    shape = tuple(input_shape or (2, entry.input_size, entry.input_size, 3))
    key = (entry.name, num_classes, shape)
    if key in _MEMORY:
        return _MEMORY[key]
    if cache_dir is None:
        from ghn_jax.ghn.hub import cache_dir as default_dir
        cache_dir = os.path.join(default_dir(), "graphs")
    path = os.path.join(cache_dir, f"{entry.name}-{num_classes}-{'x'.join(map(str, shape))}-{_code_hash()}.npz")
    graph = None
    if os.path.exists(path):
        try:
            with np.load(path) as z:
                graph = _from_arrays(z)
        except Exception:          # a damaged cache entry is rebuilt, never trusted
            graph = None
    if graph is None:
        graph = build_graph(entry.name, shape, num_classes=num_classes)
        try:
            from ghn_jax.cli import atomic_write
            os.makedirs(cache_dir, exist_ok=True)
            with atomic_write(path) as tmp:
                np.savez(tmp, **_to_arrays(graph))
        except (OSError, Exception):
            pass                    # caching is an optimisation only
    graph.origin = "zoo:" + os.path.basename(path)[:-len(".npz")]
    _MEMORY[key] = graph
    return graph
