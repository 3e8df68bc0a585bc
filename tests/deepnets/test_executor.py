"""The op-by-op executor computes exactly the Flax Network: logits and parameter gradients.

Comparisons run in float64 (jax.enable_x64), where both sides must agree to rounding of the
same mathematics; in float32 the two programs round differently (XLA fuses one whole
network differently from one op at a time), which is measured in docs/deepnets.md.
"""
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ghn_jax import tree_paths
from ghn_jax.deepnets import CompileCounter, Executor, Network, net_plan, sample
from ghn_jax.deepnets import executor as executor_mod
from ghn_jax.deepnets.executor import cross_entropy_and_grad, wait_for_upgrades


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


def random_params(net, x, seed):
    """Parameters of `net` in x's dtype: the shapes from jax.eval_shape (compiling Flax's init
    costs more than the whole check), the values seeded random at init-like scales, with
    BatchNorm/LayerNorm scales and biases away from 1 and 0 so that they are exercised too."""
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0), x)["params"]
    rng = np.random.default_rng(seed)

    def fill(path, s):
        name = jax.tree_util.keystr(path)
        z = rng.standard_normal(s.shape)
        if len(s.shape) >= 2 and "pos_enc" not in name:
            return z / np.sqrt(np.prod(s.shape[:-1]))      # kernels (..., in, out): 1/sqrt(fan_in)
        return 1.0 + 0.1 * z if "scale" in name else 0.1 * z
    return jax.tree_util.tree_map_with_path(lambda p, s: jnp.asarray(fill(p, s), x.dtype), shapes)


def _check(spec, seed):
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(seed), (2, 32, 32, 3), jnp.float64)
        y = jnp.array([seed % 10, (seed + 3) % 10])
        net = Network(spec, imagenet=False)
        params = random_params(net, x, seed)
        ex = Executor()
        logits, tape = ex.forward(net_plan(spec, imagenet=False), params, x)
        # the references as single programs: op-by-op dispatch compiles every small op on its own
        ref = jax.jit(lambda p: net.apply({"params": p}, x))(params)
        rel = float(jnp.linalg.norm(logits - ref) / jnp.linalg.norm(ref))
        assert rel <= 1e-5, rel
        _, g_logits = cross_entropy_and_grad(logits, y)
        grads, _ = ex.backward(tape, g_logits)
        g_ref = jax.jit(jax.grad(lambda p: cross_entropy_and_grad(net.apply({"params": p}, x), y)[0]))(params)
        a, b = tree_paths.flatten(grads), tree_paths.flatten(g_ref)
        assert set(a) <= set(b)
        total = np.sqrt(sum(float(jnp.sum(v ** 2)) for v in b.values()))
        for k, v in b.items():
            d = float(jnp.linalg.norm(a[k] - v)) if k in a else float(jnp.linalg.norm(v))
            assert d <= 1e-5 * float(jnp.linalg.norm(v)) + 1e-9 * total, (k, d, float(jnp.linalg.norm(v)))
    return rel


@pytest.mark.parametrize("k", range(6))
def test_executor_equals_network(k, monkeypatch):
    """Nets 0-5 of diverse_specs(9) hold every tag above and every op kind (net 0 is BN-free);
    6-8 are combinations of these, checked with 41 more by test_executor_equals_network_50
    (slow, optimised kernels). Here unoptimised kernels (2x faster to compile): the op
    semantics are the tier's; the optimised tier's own form (shift-add depthwise
    convolutions) is checked below."""
    monkeypatch.setattr(executor_mod, "_first_tier", lambda: 0)
    monkeypatch.setattr(executor_mod, "_COMPILED", {})
    _check(diverse_specs(9)[k], k)


def test_optimised_kernels_equal_network(monkeypatch):
    """Kernels compiled with full optimisation (tier 1, the default on one CPU device, whose
    depthwise convolutions are shifted multiply-adds) equal the Flax Network's grouped convolutions, strided and
    dilated ones included."""
    monkeypatch.setattr(executor_mod, "_first_tier", lambda: 1)
    monkeypatch.setattr(executor_mod, "_COMPILED", {})
    ops = lambda s, cells: {o for c in cells for o, i in getattr(s.genotype, c)}
    specs = diverse_specs(9)
    strided = next(s for s in specs if {"sep_conv_3x3", "sep_conv_5x5"} & ops(s, ["reduce"]))
    dilated = next(s for s in specs if {"dil_conv_3x3", "dil_conv_5x5"} & ops(s, ["normal", "reduce"]))
    _check(strided, 0)
    if dilated is not strided:
        _check(dilated, 1)


@pytest.mark.parametrize("b,h,w,c,k,stride,dil,pad", [(2, 9, 7, 3, 3, 1, 1, 1), (2, 10, 11, 4, 5, 2, 1, 2),
                                                      (3, 12, 12, 5, 3, 1, 2, 2), (1, 13, 9, 2, 5, 2, 2, 4),
                                                      (2, 8, 8, 3, 1, 2, 1, 0), (2, 7, 7, 3, 3, 1, 1, 0)])
def test_shift_add_depthwise_vjp_equals_grouped_convolution(b, h, w, c, k, stride, dil, pad):
    """The shift-add depthwise convolution's hand-written VJP (inputs as the only residuals,
    weight gradient as batched matmuls) equals autodiff of the grouped convolution, odd
    sizes, strides and dilations included."""
    from ghn_jax.deepnets.ops import _depthwise, shift_add_depthwise
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(0), (b, h, w, c), jnp.float64)
        kernel = jax.random.normal(jax.random.PRNGKey(1), (k, k, 1, c), jnp.float64)

        def conv(x, kernel, shifts):
            with shift_add_depthwise(shifts):
                return _depthwise(x, kernel, (stride, stride), ((pad, pad), (pad, pad)), rhs_dilation=(dil, dil),
                                  feature_group_count=c, dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y_ref, vjp_ref = jax.vjp(lambda a, b_: conv(a, b_, False), x, kernel)
        y, vjp = jax.vjp(lambda a, b_: conv(a, b_, True), x, kernel)
        g = jax.random.normal(jax.random.PRNGKey(2), y.shape, jnp.float64)
        for got, want in zip((y,) + vjp(g), (y_ref,) + vjp_ref(g)):
            assert got.shape == want.shape
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-12 * float(jnp.max(jnp.abs(want))))


def test_run_once_runs_both_programs_on_zeros_and_skips_what_it_cannot_make():
    from ghn_jax.deepnets.executor import run_once
    calls = []

    def fwd(w, x):
        calls.append(("fwd", type(w), w.shape, x.shape, float(np.abs(x).sum())))
        return (x @ w, np.float32(0)), [x]

    def bwd(res, ct):
        calls.append(("bwd", res[0].shape, ct[0].shape, ct[1].shape))
        return ct
    args = (jax.ShapeDtypeStruct((3, 2), jnp.float32), jax.ShapeDtypeStruct((4, 3), jnp.float32))
    assert run_once(fwd, bwd, args)
    assert calls == [("fwd", np.ndarray, (3, 2), (4, 3), 0.0), ("bwd", (4, 3), (4, 2), ())]
    typed_key = jax.eval_shape(lambda: jax.random.key(0))
    assert not run_once(fwd, bwd, args + (typed_key,))
    assert len(calls) == 2


def test_precompile_runs_new_kernels_once(monkeypatch):
    """Precompiling with run_once executes each new kernel's programs once (on zeros): the
    first execution of a program costs several times its later ones, and is taken off the
    step that way (docs/deepnets.md)."""
    monkeypatch.setattr(executor_mod, "_COMPILED", {})
    ran = []
    monkeypatch.setattr(executor_mod, "run_once", lambda fwd, bwd, args, *a: ran.append(args) or True)
    spec = diverse_specs(1)[0]
    plan = net_plan(spec, imagenet=False)
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    params = jax.eval_shape(Network(spec, imagenet=False).init, jax.random.PRNGKey(0), x)["params"]
    Executor().precompile(plan, params, x)                          # default: nothing run
    assert executor_mod._COMPILED and not ran
    monkeypatch.setattr(executor_mod, "_COMPILED", {})
    Executor().precompile(plan, params, x, run_once=True)
    assert len(ran) == len(executor_mod._COMPILED)
    Executor().precompile(plan, params, x, run_once=True)          # nothing new: nothing run again
    assert len(ran) == len(executor_mod._COMPILED)


def test_hot_kernels_are_upgraded(monkeypatch):
    """A kernel used by HOT_USES forward passes is recompiled optimised in the background and
    swapped in; the values stay those of the Network (float64), before and after."""
    monkeypatch.setattr(executor_mod, "_first_tier", lambda: 0)
    monkeypatch.setattr(executor_mod, "_upgrades", lambda: True)
    monkeypatch.setattr(executor_mod, "_COMPILED", {})
    spec = diverse_specs(2)[1]
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 3), jnp.float64)
        net = Network(spec, imagenet=False)
        params = random_params(net, x, 0)
        ref = net.apply({"params": params}, x)
        ex, plan = Executor(), net_plan(spec, imagenet=False)
        for _ in range(executor_mod.HOT_USES):
            assert all(e.tier == 0 for e in executor_mod._COMPILED.values())
            logits, _ = ex.forward(plan, params, x)
            np.testing.assert_allclose(logits, ref, rtol=1e-10, atol=1e-12)
        wait_for_upgrades()
        assert all(e.tier == 1 for e in executor_mod._COMPILED.values())
        logits, tape = ex.forward(plan, params, x)
        assert all(e.bwd is not None for e in tape.entries)
        # float64 up to the classifier, which runs in float32 (ops.Classifier): the two
        # depthwise forms may round a few inputs of its float32 cast to neighbouring floats
        rel = float(jnp.linalg.norm(logits - ref) / jnp.linalg.norm(ref))
        assert rel <= 1e-6, rel


def test_eviction_drops_the_least_recently_used_kernels(monkeypatch):
    """Over the mapping limit the least recently used half goes; if that is not enough,
    everything goes. The mappings are only counted after enough new compilations."""
    P = executor_mod._Programs
    table = {}
    for age in range(4):
        table[f"k{age}"] = P(None, None, None, 1)
        table[f"k{age}"].last = age
    monkeypatch.setattr(executor_mod, "_COMPILED", table)
    monkeypatch.setattr(executor_mod, "_NEW_PROGRAMS", [0])
    reads = []

    def maps():
        reads.append(1)
        return next(counts)
    monkeypatch.setattr(executor_mod, "_map_count", maps)
    ex = Executor()
    counts = iter([50_000])
    assert ex.maybe_evict() == 0 and not reads          # too few new programs to look
    executor_mod._NEW_PROGRAMS[0] = ex.check_every
    counts = iter([50_000, 1_000])
    assert ex.maybe_evict() == 1 and set(table) == {"k2", "k3"}
    executor_mod._NEW_PROGRAMS[0] = ex.check_every
    counts = iter([50_000, 39_000])
    assert ex.maybe_evict() == 2 and not table
    executor_mod._NEW_PROGRAMS[0] = ex.check_every
    counts = iter([1_000])
    assert ex.maybe_evict() == 0 and executor_mod._NEW_PROGRAMS[0] == 0


def test_eviction_frees_the_dropped_programs_before_counting_again(monkeypatch):
    """The recount after dropping half the kernels must see their mappings gone: nothing
    of the eviction itself may still hold the dropped programs (a sorted list of the
    entries did, so every eviction fell through to dropping everything)."""
    class Program:                       # stands for a compiled executable and its mappings
        pass
    alive = weakref.WeakSet()
    table = {}
    for age in range(4):
        prog = Program()
        alive.add(prog)
        table[f"k{age}"] = executor_mod._Programs(prog, None, None, 1)
        table[f"k{age}"].last = age
    del prog
    monkeypatch.setattr(executor_mod, "_COMPILED", table)
    monkeypatch.setattr(executor_mod, "_NEW_PROGRAMS", [Executor.check_every])
    monkeypatch.setattr(executor_mod, "_map_count", lambda: 12_500 * len(alive))   # 4 programs: 50,000
    assert Executor().maybe_evict() == 1 and set(table) == {"k2", "k3"} and len(alive) == 2


def test_kernels_are_stamped_with_the_pass_that_last_used_them(monkeypatch):
    monkeypatch.setattr(executor_mod, "_COMPILED", {})
    monkeypatch.setattr(executor_mod, "_CLOCK", [7])
    x = jnp.ones((2, 3), jnp.float32)
    e = executor_mod._kernel(("add",), {}, (x, x))
    assert e.last == 7
    # a forward pass advances the clock; kernels it (or a precompile) asks for get its value
    monkeypatch.setattr(executor_mod, "run_plan", lambda plan, v, ops: v)
    Executor().forward(None, {}, x)
    assert executor_mod._kernel(("add",), {}, (x, x)) is e and e.last == 8


@pytest.mark.slow
def test_executor_equals_network_50(monkeypatch):
    monkeypatch.setattr(executor_mod, "_first_tier", lambda: 1)
    monkeypatch.setattr(executor_mod, "_COMPILED", {})
    for k, spec in enumerate(diverse_specs(50)):
        _check(spec, k)


def test_compilations_bounded_by_buckets():
    """A second network made of the same ops at the same shapes compiles nothing."""
    base = diverse_specs(3)[2]
    ex = Executor()
    x = jnp.ones((2, 32, 32, 3))
    def run(spec):
        params = random_params(Network(spec, False), x, 0)
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
    params = random_params(Network(spec, False), x, 0)
    ex = Executor()
    a, _ = ex.forward(net_plan(spec, False), params, x, dropout_key=jax.random.PRNGKey(1))
    b, _ = ex.forward(net_plan(spec, False), params, x, dropout_key=jax.random.PRNGKey(2))
    c, _ = ex.forward(net_plan(spec, False), params, x)
    assert not np.allclose(a, b) and not np.allclose(a, c)
