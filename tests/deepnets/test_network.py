"""The Flax DeepNets Network: parameter counts and graphs against the reference generator."""
import collections
import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ghn_jax.deepnets import Network, NetSpec, arch_graph, net_plan, sample
from ghn_jax.deepnets.genotypes import from_dict
from ghn_jax.errors import GhnError
from ghn_jax.graph.primitives import PRIMITIVES

DATA = os.path.join(os.path.dirname(__file__), "..", "data")


def _ref_nets():
    with open(os.path.join(DATA, "deepnets_first300.json")) as f:
        return json.load(f)["nets"]


def ref_spec(n, **kw) -> NetSpec:
    args = dict(genotype=from_dict(n["genotype"]), n_cells=n["n_cells"], ks=n["ks"], C_mult=n["C_mult"],
                preproc=n["preproc"], glob_avg=n["glob_avg"], norm=n["norm"], stem_type=n["stem_type"],
                stem_pool=n["stem_pool"], fc_layers=n["fc_layers"], fc_dim=n["fc_dim"], C=32,
                imagenet_stride=4, num_classes=10)
    args.update(kw)
    return NetSpec(**args)


def n_params(spec, imagenet):
    size = 224 if imagenet else 32
    shapes = jax.eval_shape(Network(spec, imagenet).init, jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)))
    return sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(shapes))


# Reference nets covering ViT (0), imagenet stem (1), cse + BN-free (83), stem pool (175),
# flatten head + none ops (200). Net 49 is left out on purpose: a reduction cell made only of
# `none` ops never runs its successors' preprocessing, so those (dead) torch modules hold
# parameters that the reference counts and a Flax module never creates.
@pytest.mark.parametrize("i", [0, 1, 2, 3, 83, 175, 200])
def test_param_count_equals_reference(i):
    n = _ref_nets()[i]
    spec = ref_spec(n)
    assert n_params(spec, False) == n["num_params"]["cifar10"]
    assert n_params(spec, True) == n["num_params"]["imagenet"]


@pytest.mark.slow
def test_param_count_equals_reference_all():
    bad = []
    for i, n in enumerate(_ref_nets()):
        if i == 49:
            continue
        spec = ref_spec(n)
        for imagenet, key in ((False, "cifar10"), (True, "imagenet")):
            if n_params(spec, imagenet) != n["num_params"][key]:
                bad.append((i, key))
    assert not bad


def test_graph_matches_reference_loader_graphs():
    """Node counts per primitive equal the ghn3 loader's graphs, up to two documented
    differences of the reference's (ppuda) graph builder: it finds no `msa` node on torch 2.x
    (net 0) and keeps a `cse` node only when the gate op sits two positions earlier (net 83)."""
    with open(os.path.join(DATA, "deepnets_ref_graphs.json")) as f:
        ref = json.load(f)
    nets = _ref_nets()
    for i, r in ref.items():
        n = nets[int(i)]
        hp = r["loader_hparams"]
        spec = ref_spec(n, C=hp["C"], fc_dim=hp["fc_dim"], imagenet_stride=hp["imagenet_stride"], num_classes=1000)
        g = arch_graph(spec)
        ours = collections.Counter(PRIMITIVES[t] for t in g.node_types)
        diff = {k: (ours[k], r["op_counts"].get(k, 0)) for k in set(ours) | set(r["op_counts"])
                if ours[k] != r["op_counts"].get(k, 0)}
        expected = {"0": {"msa": (7, 0)}, "83": {"cse": (3, 1)}}.get(i, {})
        assert diff == expected, (i, diff)
        assert g.n_nodes == r["n_nodes"] + sum(a - b for a, b in diff.values())
        assert not g.not_predicted


def test_graph_params_and_shapes():
    spec = sample("train", 5)
    g = arch_graph(spec)
    shapes = jax.eval_shape(Network(spec).init, jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)))["params"]
    n_leaves = len(jax.tree_util.tree_leaves(shapes))
    assert len(g.predicted_params()) == n_leaves
    assert g.primitives[0] == "input" and g.last_weight and g.last_bias


def test_predefined_resnet_is_a_clear_error():
    with pytest.raises(GhnError, match="zoo"):
        net_plan(sample("predefined", 0))


def test_vit_predefined_runs():
    spec = sample("predefined", 1)
    logits = Network(spec, imagenet=False).init_with_output(jax.random.PRNGKey(0), jnp.ones((2, 32, 32, 3)))[0]
    assert logits.shape == (2, spec.num_classes)


def test_bad_genotypes_are_clear_errors():
    base = sample("train", 5)
    g = base.genotype
    unknown = dataclasses.replace(g, normal=(("foo_3x3", 0),) + tuple(g.normal[1:]))
    with pytest.raises(GhnError, match="unknown DeepNets op 'foo'"):
        net_plan(base.with_(genotype=unknown))
    dead = dataclasses.replace(g, normal=(("none", 0), ("none", 1)), normal_concat=(2,),
                               reduce=(("none", 0), ("none", 1)), reduce_concat=(2,))
    with pytest.raises(GhnError, match="output is None"):
        Network(base.with_(genotype=dead, preproc=True), imagenet=False).init(
            jax.random.PRNGKey(0), jnp.ones((1, 32, 32, 3)))


def test_attention_network_at_another_image_size_is_a_clear_error():
    spec = sample("predefined", 1)             # a ViT: fixed 11x11 positional encoding after a 3x3/3 stem
    with pytest.raises(GhnError, match="takes 32x32 images, got 16x16"):
        Network(spec, imagenet=False).init(jax.random.PRNGKey(0), jnp.ones((1, 16, 16, 3)))
    Network(spec, imagenet=False).init(jax.random.PRNGKey(0), jnp.ones((1, 33, 33, 3)))   # 11x11 too, as torch
    from ghn_jax.deepnets.executor import Executor
    plan = net_plan(spec, imagenet=False)
    params = Network(spec, imagenet=False).init(jax.random.PRNGKey(0), jnp.ones((1, 32, 32, 3)))["params"]
    with pytest.raises(GhnError, match="takes 32x32 images, got 16x16"):
        Executor().forward(plan, params, jnp.ones((1, 16, 16, 3)))
