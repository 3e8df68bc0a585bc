import pytest

from tests.zoo.parity import assert_zoo_parity


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_parity_fast(name):
    assert_zoo_parity(name, image_size=64)


def test_train_mode_fast():
    # No BatchNorm here: this checks the train-mode forward and the live classifier dropout.
    from tests.zoo.test_mobilenet import assert_train_parity
    assert_train_parity("squeezenet1_1")
