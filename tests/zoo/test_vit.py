import pytest

from ghn_jax import zoo
from ghn_jax.errors import GhnError
from tests.zoo.parity import abstract_variables, assert_zoo_parity


def test_parity_fast():
    assert_zoo_parity("vit_b_32", image_size=224)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vit_b_16", "vit_l_16", "vit_l_32"])
def test_parity_slow(name):
    assert_zoo_parity(name, image_size=224)


def test_wrong_image_size_is_clear():
    with pytest.raises(GhnError, match="ViT expects 224x224 images"):
        abstract_variables(zoo.get("vit_b_32"), 160)
