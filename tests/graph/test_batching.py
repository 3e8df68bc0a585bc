import jraph
import numpy as np

from ghn_jax.graph import build_graph
from ghn_jax.graph.batch import bucket_size, jraph_batch, pad_graphs
from tests.graph.test_custom_models import SmallCNN, SmallViT


def test_pad_graphs_and_buckets():
    a = build_graph(SmallCNN(), (1, 16, 16, 3))
    b = build_graph(SmallViT(), (1, 32, 32, 3))
    p = pad_graphs([a, b])
    m = bucket_size(max(a.n_nodes, b.n_nodes))
    assert p.node_types.shape == (2, m) and p.spd.shape == (2, m, m) and m % 8 == 0
    np.testing.assert_array_equal(p.n_nodes, [a.n_nodes, b.n_nodes])
    np.testing.assert_array_equal(p.spd[1, : b.n_nodes, : b.n_nodes], b.spd)
    assert not p.mask[0, a.n_nodes:].any() and p.mask[0, : a.n_nodes].all()
    assert (p.shapes[0, a.n_nodes:] == -1).all()
    assert [bucket_size(n) for n in (1, 32, 33, 100, 3000)] == [32, 32, 40, 120, 3472]


def test_jraph_batch_through_the_tree_map_shim():
    # jraph 0.0.6.dev0 calls jax.tree_map (removed from current JAX) in these helpers.
    a = build_graph(SmallCNN(), (1, 16, 16, 3))
    b = build_graph(SmallViT(), (1, 32, 32, 3))
    g = jraph_batch([a, b])
    assert int(g.n_node[0]) == a.n_nodes and int(g.n_node[1]) == b.n_nodes
    z = jraph.zero_out_padding(g)
    assert int(np.asarray(z.nodes["type"])[a.n_nodes + b.n_nodes:].sum()) == 0
    mask = np.asarray(jraph.get_node_padding_mask(g))
    assert mask.sum() == a.n_nodes + b.n_nodes
