import jax
import jax.numpy as jnp
import pytest

from ghn_jax import zoo
from tests.zoo.parity import assert_zoo_parity


@pytest.mark.parametrize("name,size", [("googlenet", 64), ("inception_v3", 96)])
def test_parity_fast(name, size):
    assert_zoo_parity(name, image_size=size)


@pytest.mark.slow
def test_parity_native_size():
    assert_zoo_parity("inception_v3", image_size=299)


@pytest.mark.parametrize("name,size,n_out", [("googlenet", 96, 3), ("inception_v3", 96, 2)])
def test_train_mode_returns_aux_heads(name, size, n_out):
    m = zoo.get(name, num_classes=7)
    x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    v = jax.eval_shape(lambda x: m.init(jax.random.PRNGKey(0), x), x)
    out, _ = jax.eval_shape(lambda v, x: m.apply(v, x, train=True, mutable=["batch_stats"],
                                                 rngs={"dropout": jax.random.PRNGKey(1)}), v, x)
    assert isinstance(out, tuple) and len(out) == n_out and all(o.shape == (2, 7) for o in out)
    assert jax.eval_shape(lambda v, x: m.apply(v, x), v, x).shape == (2, 7)
