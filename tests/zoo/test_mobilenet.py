import numpy as np
import pytest

from tests.zoo.parity import assert_zoo_parity


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])
def test_parity_fast(name):
    assert_zoo_parity(name, image_size=64)


@pytest.mark.slow
def test_parity_slow():
    assert_zoo_parity("mobilenet_v3_large", image_size=64)


def assert_train_parity(name: str, image_size: int = 64, batch: int = 4, seed: int = 0, rtol: float = 1e-4):
    """train=True against torchvision's train mode: batch statistics in the logits and the
    running-mean update. Dropout and stochastic depth are set to 0 on both sides (their
    random draws cannot match); that they are live with train=True is checked separately.
    Shared by the mobilenet, mnasnet and efficientnet tests."""
    import jax
    import jax.numpy as jnp
    import torch
    from torchvision.ops import StochasticDepth
    from ghn_jax import zoo
    from ghn_jax.export import torch_to_flax
    from tests.zoo.parity import abstract_variables, torchvision_model

    tv = torchvision_model(name, seed, randomize=True)
    sd = {k: v.detach().numpy().copy() for k, v in tv.state_dict().items()}   # before the update
    for m in tv.modules():
        if isinstance(m, (torch.nn.Dropout, StochasticDepth)):
            m.p = 0.0
    tv.train()
    module = zoo.get(name)
    no_drop = {f: 0.0 for f in ("dropout", "stochastic_depth_prob") if hasattr(module, f)}
    quiet = module.clone(**no_drop)
    variables = torch_to_flax(sd, abstract_variables(module, image_size))

    x = np.random.RandomState(seed).randn(batch, 3, image_size, image_size).astype(np.float32)
    with torch.no_grad():
        ref = tv(torch.from_numpy(x)).numpy()
    xj = jnp.asarray(x.transpose(0, 2, 3, 1))
    out, updated = jax.jit(lambda v, x: quiet.apply(v, x, train=True, mutable=["batch_stats"]))(variables, xj)
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(np.asarray(out) - ref).max())
    assert err <= rtol * scale, f"{name} train mode: max |diff| {err:.3g} > {rtol} x scale {scale:.3g}"

    tv_sd = tv.state_dict()
    means = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(updated["batch_stats"])[0]:
        keys = [k.key for k in path]
        if keys[-1] != "mean":
            continue
        want = tv_sd[".".join(keys[:-1] + ["running_mean"])].numpy()
        np.testing.assert_allclose(np.asarray(leaf), want, rtol=1e-4, atol=1e-5, err_msg=".".join(keys))
        means += 1
    assert means == sum(k.endswith("running_mean") for k in tv_sd)

    # The registered model draws its dropout / stochastic depth from the 'dropout' rng.
    run = jax.jit(lambda v, k: module.apply(v, xj, train=True, mutable=["batch_stats"],
                                            rngs={"dropout": k})[0])
    a, b = run(variables, jax.random.PRNGKey(1)), run(variables, jax.random.PRNGKey(2))
    assert not np.allclose(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"])
def test_train_mode_slow(name):
    assert_train_parity(name)
