import pytest

from tests.zoo.parity import assert_zoo_parity


@pytest.mark.parametrize("name,size", [("resnet18", 64), ("resnext50_32x4d", 64)])
def test_parity_fast(name, size):
    assert_zoo_parity(name, image_size=size)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet34", "resnet50", "resnet101", "resnet152",
                                  "resnext101_32x8d", "resnext101_64x4d",
                                  "wide_resnet50_2", "wide_resnet101_2"])
def test_parity_slow(name):
    assert_zoo_parity(name, image_size=64)
