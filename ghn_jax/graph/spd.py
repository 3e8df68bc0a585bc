"""Shortest-path distances of a DAG in topological order, by array ops.

The GHN-3 edge matrix holds, for every ordered pair (i, j), the length d of the shortest
directed path i -> j when 1 <= d <= cutoff (1 = a real edge), and 0 otherwise
(design/ghn3-reference.md §1.5). With nodes in topological order the distances to node
v follow from those to its predecessors: D[:, v] = 1 + min_{u in pred(v)} D[:, u]. One
vectorised column update per node replaces all-pairs BFS.
"""
from typing import Sequence, Tuple

import numpy as np

VE_CUTOFF = 50


def shortest_paths(n: int, edges: Sequence[Tuple[int, int]], cutoff: int = VE_CUTOFF) -> np.ndarray:
    """(n, n) uint8 distance matrix; edges (u, v) must satisfy u < v (topological order)."""
    if cutoff > 254:
        raise ValueError("cutoff must fit in uint8")
    inf = np.uint16(cutoff + 1)
    d = np.full((n, n), inf, np.uint16)
    np.fill_diagonal(d, 0)
    preds = [[] for _ in range(n)]
    for u, v in edges:
        if not u < v:
            raise ValueError(f"edge {u}->{v} is not in topological order")
        preds[v].append(u)
    for v in range(1, n):
        p = preds[v]
        if not p:
            continue
        col = d[:v, p[0]] if len(p) == 1 else d[:v, p].min(axis=1)
        d[:v, v] = np.minimum(col + 1, inf)
    d[d > cutoff] = 0
    np.fill_diagonal(d, 0)
    return d.astype(np.uint8)
