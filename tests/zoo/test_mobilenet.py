import pytest

from tests.zoo.parity import assert_zoo_parity


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])
def test_parity_fast(name):
    assert_zoo_parity(name, image_size=64)


@pytest.mark.slow
def test_parity_slow():
    assert_zoo_parity("mobilenet_v3_large", image_size=64)
