import pytest

from tests.zoo.parity import assert_zoo_parity

ALL = ["regnet_y_400mf", "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf", "regnet_y_16gf",
       "regnet_y_32gf", "regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf", "regnet_x_8gf",
       "regnet_x_16gf", "regnet_x_32gf"]


@pytest.mark.parametrize("name", ["regnet_y_400mf", "regnet_x_400mf"])
def test_parity_fast(name):
    assert_zoo_parity(name, image_size=64)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ALL if n not in ("regnet_y_400mf", "regnet_x_400mf")])
def test_parity_slow(name):
    assert_zoo_parity(name, image_size=64)


def test_block_params_match_torchvision():
    import torchvision.models.regnet as tv
    from ghn_jax.zoo.regnet import _CONFIGS, block_params
    for name, c in _CONFIGS.items():
        kw = dict(depth=c["depth"], w_0=c["w_0"], w_a=c["w_a"], w_m=c["w_m"], group_width=c["group_width"])
        ref = tv.BlockParams.from_init_params(**kw)
        assert block_params(**kw) == tuple(zip(ref.widths, ref.depths, ref.group_widths)), name
