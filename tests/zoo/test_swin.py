import numpy as np
import pytest

from tests.zoo.parity import assert_zoo_parity


def test_parity_fast():
    # 80 px: maps 20/10/5/3 -> padded shifted windows with masks (20, 10), the shift dropped
    # where one window covers the map (5, 3) and patch merging of an odd map (5 -> 3).
    assert_zoo_parity("swin_t", image_size=80)


@pytest.mark.slow
@pytest.mark.parametrize("name,size", [("swin_t", 224), ("swin_s", 224), ("swin_b", 224)])
def test_parity_slow(name, size):
    assert_zoo_parity(name, image_size=size)


def test_non_square_input():
    """64x160: at 4x10 the shift is dropped along H only (one window tall, two wide)."""
    import jax
    import jax.numpy as jnp
    import torch
    from ghn_jax import zoo
    from ghn_jax.export import torch_to_flax
    from tests.zoo.parity import torchvision_model

    tv = torchvision_model("swin_t", randomize=True)
    module = zoo.get("swin_t")
    x = np.random.RandomState(0).randn(1, 3, 64, 160).astype(np.float32)
    template = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x),
                              jax.ShapeDtypeStruct((1, 64, 160, 3), jnp.float32))
    variables = torch_to_flax(tv.state_dict(), template)
    with torch.no_grad():
        ref = tv(torch.from_numpy(x)).numpy()
    out = np.asarray(jax.jit(module.apply)(variables, jnp.asarray(x.transpose(0, 2, 3, 1))))
    scale = max(1.0, float(np.abs(ref).max()))
    assert float(np.abs(out - ref).max()) <= 1e-4 * scale


def test_train_mode_stochastic_depth():
    """train=True draws stochastic depth from the 'dropout' rng."""
    import jax
    import jax.numpy as jnp
    from ghn_jax import zoo
    module = zoo.get("swin_t", num_classes=10)
    x = jnp.asarray(np.random.RandomState(0).randn(2, 32, 32, 3).astype(np.float32))
    # Random variables of the right shapes: compiling the model's own initialisers is slow.
    rng = np.random.RandomState(1)
    v = jax.tree_util.tree_map(lambda s: jnp.asarray(0.05 * rng.randn(*s.shape), s.dtype),
                               jax.eval_shape(module.init, jax.random.PRNGKey(0), x))
    run = jax.jit(lambda v, k: module.apply(v, x, train=True, rngs={"dropout": k}))
    a, b = run(v, jax.random.PRNGKey(1)), run(v, jax.random.PRNGKey(2))
    assert a.shape == (2, 10) and not np.allclose(a, b)


def test_relative_position_index_matches_torchvision():
    import torchvision.models.swin_transformer as tv
    from ghn_jax.zoo.swin import relative_position_index
    m = tv.ShiftedWindowAttention(8, [7, 7], [3, 3], 2)
    np.testing.assert_array_equal(relative_position_index((7, 7)), m.relative_position_index.numpy())
