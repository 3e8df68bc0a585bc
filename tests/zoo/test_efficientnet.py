import pytest

from tests.zoo.parity import assert_train_parity, assert_zoo_parity


def test_parity_fast():
    assert_zoo_parity("efficientnet_b0", image_size=64)


@pytest.mark.slow
@pytest.mark.parametrize("name", [f"efficientnet_b{i}" for i in range(1, 8)]
                         + ["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"])
def test_parity_slow(name):
    assert_zoo_parity(name, image_size=64)


def test_train_mode_fast():
    # Row stochastic depth and classifier dropout both live on the 'dropout' rng.
    assert_train_parity("efficientnet_b0")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_b5", "efficientnet_v2_s"])
def test_train_mode_slow(name):
    # b5: BN eps 1e-3 / momentum 0.01; v2_s: FusedMBConv blocks.
    assert_train_parity(name)


def test_stage_scaling_matches_torchvision():
    """Channels (make_divisible of width) and depths (ceil of depth) for every B variant."""
    import torchvision.models.efficientnet as tv
    from ghn_jax.zoo.efficientnet import _b_stages
    mults = [(1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4), (1.4, 1.8), (1.6, 2.2), (1.8, 2.6), (2.0, 3.1)]
    for i, (w, d) in enumerate(mults):
        conf, _ = tv._efficientnet_conf(f"efficientnet_b{i}", width_mult=w, depth_mult=d)
        want = [(c.expand_ratio, c.kernel, c.stride, c.input_channels, c.out_channels, c.num_layers)
                for c in conf]
        assert [s[1:] for s in _b_stages(w, d)] == want, f"efficientnet_b{i}"
