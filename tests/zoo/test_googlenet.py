import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ghn_jax import zoo
from ghn_jax.export import torch_to_flax
from ghn_jax.zoo.googlenet import GoogLeNet
from tests.zoo.parity import abstract_variables, assert_zoo_parity, torchvision_model


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
    """Batch-statistics BN and both aux heads against torch's train mode (dropout off)."""
    import torch
    import torchvision
    size, n_cls = 64, 10
    sd = torchvision_model("googlenet", num_classes=n_cls, randomize=True).state_dict()
    tv = torchvision.models.googlenet(num_classes=n_cls, init_weights=True, dropout=0.0, dropout_aux=0.0)
    tv.load_state_dict(sd)
    tv.train()
    m = GoogLeNet(n_cls, dropout=0.0, dropout_aux=0.0)
    v = torch_to_flax({k: t.numpy() for k, t in sd.items()}, abstract_variables(m, size))
    x = np.random.RandomState(0).randn(2, 3, size, size).astype(np.float32)
    with torch.no_grad():
        ref = [t.numpy() for t in tv(torch.from_numpy(x))]
    out, _ = jax.jit(lambda v, x: m.apply(v, x, train=True, mutable=["batch_stats"]))(
        v, jnp.asarray(x.transpose(0, 2, 3, 1)))
    for o, r in zip(out, ref):
        scale = max(1.0, float(np.abs(r).max()))
        assert float(np.abs(np.asarray(o) - r).max()) <= 1e-4 * scale
