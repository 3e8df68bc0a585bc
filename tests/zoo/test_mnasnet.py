import pytest

from tests.zoo.parity import assert_train_parity, assert_zoo_parity


def test_parity_fast():
    assert_zoo_parity("mnasnet0_5", image_size=64)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnasnet0_75", "mnasnet1_0", "mnasnet1_3"])
def test_parity_slow(name):
    assert_zoo_parity(name, image_size=64)


@pytest.mark.slow
def test_train_mode():
    # BN momentum 3e-4: the running-mean update checks torch's momentum convention.
    assert_train_parity("mnasnet0_5")
