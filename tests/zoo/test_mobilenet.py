import pytest

from tests.zoo.parity import assert_train_parity, assert_zoo_parity


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])
def test_parity_fast(name):
    assert_zoo_parity(name, image_size=64)


@pytest.mark.slow
def test_parity_slow():
    assert_zoo_parity("mobilenet_v3_large", image_size=64)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"])
def test_train_mode_slow(name):
    assert_train_parity(name)
