import numpy as np
import pytest

from tests.zoo.parity import assert_zoo_parity


def test_parity_fast():
    # 96 px: padded windows, shifted windows with masks and the stage where the shift is dropped.
    assert_zoo_parity("swin_t", image_size=96)


@pytest.mark.slow
@pytest.mark.parametrize("name,size", [("swin_t", 224), ("swin_s", 96), ("swin_b", 96)])
def test_parity_slow(name, size):
    assert_zoo_parity(name, image_size=size)


def test_relative_position_index_matches_torchvision():
    import torchvision.models.swin_transformer as tv
    from ghn_jax.zoo.swin import relative_position_index
    m = tv.ShiftedWindowAttention(8, [7, 7], [3, 3], 2)
    np.testing.assert_array_equal(relative_position_index((7, 7)), m.relative_position_index.numpy())
