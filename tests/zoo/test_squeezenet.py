import pytest

from tests.zoo.parity import assert_dropout_live, assert_zoo_parity


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_parity_fast(name):
    assert_zoo_parity(name, image_size=64)


def test_dropout_live_in_train_mode():
    # SqueezeNet has no BatchNorm: train mode differs from eval only by the classifier dropout.
    assert_dropout_live("squeezenet1_1")