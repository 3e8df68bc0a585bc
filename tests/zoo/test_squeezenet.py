import pytest

from tests.zoo.parity import assert_zoo_parity


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_parity_fast(name):
    assert_zoo_parity(name, image_size=64)
