import numpy as np
import pytest

from tests.zoo.parity import abstract_variables, assert_zoo_parity


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_parity_fast(name):
    assert_zoo_parity(name, image_size=64)


def test_dropout_live_in_train_mode():
    # SqueezeNet has no BatchNorm: train mode differs from eval only by the classifier dropout.
    import jax
    from ghn_jax import zoo

    module = zoo.get("squeezenet1_1", num_classes=10)
    # Random values from numpy: a Flax init compiles slowly on CPU.
    rng = np.random.RandomState(0)
    variables = jax.tree_util.tree_map(lambda s: 0.05 * rng.randn(*s.shape).astype(s.dtype),
                                       abstract_variables(module, 64))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 64, 64, 3))
    run = jax.jit(lambda k: module.apply(variables, x, train=True, rngs={"dropout": k}))
    assert not np.allclose(run(jax.random.PRNGKey(2)), run(jax.random.PRNGKey(3)))
