import pytest

from tests.zoo.parity import assert_zoo_parity

VGGS = [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]


@pytest.mark.parametrize("name,size", [("alexnet", 96), ("vgg11_bn", 64)])
def test_parity_fast(name, size):
    # 64 / 96 px: the adaptive pools upsample (2x2 -> 7x7, 2x2 -> 6x6), torch's uneven bins.
    assert_zoo_parity(name, image_size=size)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in VGGS if n != "vgg11_bn"])
def test_parity_slow(name):
    assert_zoo_parity(name, image_size=64)


@pytest.mark.slow
def test_parity_native_size():
    assert_zoo_parity("vgg11", image_size=224)


@pytest.mark.slow
@pytest.mark.parametrize("name,size", [("alexnet", 96), ("vgg11_bn", 64)])
def test_train_mode(name, size):
    # Batch statistics and running-stat updates (vgg11_bn); dropout drawn from the 'dropout' rng.
    from tests.zoo.test_mobilenet import assert_train_parity
    assert_train_parity(name, image_size=size)
