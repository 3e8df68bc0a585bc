"""The Python API: ghn_jax.from_pretrained(...), then ghn(model) on zoo names and custom models."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ghn_jax
from tests.ghn.small_ghn import small_params, write_official
from tests.graph.test_custom_models import SmallViT


@pytest.fixture(scope="module")
def ghn(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("api") / "ghn.pt")
    write_official(path, small_params(1))
    return ghn_jax.from_pretrained(path, trust_pickle=True)


def test_custom_model_keeps_unpredicted_init(ghn):
    model = SmallViT()
    variables, report = ghn.predict(model, (2, 32, 32, 3), tile_classifier=True)
    assert report.not_predicted == ["params/cls"]
    assert "params/pos_embedding" in report.predicted and report.total_norm > 0
    ref = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
    assert jax.tree_util.tree_structure(variables) == jax.tree_util.tree_structure(ref)
    np.testing.assert_array_equal(variables["params"]["cls"], np.zeros((1, 1, 32)))     # its init (zeros)
    out = model.apply(variables, jnp.ones((2, 32, 32, 3)))
    assert out.shape == (2, 10) and bool(jnp.isfinite(out).all())


def test_zoo_name_and_alias(ghn):
    v1 = ghn("resnet18")
    v2 = ghn("ResNet-18")
    np.testing.assert_array_equal(v1["params"]["conv1"]["kernel"], v2["params"]["conv1"]["kernel"])
    assert v1["params"]["fc"]["kernel"].shape == (512, 1000)
    np.testing.assert_array_equal(v1["batch_stats"]["bn1"]["mean"], np.zeros(64, np.float32))


def test_class_count_mismatch_is_refused(ghn):
    with pytest.raises(ghn_jax.GhnError, match="has 10 classes but this GHN predicts 1000"):
        ghn.predict(SmallViT(), (2, 32, 32, 3))
