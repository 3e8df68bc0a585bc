import networkx as nx
import numpy as np
import pytest

from ghn_jax.graph.spd import shortest_paths


def _random_dag(n, p, seed):
    rng = np.random.RandomState(seed)
    return [(u, v) for u in range(n) for v in range(u + 1, n) if rng.rand() < p]


@pytest.mark.parametrize("n,p,cutoff,seed", [(30, 0.1, 50, 0), (80, 0.03, 50, 1), (120, 0.02, 5, 2),
                                             (200, 0.012, 50, 3)])
def test_matches_networkx_bfs(n, p, cutoff, seed):
    edges = _random_dag(n, p, seed)
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    ref = np.zeros((n, n), np.uint8)
    for u, dist in nx.all_pairs_shortest_path_length(g, cutoff=cutoff):
        for v, d in dist.items():
            if u != v:
                ref[u, v] = d
    np.testing.assert_array_equal(shortest_paths(n, edges, cutoff), ref)


def test_long_chain_cutoff():
    n = 80
    d = shortest_paths(n, [(i, i + 1) for i in range(n - 1)], 50)
    assert d[0, 50] == 50 and d[0, 51] == 0 and d[10, 60] == 50 and d[5, 4] == 0


def test_rejects_unordered_edges():
    with pytest.raises(ValueError):
        shortest_paths(3, [(2, 1)])
