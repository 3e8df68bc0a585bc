"""Zoo parity harness: a twin must reproduce torchvision exactly.

Used by every tests/zoo/test_<family>.py:
  1. torchvision -> Flax -> torchvision params round trip is exact (bitwise);
  2. eval-mode logits equal torchvision's on the same input,
     max |diff| <= 1e-4 * logit scale (scale = max(1, max |torch logits|)).
torch is imported here only; the twins never import it.
"""
import numpy as np
import jax
import jax.numpy as jnp

from ghn_jax import zoo
from ghn_jax.export import flax_to_torch, torch_to_flax


def torchvision_model(name: str, seed: int = 0, num_classes: int = 1000, randomize: bool = False):
    """torchvision's model in eval mode. randomize=True replaces constant tensors (zero
    heads, unit norms, 0/1 running stats) by random values so that a twin that ignores or
    swaps them cannot pass on trivial numbers."""
    import torch
    import torchvision
    torch.manual_seed(seed)
    kwargs = {"num_classes": num_classes}
    if name in ("googlenet", "inception_v3"):
        kwargs["init_weights"] = True
    model = getattr(torchvision.models, name)(**kwargs).eval()
    if randomize:
        with torch.no_grad():
            for k, t in model.state_dict().items():
                if not t.is_floating_point() or t.numel() < 2:
                    continue
                if k.endswith("running_var"):
                    t.uniform_(0.5, 1.5)
                elif float(t.std()) == 0.0:
                    t.add_(0.1 * torch.randn_like(t))
    return model


def abstract_variables(module, image_size: int, batch: int = 1):
    x = jax.ShapeDtypeStruct((batch, image_size, image_size, 3), jnp.float32)
    return jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x), x)


def assert_zoo_parity(name: str, image_size: int = None, batch: int = 2, seed: int = 0,
                      num_classes: int = 1000, rtol: float = 1e-4):
    import torch
    image_size = image_size or zoo.input_size(name)
    tv = torchvision_model(name, seed, num_classes, randomize=True)
    sd = {k: v.detach().numpy() for k, v in tv.state_dict().items()}
    module = zoo.get(name, num_classes=num_classes)
    template = abstract_variables(module, image_size)
    variables = torch_to_flax(sd, template)

    # 1. exact round trip of every float tensor (params and running stats).
    back = flax_to_torch(variables)
    float_keys = {k for k, v in sd.items() if np.issubdtype(v.dtype, np.floating)}
    assert set(back) == float_keys, (sorted(float_keys - set(back))[:5], sorted(set(back) - float_keys)[:5])
    for k, v in back.items():
        assert v.shape == sd[k].shape and v.dtype == sd[k].dtype, k
        assert np.array_equal(v, sd[k]), k

    # 2. eval-mode logits.
    rng = np.random.RandomState(seed)
    x = rng.randn(batch, 3, image_size, image_size).astype(np.float32)
    with torch.no_grad():
        ref = tv(torch.from_numpy(x)).numpy()
    # jit: eager op-by-op execution of a large model compiles every op separately.
    out = jax.jit(lambda v, x: module.apply(v, x, train=False))(variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
    out = np.asarray(out)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(out - ref).max())
    assert err <= rtol * scale, f"{name}: max |diff| {err:.3g} > {rtol} x scale {scale:.3g}"
    return err, scale


def assert_train_parity(name: str, image_size: int = 64, batch: int = 4, seed: int = 0, rtol: float = 1e-4,
                        check_stats: bool = True):
    """train=True against torchvision's train mode: batch statistics in the logits and the
    running-mean update. Dropout and stochastic depth are set to 0 on both sides (their
    random draws cannot match); that they are live with train=True is checked separately.
    Running means and (torch's unbiased) running variances must follow torch's too, and
    every output (main and auxiliary heads) is compared."""
    import jax
    import jax.numpy as jnp
    import torch
    from torchvision.ops import StochasticDepth
    from ghn_jax import zoo
    from ghn_jax.export import torch_to_flax

    tv = torchvision_model(name, seed, randomize=True)
    sd = {k: v.detach().numpy().copy() for k, v in tv.state_dict().items()}   # before the update
    for m in tv.modules():
        if isinstance(m, (torch.nn.Dropout, StochasticDepth)):
            m.p = 0.0
    tv.train()
    module = zoo.get(name)
    no_drop = {f: 0.0 for f in ("dropout", "dropout_aux", "stochastic_depth_prob") if hasattr(module, f)}
    quiet = module.clone(**no_drop)
    variables = torch_to_flax(sd, abstract_variables(module, image_size))

    x = np.random.RandomState(seed).randn(batch, 3, image_size, image_size).astype(np.float32)
    with torch.no_grad():
        ref = tv(torch.from_numpy(x))
    refs = [t.numpy() for t in (ref if isinstance(ref, tuple) else (ref,))]
    xj = jnp.asarray(x.transpose(0, 2, 3, 1))
    out, updated = jax.jit(lambda v, x: quiet.apply(v, x, train=True, mutable=["batch_stats"]))(variables, xj)
    outs = jax.tree_util.tree_leaves(out)
    assert len(outs) == len(refs), (len(outs), len(refs))
    for o, r in zip(outs, refs):
        scale = max(1.0, float(np.abs(r).max()))
        err = float(np.abs(np.asarray(o) - r).max())
        assert err <= rtol * scale, f"{name} train mode: max |diff| {err:.3g} > {rtol} x scale {scale:.3g}"

    tv_sd = tv.state_dict()
    if check_stats:
        stats = 0
        for path, leaf in jax.tree_util.tree_flatten_with_path(updated["batch_stats"])[0]:
            keys = [k.key for k in path]
            want = tv_sd[".".join(keys[:-1] + ["running_" + keys[-1]])].numpy()
            np.testing.assert_allclose(np.asarray(leaf), want, rtol=1e-4, atol=1e-5, err_msg=".".join(keys))
            stats += 1
        assert stats == sum(k.endswith(("running_mean", "running_var")) for k in tv_sd)

    # The registered model draws its dropout / stochastic depth from the 'dropout' rng.
    run = jax.jit(lambda v, k: module.apply(v, xj, train=True, mutable=["batch_stats"],
                                            rngs={"dropout": k})[0])
    a, b = run(variables, jax.random.PRNGKey(1)), run(variables, jax.random.PRNGKey(2))
    assert not np.allclose(jax.tree_util.tree_leaves(a)[0], jax.tree_util.tree_leaves(b)[0])


def assert_dropout_live(name: str, image_size: int = 64):
    """train=True draws dropout from the 'dropout' rng (for models without BatchNorm)."""
    module = zoo.get(name, num_classes=10)
    # Random values from numpy: a Flax init compiles slowly on CPU.
    rng = np.random.RandomState(0)
    variables = jax.tree_util.tree_map(lambda s: 0.05 * rng.randn(*s.shape).astype(s.dtype),
                                       abstract_variables(module, image_size))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, image_size, image_size, 3))
    run = jax.jit(lambda k: module.apply(variables, x, train=True, rngs={"dropout": k}))
    assert not np.allclose(run(jax.random.PRNGKey(2)), run(jax.random.PRNGKey(3)))
