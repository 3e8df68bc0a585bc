"""ArchGraph: the GHN-3 description of one architecture, and its assembly from a trace.

An ArchGraph holds, for N nodes in topological order (node 0 = input, nodes N-2 / N-1 =
the main classifier's weight / bias):

    node_types   (N,)   int32   primitive ids (ghn_jax.graph.primitives)
    shapes       (N, 4) int32   parameter shape in torch layout (or pooling kernel
                                 (1, 1, kh, kw)), padded with -1; all -1 for op nodes
    spd          (N, N) uint8   1 = real edge i -> j, 2..50 = shortest path length, 0 = none
    param_names  [N]    str     Flax variable path the node predicts ('params/fc/kernel'), '' for ops
    torch_names  [N]    str     torchvision state_dict key of that parameter, '' for ops
    extra_params [N]    tuple   further Flax paths predicted from the node (a norm's bias)
    last_weight / last_bias     the reference's classifier flags (§1.2)

plus the model's abstract variables and the parameters no node predicts. `graphs_tuple()`
gives the same content as a `jraph.GraphsTuple`.
"""
import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import jraph

from ghn_jax import tree_paths
from ghn_jax.export.torch_params import torch_name
from ghn_jax.graph.primitives import PRIMITIVES, PRIMITIVE_ID
from ghn_jax.graph.spd import VE_CUTOFF, shortest_paths
from ghn_jax.graph.tracer import TraceResult

Path = Tuple[str, ...]


@dataclasses.dataclass
class ArchGraph:
    name: str
    node_types: np.ndarray            # (N,) int32
    shapes: np.ndarray                # (N, 4) int32
    spd: np.ndarray                   # (N, N) uint8
    param_names: List[str]
    torch_names: List[str]
    extra_params: List[Tuple[str, ...]]
    target_shapes: List[Tuple[int, ...]]  # true parameter shape in torch layout, () for ops
    modules: List[str]                # module path (or op) of each node, for messages/plots
    last_weight: bool
    last_bias: bool
    not_predicted: List[str]          # Flax param paths no node predicts
    abstract_variables: Any           # pytree of jax.ShapeDtypeStruct
    input_shape: Tuple[int, ...]
    # The model's own initialisers of the parameters (in memory only, not saved).
    initialisers: Dict[Tuple[str, ...], Any] = dataclasses.field(default_factory=dict, repr=False)
    # Where a cached graph came from (e.g. 'zoo:vit_b_16:1000:2x224x224x3'): programs made
    # for it (the initialisers of unpredicted parameters) are kept on disk under this name.
    origin: str = dataclasses.field(default="", repr=False)

    @property
    def n_nodes(self) -> int:
        return int(self.node_types.shape[0])

    @property
    def edges(self) -> np.ndarray:
        """(E, 2) real data-flow edges (distance 1)."""
        return np.argwhere(self.spd == 1).astype(np.int32)

    @property
    def primitives(self) -> List[str]:
        return [PRIMITIVES[t] for t in self.node_types]

    def predicted_params(self) -> List[str]:
        out = [p for p in self.param_names if p]
        for extra in self.extra_params:
            out.extend(extra)
        return out

    def graphs_tuple(self) -> jraph.GraphsTuple:
        """Node features (type, shape); edges = every nonzero SPD entry with its distance."""
        senders, receivers = np.nonzero(self.spd)
        return jraph.GraphsTuple(
            nodes={"type": self.node_types, "shape": self.shapes},
            edges={"dist": self.spd[senders, receivers].astype(np.int32)},
            senders=senders.astype(np.int32), receivers=receivers.astype(np.int32),
            n_node=np.array([self.n_nodes], np.int32),
            n_edge=np.array([senders.shape[0]], np.int32), globals=None)

    def summary(self) -> Dict[str, Any]:
        counts: Dict[str, int] = {}
        for p in self.primitives:
            counts[p] = counts.get(p, 0) + 1
        return {"arch": self.name, "nodes": self.n_nodes, "edges": int((self.spd == 1).sum()),
                "primitives": counts, "predicted": len(self.predicted_params()),
                "not_predicted": list(self.not_predicted)}

    def to_npz_dict(self) -> Dict[str, np.ndarray]:
        return {"node_types": self.node_types, "spd": self.spd,
                "param_names": np.array(self.param_names), "torch_names": np.array(self.torch_names),
                "shapes": self.shapes}


def _generation_order(n_live: int, edges: Sequence[Tuple[int, int]], first: int, last: Sequence[int]):
    """Kahn's algorithm by generations (sources in id order first), `last` moved to the end."""
    succ = [[] for _ in range(n_live)]
    indeg = np.zeros(n_live, np.int64)
    for u, v in edges:
        succ[u].append(v)
        indeg[v] += 1
    gen = [first] + [i for i in range(n_live) if indeg[i] == 0 and i != first]
    order = []
    while gen:
        order.extend(gen)
        nxt = []
        for u in gen:
            for v in sorted(succ[u]):
                indeg[v] -= 1
                if indeg[v] == 0:
                    nxt.append(v)
        gen = nxt
    if len(order) != n_live:
        raise AssertionError("the traced graph has a cycle")
    tail = [i for i in last]
    return [i for i in order if i not in tail] + tail


def _param_shape(shape: Optional[Tuple[int, ...]], prim: str) -> Tuple[int, ...]:
    if shape is None:
        return ()
    if prim == "pos_enc" and len(shape) == 3 and shape[0] == 1 and min(shape[1:]) > 1:
        s = int(np.floor(np.sqrt(shape[1])))     # (1, T, C) -> (1, C, sqrt T, sqrt T)
        return (1, shape[2], s, s)
    return tuple(shape)


def assemble(result: TraceResult, name: str = "") -> ArchGraph:
    """Orders a trace topologically, computes distances and node metadata."""
    nodes = result.nodes
    live = result.live
    local = {g: i for i, g in enumerate(live)}
    edges = [(local[u], local[v]) for u, v in result.edges]
    out = local[result.output_node]
    out_node = nodes[result.output_node]
    tail = [out]
    if out_node.prim == "bias":
        w = next(u for u, v in edges if v == out and nodes[live[u]].module == out_node.module)
        tail = [w, out]
    order = _generation_order(len(live), edges, local[0], tail)
    pos = {old: new for new, old in enumerate(order)}
    n = len(order)
    spd = shortest_paths(n, [(pos[u], pos[v]) for u, v in edges], VE_CUTOFF)

    node_types = np.zeros(n, np.int32)
    shapes = np.full((n, 4), -1, np.int32)
    param_names, torch_names, extras, modules = [""] * n, [""] * n, [()] * n, [""] * n
    targets: List[Tuple[int, ...]] = [()] * n
    for old, new in pos.items():
        node = nodes[live[old]]
        node_types[new] = PRIMITIVE_ID[node.prim]
        shp = _param_shape(node.shape, node.prim)
        if new == n - 2 and len(shp) == 4 and max(shp[2:]) == 1:
            shp = shp[:2]            # a 1x1-conv classifier is recorded as 2-D (reference §1.6)
        shapes[new, :len(shp)] = shp
        modules[new] = "/".join(node.module) if node.module else node.op
        if node.param is not None:
            param_names[new] = "/".join(node.param)
            torch_names[new] = torch_name(node.param[0], node.param[1:])
            extras[new] = tuple("/".join(p) for p in node.extra_params)
            targets[new] = tuple(node.shape)

    predicted = set(param_names) | {p for e in extras for p in e}
    all_params = [p for p in tree_paths.flatten(result.abstract_variables) if p.startswith("params/")]
    not_predicted = [p for p in all_params if p not in predicted]
    last_weight = ".weight" in torch_names[n - 2] or "in_proj_weight" in torch_names[n - 2]
    last_bias = ".bias" in torch_names[n - 1]
    return ArchGraph(name, node_types, shapes, spd, param_names, torch_names, extras, targets, modules,
                     bool(last_weight and n >= 2), bool(last_bias), not_predicted,
                     result.abstract_variables, result.input_shape, result.initialisers)

