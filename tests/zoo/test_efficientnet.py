import pytest

from tests.zoo.parity import assert_zoo_parity


@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnet_v2_s"])
def test_parity_fast(name):
    assert_zoo_parity(name, image_size=64)


@pytest.mark.slow
@pytest.mark.parametrize("name", [f"efficientnet_b{i}" for i in range(1, 8)] + ["efficientnet_v2_m",
                                                                                  "efficientnet_v2_l"])
def test_parity_slow(name):
    assert_zoo_parity(name, image_size=64)
