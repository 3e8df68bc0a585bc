import pytest

from tests.zoo.parity import assert_zoo_parity


def test_parity_fast():
    assert_zoo_parity("shufflenet_v2_x0_5", image_size=64)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"])
def test_parity_slow(name):
    assert_zoo_parity(name, image_size=64)
