import pytest

from tests.zoo.parity import assert_zoo_parity


def test_parity_fast():
    assert_zoo_parity("convnext_tiny", image_size=64)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["convnext_small", "convnext_base", "convnext_large"])
def test_parity_slow(name):
    assert_zoo_parity(name, image_size=64)
