"""Graph comparison against the reference: node multiset, SPD-labelled WL hash, names."""
import collections

import networkx as nx
import numpy as np

from ghn_jax.graph.primitives import PRIMITIVES

OP_NODES = {"input", "sum", "concat", "msa", "cse", "glob_avg", "max_pool", "avg_pool"}


def wl_hash(types, spd, iterations: int = 5) -> str:
    """Weisfeiler-Lehman hash; node label = primitive, edge label = distance (1..50)."""
    g = nx.DiGraph()
    for i, t in enumerate(types):
        g.add_node(i, label=str(t))
    for i, j in zip(*np.nonzero(spd)):
        g.add_edge(int(i), int(j), dist=str(int(spd[i, j])))
    return nx.weisfeiler_lehman_graph_hash(g, node_attr="label", edge_attr="dist",
                                           iterations=iterations)


def assert_same_graph(graph, ref_types, ref_spd, ref_names, ref_shapes):
    """`graph` (ArchGraph) is isomorphic to the reference graph given as arrays."""
    ref_prims = [PRIMITIVES[t] for t in ref_types]
    ours = graph.primitives
    assert graph.n_nodes == len(ref_types), (graph.n_nodes, len(ref_types))
    c_ours = collections.Counter(zip(ours, map(tuple, graph.shapes.tolist())))
    c_ref = collections.Counter(zip(ref_prims, map(tuple, np.asarray(ref_shapes).tolist())))
    assert c_ours == c_ref, (list((c_ours - c_ref).items())[:5], list((c_ref - c_ours).items())[:5])
    # Node 0 is the input; N-2, N-1 the classifier, as the GHN's decoders require.
    assert ours[0] == ref_prims[0] == "input"
    assert ours[-2:] == ref_prims[-2:]
    np.testing.assert_array_equal(np.sort(graph.spd[0]), np.sort(np.asarray(ref_spd)[0]))
    assert np.array_equal(np.bincount(graph.spd.ravel(), minlength=51),
                          np.bincount(np.asarray(ref_spd).ravel(), minlength=51))
    assert wl_hash(ours, graph.spd) == wl_hash(ref_prims, ref_spd)
    # Every reference parameter name is a node of ours with the same primitive.
    by_name = {n: p for n, p in zip(graph.torch_names, ours) if n}
    for name, prim in zip(ref_names, ref_prims):
        if prim in OP_NODES:
            continue
        assert by_name.get(str(name)) == prim, (str(name), prim, by_name.get(str(name)))
