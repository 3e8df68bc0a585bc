"""BatchNorm modes: predicted nets are evaluated with batch statistics (reference §4.7),
dropout off, padding rows outside the statistics; trained nets with running statistics."""
import numpy as np
import jax
import jax.numpy as jnp
import flax.linen as nn

from ghn_jax.eval import models
from ghn_jax.zoo.layers import BatchNorm2d, Dropout


class TinyNet(nn.Module):
    rate: float = 0.5

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(8, (3, 3), name="conv")(x)
        x = jax.nn.relu(BatchNorm2d(train, name="bn")(x))
        x = Dropout(self.rate)(jnp.mean(x, axis=(1, 2)), train)
        return nn.Dense(5, name="fc")(x)


def _target(module):
    return models.Target("tiny", module, 5, 8, "zoo", zoo_name="tiny")


def test_batch_mode_is_train_mode_batchnorm_without_dropout():
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 8, 8, 3))
    v = TinyNet().init(jax.random.PRNGKey(1), x)
    v = {"params": v["params"], "batch_stats": {"bn": {"mean": jnp.full(8, 5.0), "var": jnp.full(8, 9.0)}}}
    ours = models.forward(_target(TinyNet(0.5)), v, x, bn="batch")
    # torch: model.eval() then BatchNorm2d in train mode == Flax train=True without dropout
    ref, _ = TinyNet(0.0).apply(v, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-5, atol=1e-5)
    running = models.forward(_target(TinyNet(0.5)), v, x, bn="running")
    np.testing.assert_allclose(np.asarray(running), np.asarray(TinyNet().apply(v, x)), rtol=1e-6)
    assert np.abs(np.asarray(running) - np.asarray(ours)).max() > 1e-2     # the running stats do matter here
    # a padded batch (mask False rows) gives the short batch's numbers on its real rows
    xp = jnp.concatenate([x, jnp.zeros((3, 8, 8, 3))])
    mask = jnp.asarray([True] * 6 + [False] * 3)
    padded = models.forward(_target(TinyNet(0.5)), v, xp, mask, bn="batch")
    np.testing.assert_allclose(np.asarray(padded[:6]), np.asarray(ours), rtol=1e-5, atol=1e-5)


def test_small_stems_match_adjust_net():
    """Shapes after the stem as ppuda's adjust_net gives them on 32 px images."""
    from ghn_jax import zoo
    from ghn_jax.eval import small
    x = jnp.zeros((1, 32, 32, 3))

    def params(m):
        return jax.eval_shape(lambda: m.init(jax.random.PRNGKey(0), x))["params"]
    r = params(small.adapt(zoo.get("resnet18", num_classes=10)))
    assert r["conv1"]["kernel"].shape == (3, 3, 3, 64)           # 3x3 stem
    v = small.adapt(zoo.get("vgg11_bn", num_classes=10))
    out = jax.eval_shape(lambda: v.init_with_output(jax.random.PRNGKey(0), x)[0])
    assert out.shape == (1, 10)
    for name in ("mobilenet_v3_small", "alexnet", "shufflenet_v2_x0_5"):
        m = small.adapt(zoo.get(name, num_classes=10))
        assert m is not None and set(params(m)) == set(params(zoo.get(name, num_classes=10))), name
    assert small.adapt(zoo.get("efficientnet_b0", num_classes=10)) is None        # none in ppuda either
