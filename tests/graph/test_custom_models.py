"""Models outside the zoo get correct graphs with no registration code."""
import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np

from ghn_jax.graph import build_graph


class SmallCNN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(8, (3, 3), name="stem")(x)
        x = jax.nn.relu(nn.BatchNorm(use_running_average=not train, name="bn")(x))
        y = nn.Conv(8, (3, 3), use_bias=False, name="branch")(x)
        x = x + y
        a = nn.max_pool(x, (2, 2), strides=(2, 2))
        b = nn.avg_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        x = jnp.concatenate([a, b], axis=-1)
        x = nn.Conv(4, (3, 3), feature_group_count=4, kernel_dilation=2, name="dil")(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(10, name="head")(x)


class SmallViT(nn.Module):
    dim: int = 32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(self.dim, (8, 8), strides=(8, 8), padding="VALID", name="patch")(x)
        b, h, w, c = x.shape
        x = x.reshape(b, h * w, c)
        cls = self.param("cls", nn.initializers.zeros, (1, 1, c))
        x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, c)), x], axis=1)
        x = x + self.param("pos_embedding", nn.initializers.normal(0.02), (1, h * w + 1, c))
        y = nn.LayerNorm(name="ln1")(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=4, name="attn")(y, y)
        y = nn.LayerNorm(name="ln2")(x)
        y = nn.Dense(2 * c, name="fc1")(y)
        x = x + nn.Dense(c, name="fc2")(jax.nn.gelu(y))
        x = nn.LayerNorm(name="ln")(x)
        return nn.Dense(10, name="head")(x[:, 0])


def _named_edges(g):
    label = [t or f"{p}" for t, p in zip(g.param_names, g.primitives)]
    return {(label[u], label[v]) for u, v in g.edges}, label


def test_small_cnn():
    g = build_graph(SmallCNN(), (2, 32, 32, 3))
    edges, label = _named_edges(g)
    P = "params/"
    expected = {
        ("input", P + "stem/kernel"), (P + "stem/kernel", P + "stem/bias"), (P + "stem/bias", P + "bn/scale"),
        (P + "bn/scale", P + "branch/kernel"), (P + "bn/scale", "sum"), (P + "branch/kernel", "sum"),
        ("sum", "max_pool"), ("sum", "avg_pool"), ("max_pool", "concat"), ("avg_pool", "concat"),
        ("concat", P + "dil/kernel"), (P + "dil/kernel", P + "dil/bias"), (P + "dil/bias", "glob_avg"),
        ("glob_avg", P + "head/kernel"), (P + "head/kernel", P + "head/bias"),
    }
    assert edges == expected
    assert label[0] == "input" and label[-2:] == [P + "head/kernel", P + "head/bias"]
    prim = dict(zip(label, g.primitives))
    assert prim[P + "dil/kernel"] == "dil_conv" and prim[P + "branch/kernel"] == "conv"
    shapes = dict(zip(label, g.shapes.tolist()))
    assert shapes[P + "stem/kernel"] == [8, 3, 3, 3]          # torch layout (out, in, kh, kw)
    assert shapes[P + "dil/kernel"] == [4, 4, 3, 3]
    assert shapes["max_pool"] == [1, 1, 2, 2] and shapes["avg_pool"] == [1, 1, 3, 3]
    assert shapes[P + "head/kernel"] == [10, 4, -1, -1]
    assert g.last_weight and g.last_bias
    assert g.extra_params[label.index(P + "bn/scale")] == (P + "bn/bias",)
    assert g.not_predicted == []
    # SPD: the shortest path from the input to the classifier bias.
    assert g.spd[0, g.n_nodes - 1] == 11


def test_small_vit_with_flax_attention():
    g = build_graph(SmallViT(), (2, 32, 32, 3))
    edges, label = _named_edges(g)
    P = "params/"
    A = P + "attn/"
    prim = dict(zip(label, g.primitives))
    assert prim[P + "pos_embedding"] == "pos_enc"
    sums = [i for i, p in enumerate(g.primitives) if p == "sum"]
    assert len(sums) == 3 and g.primitives.count("msa") == 1
    s0 = sums[0]
    first_sum_preds = {label[u] for u, v in g.edges if v == s0}
    assert first_sum_preds == {P + "patch/bias", P + "pos_embedding"}
    msa_preds = {label[u] for u, v in g.edges if g.primitives[v] == "msa"}
    assert msa_preds == {A + "query/bias", A + "key/bias", A + "value/bias"}
    assert (label[g.primitives.index("msa")], A + "out/kernel") in edges
    assert (A + "value/bias", A + "out/kernel") not in edges        # the value path joins msa
    assert {(P + "ln1/scale", A + f"{q}/kernel") for q in ("query", "key", "value")} <= edges
    assert g.not_predicted == [P + "cls"]                          # class token: not predicted
    shapes = dict(zip(label, g.shapes.tolist()))
    assert shapes[P + "pos_embedding"] == [1, 32, 4, 4]             # (1, T, C) -> (1, C, sqrt T, sqrt T)
    assert shapes[A + "query/kernel"] == [32, 32, -1, -1]
    # The pos-enc table is a source: not connected from the input.
    assert g.spd[0, label.index(P + "pos_embedding")] == 0
    assert label[-2:] == [P + "head/kernel", P + "head/bias"]


def test_graphs_tuple_matches_dense():
    g = build_graph(SmallCNN(), (1, 16, 16, 3))
    gt = g.graphs_tuple()
    dense = np.zeros_like(g.spd)
    dense[gt.senders, gt.receivers] = gt.edges["dist"]
    np.testing.assert_array_equal(dense, g.spd)
    assert int(gt.n_node[0]) == g.n_nodes


class SmallSE(nn.Module):
    """Squeeze-excitation with a sigmoid gate: a cse node, and the SE mean is not a glob_avg."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = jax.nn.silu(nn.Conv(16, (3, 3), name="stem")(x))
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        s = jax.nn.relu(nn.Conv(4, (1, 1), name="fc1")(s))
        s = jax.nn.sigmoid(nn.Conv(16, (1, 1), name="fc2")(s))
        x = x * s
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(10, name="head")(x)


def test_squeeze_excitation_gate():
    g = build_graph(SmallSE(), (1, 16, 16, 3))
    edges, label = _named_edges(g)
    P = "params/"
    assert g.primitives.count("cse") == 1 and g.primitives.count("glob_avg") == 1
    assert (P + "stem/bias", P + "fc1/kernel") in edges                 # the SE mean is bridged
    assert {(P + "stem/bias", "cse"), (P + "fc2/bias", "cse"), ("cse", "glob_avg")} <= edges
