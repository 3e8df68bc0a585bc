"""The op-by-op executor computes exactly the Flax Network: logits and parameter gradients.

Comparisons run in float64 (jax.enable_x64), where both sides must agree to rounding of the
same mathematics; in float32 the two programs round differently (XLA fuses one whole
network differently from one op at a time), which is measured in docs/deepnets.md.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ghn_jax import tree_paths
from ghn_jax.deepnets import CompileCounter, Executor, Network, net_plan, sample
from ghn_jax.deepnets.executor import cross_entropy_and_grad


def diverse_specs(n: int, C: int = 16):
    """n train/bnfree nets covering ViT (msa), cse, BN-free, both stems, stem pool, flatten head."""
    want = {"vit": 1, "cse": 1, "stem0": 1, "stem1": 1, "flat": 1, "pool": 1, "fc2": 1}
    specs, i = [sample("bnfree", 0).with_(C=C, num_classes=10)], 0
    while len(specs) < n:
        s = sample("train", i)
        i += 1
        ops = [o for o, _ in s.genotype.normal + s.genotype.reduce]
        tags = {"vit": s.is_vit, "cse": "cse" in ops, "stem0": s.stem_type == 0 and not s.is_vit,
                "stem1": s.stem_type == 1 and not s.is_vit, "flat": not s.glob_avg,
                "pool": s.stem_pool and not s.is_vit, "fc2": s.fc_layers > 1}
        new = [k for k, v in tags.items() if v and want.get(k, 0) > 0]
        if new or all(v == 0 for v in want.values()):
            for k in new:
                want[k] -= 1
            specs.append(s.with_(C=C, num_classes=10))
    return specs


def _check(spec, seed):
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(seed), (2, 32, 32, 3), jnp.float64)
        y = jnp.array([seed % 10, (seed + 3) % 10])
        net = Network(spec, imagenet=False)
        params = net.init(jax.random.PRNGKey(seed), x)["params"]
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
        ex = Executor()
        logits, tape = ex.forward(net_plan(spec, imagenet=False), params, x)
        ref = net.apply({"params": params}, x)
        rel = float(jnp.linalg.norm(logits - ref) / jnp.linalg.norm(ref))
        assert rel <= 1e-5, rel
        _, g_logits = cross_entropy_and_grad(logits, y)
        grads, _ = ex.backward(tape, g_logits)
        g_ref = jax.grad(lambda p: cross_entropy_and_grad(net.apply({"params": p}, x), y)[0])(params)
        a, b = tree_paths.flatten(grads), tree_paths.flatten(g_ref)
        assert set(a) <= set(b)
        total = np.sqrt(sum(float(jnp.sum(v ** 2)) for v in b.values()))
        for k, v in b.items():
            d = float(jnp.linalg.norm(a[k] - v)) if k in a else float(jnp.linalg.norm(v))
            assert d <= 1e-5 * float(jnp.linalg.norm(v)) + 1e-9 * total, (k, d, float(jnp.linalg.norm(v)))
    return rel


@pytest.mark.parametrize("k", range(9))
def test_executor_equals_network(k):
    _check(diverse_specs(9)[k], k)


@pytest.mark.slow
def test_executor_equals_network_50():
    for k, spec in enumerate(diverse_specs(50)):
        _check(spec, k)


def test_compilations_bounded_by_buckets():
    """A second network made of the same ops at the same shapes compiles nothing."""
    base = diverse_specs(3)[2]
    ex = Executor()
    x = jnp.ones((2, 32, 32, 3))
    def run(spec):
        params = Network(spec, False).init(jax.random.PRNGKey(0), x)["params"]
        out, tape = ex.forward(net_plan(spec, False), params, x)
        ex.backward(tape, jnp.ones_like(out))
    run(base)
    # The same genotype with one more normal cell per stage: new architecture, no new buckets.
    more = base.with_(n_cells=base.n_cells + 3)
    counter = CompileCounter()
    with counter:
        run(more)
    assert counter.count == 0, counter.count


def test_dropout_key_changes_only_fc2_nets():
    spec = next(s for s in diverse_specs(9) if s.fc_layers > 1)
    x = jnp.ones((2, 32, 32, 3))
    params = Network(spec, False).init(jax.random.PRNGKey(0), x)["params"]
    ex = Executor()
    a, _ = ex.forward(net_plan(spec, False), params, x, dropout_key=jax.random.PRNGKey(1))
    b, _ = ex.forward(net_plan(spec, False), params, x, dropout_key=jax.random.PRNGKey(2))
    c, _ = ex.forward(net_plan(spec, False), params, x)
    assert not np.allclose(a, b) and not np.allclose(a, c)
