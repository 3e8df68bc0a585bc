import pytest

from tests.zoo.parity import assert_zoo_parity


def test_parity_fast():
    assert_zoo_parity("densenet121", image_size=64)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["densenet161", "densenet169", "densenet201"])
def test_parity_slow(name):
    assert_zoo_parity(name, image_size=64)
