import pytest

from tests.zoo.parity import assert_dropout_live, assert_train_parity, assert_zoo_parity

VGGS = [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]


@pytest.mark.parametrize("name,size", [("alexnet", 160), ("vgg11_bn", 64)])
def test_parity_fast(name, size):
    # The adaptive pools upsample with overlapping, uneven bins: 4x4 -> 6x6 (AlexNet at
    # 160 px), 2x2 -> 7x7 (VGG at 64 px).
    assert_zoo_parity(name, image_size=size)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in VGGS if n != "vgg11_bn"])
def test_parity_slow(name):
    assert_zoo_parity(name, image_size=64)


@pytest.mark.slow
def test_parity_native_size():
    assert_zoo_parity("vgg11", image_size=224)


@pytest.mark.slow
def test_train_mode_vgg_bn():
    # Batch statistics and running-mean updates; classifier dropout drawn from the 'dropout' rng.
    assert_train_parity("vgg11_bn", image_size=64)


@pytest.mark.slow
def test_dropout_live_alexnet():
    # AlexNet has no BatchNorm; its dropouts come before the Linears (VGG's after).
    assert_dropout_live("alexnet")