import numpy as np
import pytest

from tests.zoo.parity import abstract_variables, assert_zoo_parity, torchvision_model


def test_parity_fast():
    assert_zoo_parity("densenet121", image_size=64)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["densenet161", "densenet169", "densenet201"])
def test_parity_slow(name):
    assert_zoo_parity(name, image_size=64)


@pytest.mark.slow
def test_train_mode():
    """train=True against torchvision's train mode: batch statistics in the logits and the
    running-mean updates of every BatchNorm (DenseNet has no dropout by default). Running
    variances are not compared: flax's BatchNorm updates them with the biased batch variance,
    torch with the unbiased one (a relative gap of 1/(n-1), n = values per channel)."""
    import jax
    import jax.numpy as jnp
    import torch
    from ghn_jax import zoo
    from ghn_jax.export import torch_to_flax

    name, size = "densenet121", 64
    tv = torchvision_model(name, randomize=True)
    sd = {k: v.detach().numpy().copy() for k, v in tv.state_dict().items()}
    module = zoo.get(name)
    variables = torch_to_flax(sd, abstract_variables(module, size))
    x = np.random.RandomState(0).randn(4, 3, size, size).astype(np.float32)
    with torch.no_grad():
        ref = tv.train()(torch.from_numpy(x)).numpy()
    out, updated = jax.jit(lambda v, x: module.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
    scale = max(1.0, float(np.abs(ref).max()))
    assert float(np.abs(np.asarray(out) - ref).max()) <= 1e-4 * scale

    tv_sd = tv.state_dict()
    means = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(updated["batch_stats"])[0]:
        keys = [k.key for k in path]
        if keys[-1] == "mean":
            key = ".".join(keys[:-1] + ["running_mean"])
            np.testing.assert_allclose(np.asarray(leaf), tv_sd[key].numpy(), rtol=1e-4, atol=1e-5,
                                       err_msg=key)
            means += 1
    assert means == sum(k.endswith("running_mean") for k in tv_sd)
