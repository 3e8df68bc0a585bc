"""Batching graphs for jit: padding to a small ladder of node-count buckets.

A jitted GHN compiles once per distinct padded shape, so node counts are rounded up to
a geometric ladder (about 1.25x apart): a stream of new architectures reuses a few
compiled programs, at the cost of at most ~25% padding.
"""
import dataclasses
from typing import List, Optional, Sequence

import numpy as np
import jraph

_LADDER: List[int] = sorted({int(8 * round(32 * 1.25 ** k / 8)) for k in range(40)})


def bucket_size(n: int) -> int:
    """Smallest bucket >= n (multiples of 8, ~1.25x apart)."""
    for b in _LADDER:
        if b >= n:
            return b
    return int(np.ceil(n / 1024) * 1024)


def pow2(n: int) -> int:
    """Smallest power of two >= n (>= 1): the bucket of small per-graph index lists."""
    return 1 << max(0, int(n - 1).bit_length())


def pad_ints(values: Sequence[int], size: int) -> np.ndarray:
    """(size,) int32: values, then zeros (padding entries index a real row, and are ignored)."""
    out = np.zeros(size, np.int32)
    out[: len(values)] = values
    return out


@dataclasses.dataclass
class PaddedGraphs:
    """B graphs padded to M nodes (dense form consumed by the GHN-3 Graphormer)."""
    node_types: np.ndarray   # (B, M) int32, 0 on padding
    shapes: np.ndarray       # (B, M, 4) int32, -1 on padding
    spd: np.ndarray          # (B, M, M) uint8, 0 on padding
    mask: np.ndarray         # (B, M) bool, True on real nodes
    n_nodes: np.ndarray      # (B,) int32

    @property
    def num_nodes(self) -> int:
        return int(self.node_types.shape[1])


def pad_graphs(graphs: Sequence, num_nodes: Optional[int] = None) -> PaddedGraphs:
    """Stacks ArchGraphs, padded to `num_nodes` (default: the bucket of the largest)."""
    n = np.array([g.n_nodes for g in graphs], np.int32)
    m = num_nodes or bucket_size(int(n.max()))
    if m < n.max():
        raise ValueError(f"num_nodes={m} is smaller than the largest graph ({n.max()} nodes)")
    b = len(graphs)
    types = np.zeros((b, m), np.int32)
    shapes = np.full((b, m, 4), -1, np.int32)
    spd = np.zeros((b, m, m), np.uint8)
    mask = np.zeros((b, m), bool)
    for i, g in enumerate(graphs):
        k = g.n_nodes
        types[i, :k] = g.node_types
        shapes[i, :k] = g.shapes
        spd[i, :k, :k] = g.spd
        mask[i, :k] = True
    return PaddedGraphs(types, shapes, spd, mask, n)


def jraph_batch(graphs: Sequence, pad_nodes: Optional[int] = None,
                pad_edges: Optional[int] = None) -> jraph.GraphsTuple:
    """One padded jraph.GraphsTuple of all graphs (plus jraph's padding graph)."""
    batch = jraph.batch([g.graphs_tuple() for g in graphs])
    n = int(batch.n_node.sum()) + 1
    e = int(batch.n_edge.sum())
    return jraph.pad_with_graphs(batch, pad_nodes or bucket_size(n), pad_edges or bucket_size(e + 1),
                                 len(graphs) + 1)
