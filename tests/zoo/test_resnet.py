import pytest

from tests.zoo.parity import assert_zoo_parity


@pytest.mark.parametrize("name,size", [("resnet18", 64), ("resnext50_32x4d", 64)])
def test_parity_fast(name, size):
    assert_zoo_parity(name, image_size=size)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet34", "resnet50", "resnet101", "resnet152",
                                  "resnext101_32x8d", "resnext101_64x4d",
                                  "wide_resnet50_2", "wide_resnet101_2"])
def test_parity_slow(name):
    assert_zoo_parity(name, image_size=64)


def test_batchnorm_running_stats_follow_torch():
    """One train step: outputs, running mean and (unbiased) running variance equal torch's."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    from ghn_jax.zoo.layers import BatchNorm2d
    x = np.random.RandomState(0).randn(4, 3, 3, 5).astype(np.float32)
    bn = BatchNorm2d(True, momentum=0.1)
    v = bn.init(jax.random.PRNGKey(0), jnp.asarray(x))
    y, st = bn.apply(v, jnp.asarray(x), mutable=["batch_stats"])
    ref = torch.nn.BatchNorm2d(5).train()
    ty = ref(torch.from_numpy(x.transpose(0, 3, 1, 2))).detach().numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(y), ty, atol=1e-5)
    np.testing.assert_allclose(np.asarray(st["batch_stats"]["mean"]), ref.running_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(st["batch_stats"]["var"]), ref.running_var.numpy(), atol=1e-6)
