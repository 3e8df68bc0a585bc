import jax
import jax.numpy as jnp
import pytest

from ghn_jax import zoo
from tests.zoo.parity import abstract_variables, assert_train_parity, assert_zoo_parity


def test_parity_fast():
    assert_zoo_parity("googlenet", image_size=64)


def test_train_mode_returns_aux_heads():
    m = zoo.get("googlenet", num_classes=7)
    v = abstract_variables(m, 96, batch=2)
    assert {"aux1", "aux2"} <= set(v["params"])     # created at init even though train=False
    x = jax.ShapeDtypeStruct((2, 96, 96, 3), jnp.float32)
    out, _ = jax.eval_shape(lambda v, x: m.apply(v, x, train=True, mutable=["batch_stats"],
                                                 rngs={"dropout": jax.random.PRNGKey(1)}), v, x)
    assert isinstance(out, tuple) and len(out) == 3 and all(o.shape == (2, 7) for o in out)
    assert jax.eval_shape(lambda v, x: m.apply(v, x), v, x).shape == (2, 7)


@pytest.mark.slow
def test_train_mode_matches_torch():
    """Batch-statistics BN, running stats and both aux heads against torch's train mode (dropout off)."""
    assert_train_parity("googlenet", image_size=64, batch=2)