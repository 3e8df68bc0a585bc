"""DeepNets graphs from replayed per-op traces equal whole traces of the Flax Network."""
import dataclasses

import numpy as np
import pytest

from ghn_jax import tree_paths
from ghn_jax.deepnets import SPLITS, Network, input_size, sample
from ghn_jax.deepnets import graph as fast
from ghn_jax.graph import build_graph


def whole(spec, imagenet):
    size = input_size(imagenet)
    return build_graph(Network(spec, imagenet), (2, size, size, 3),
                       name=f"deepnets/{spec.split}/{spec.index}")


def assert_same(a, b):
    for f in ("node_types", "shapes", "spd"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    for f in ("name", "param_names", "torch_names", "extra_params", "target_shapes", "modules", "last_weight",
              "last_bias", "not_predicted", "input_shape"):
        assert getattr(a, f) == getattr(b, f), f
    va, vb = tree_paths.flatten(a.abstract_variables), tree_paths.flatten(b.abstract_variables)
    assert list(va) == list(vb)
    assert all(va[k].shape == vb[k].shape and va[k].dtype == vb[k].dtype for k in va)
    assert set(a.initialisers) == set(b.initialisers)


def _first(pred, start=0):
    return next(s for s in (sample("train", i) for i in range(start, start + 400)) if pred(s))


def _ops(s):
    return set(s.genotype.all_ops)


# Every op, both CNN stems (with and without pooling), the ViT stem, BN-free nets, the flatten
# head, the two-layer classifier (a dropout key in train mode), and an SE gate (cse: the rule
# that drops its mean is decided over the whole network).
FEATURES = {
    "msa": lambda s: "msa" in _ops(s),
    "cse": lambda s: "cse" in _ops(s),
    "cse_bnfree": lambda s: "cse" in _ops(s) and s.norm is None,
    "stem_imnet": lambda s: s.stem_type == 1 and "msa" not in _ops(s),
    "stem_pool": lambda s: s.stem_pool,
    "flatten_head": lambda s: not s.glob_avg,
    "two_fc": lambda s: s.fc_layers == 2,
    "no_preproc": lambda s: not s.preproc,
    "pools_skip_none": lambda s: {"avg_pool_3x3", "max_pool_3x3", "skip_connect", "none"} <= _ops(s),
    "sep_dil_7x1": lambda s: {"sep_conv_3x3", "dil_conv_5x5", "conv_7x1_1x7"} <= _ops(s),
}


@pytest.mark.parametrize("feature", sorted(FEATURES))
@pytest.mark.parametrize("imagenet", [False, True])
def test_features_equal_whole_trace(feature, imagenet):
    spec = _first(FEATURES[feature])
    assert_same(fast.arch_graph(spec, imagenet), whole(spec, imagenet))


@pytest.mark.parametrize("split", [s for s in SPLITS if s != "train"])
def test_splits_equal_whole_trace(split):
    for i in range(2):
        spec = sample(split, i)
        if spec.genotype is None:              # predefined 0 is the torchvision ResNet-50
            continue
        assert_same(fast.arch_graph(spec, False), whole(spec, False))


def test_fragments_are_reused_and_replayed_apart():
    """One cached op trace serves several places of one network and of later networks; a cold
    cache gives the same graph as a warm one."""
    fast.clear()
    a = [fast.arch_graph(sample("train", i), False) for i in range(6)]
    n = len(fast._FRAGMENTS)
    n_ops = sum(len(fast.net_plan(sample("train", i), False).ops()) for i in range(6))
    assert n < n_ops
    fast.clear()
    b = [fast.arch_graph(sample("train", i), False) for i in reversed(range(6))][::-1]
    for x, y in zip(a, b):
        assert_same(x, y)


def test_stride_op_without_preprocessing():
    """Nets without preprocessing stride their cell inputs after a reduction (the `stride` op);
    the sampler draws them only as ViTs, so this one is made by hand."""
    spec = _first(lambda s: len(s.genotype.normal_concat) == 1 and s.stem_type == 1 and "msa" not in _ops(s))
    spec = dataclasses.replace(spec, preproc=False, C_mult=1)
    assert any(c.pre0 and c.pre0.kind == "stride" for c in fast.net_plan(spec, False).cells)
    assert_same(fast.arch_graph(spec, False), whole(spec, False))


def test_other_input_shape_and_eval_mode():
    spec = _first(FEATURES["two_fc"])
    size = input_size(False)
    got = fast.plan_graph(fast.net_plan(spec, False), (1, size, size, 3), name="x", train=False)
    want = build_graph(Network(spec, False), (1, size, size, 3), name="x", train=False)
    assert_same(got, want)


def test_bad_spec_is_the_networks_error():
    from ghn_jax.errors import GhnError
    with pytest.raises(GhnError, match="not a DeepNets cell network"):
        fast.arch_graph(sample("predefined", 0))
    spec = dataclasses.replace(sample("predefined", 1))
    with pytest.raises(GhnError, match="positional encoding"):
        fast.arch_graph(spec, False, input_shape=(2, 16, 16, 3))


@pytest.mark.slow
@pytest.mark.parametrize("split", SPLITS)
def test_many_networks_equal_whole_trace(split):
    for imagenet in (False, True):
        for i in range(2 if split == "predefined" else 25):
            spec = sample(split, i)
            if spec.genotype is not None:
                assert_same(fast.arch_graph(spec, imagenet), whole(spec, imagenet))
