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
