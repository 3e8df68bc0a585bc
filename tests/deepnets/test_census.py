"""deepnets.census: a shape-only census finds exactly the programs a meta-step compiles, and
compiling the census fills the kernel store with the very entries the step then loads."""
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ghn_jax.deepnets import arch_graph, census, executor, kernel_store, meta, net_plan, sample
from ghn_jax.deepnets.meta import MetaNet, MetaStep
from ghn_jax.ghn.checkpoint import GHNConfig, ghn_module
from ghn_jax.ghn.model import GHN3

CFG = GHNConfig(hid=16, layers=1, heads=2, max_shape=(16, 16, 8, 8), num_classes=10)


def _files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs
                  if f.endswith(".xla"))


def _forget():
    """What a new process would hold: no programs in memory."""
    executor._COMPILED.clear()
    executor._ACC.clear()
    meta._PRECOMPILED.clear()


@pytest.fixture(scope="module")
def setup():
    # Small nets of both families: a ViT-like one (msa) and a conv net.
    vit = next(s for s in (sample("train", i) for i in range(100)) if s.is_vit)
    conv = next(s for s in (sample("train", i) for i in range(100, 300)) if not s.is_vit)
    specs = [s.with_(C=16, n_cells=min(s.n_cells, 3), num_classes=10, fc_dim=20) for s in (vit, conv)]
    nets = [MetaNet(net_plan(s, False), arch_graph(s, False)) for s in specs]
    module = ghn_module(CFG)
    step = MetaStep(module)
    params = jax.eval_shape(lambda: module.init(
        jax.random.PRNGKey(0), jnp.zeros((1, 3), jnp.int32), jnp.zeros((1, 3, 4), jnp.int32),
        jnp.zeros((1, 3, 3), jnp.int32), jnp.ones((1, 3), bool), method=GHN3.init_all)["params"])
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    y = jax.ShapeDtypeStruct((2,), jnp.int32)
    return nets, step, params, x, y


def _precompile(setup, c=None):
    nets, step, params, x, y = setup
    step.precompile(params, nets, step.prepare([n.graph for n in nets]), x, y, jax.random.PRNGKey(0), census=c)


def test_census_compiles_what_the_step_would_and_nothing_else(setup, tmp_path):
    nets, step, params, x, y = setup
    _forget()
    c = census.Census()
    before = kernel_store.stats()
    _precompile(setup, c)
    assert kernel_store.stats() == before               # a census compiles nothing
    assert len(c.ghn) == 1 and len(c.kernels) > 20
    # the GHN outputs' zeros, and slicing / writing back each distinct block shape
    assert {k[0] for k in c.buckets} == {"zeros", "take", "put"} and len(c.buckets) > 5
    c = pickle.loads(pickle.dumps(c))                   # what a census process sends back

    # The census compiled into store A, the ordinary precompile into store B: same entries.
    kernel_store.set_directory(str(tmp_path / "a"))
    try:
        counts = c.compile(step, params)
        _forget()
        kernel_store.set_directory(str(tmp_path / "b"))
        before = kernel_store.stats()
        _precompile(setup)
        direct = kernel_store.stats()["compiled"] - before["compiled"]
        assert counts["compiled"] == direct > 0
        assert _files(tmp_path / "a") == _files(tmp_path / "b")

        # A fresh process on store A loads every program: nothing left to compile.
        _forget()
        kernel_store.set_directory(str(tmp_path / "a"))
        before = kernel_store.stats()
        _precompile(setup)
        after = kernel_store.stats()
        assert after["compiled"] == before["compiled"]
        assert after["loaded"] - before["loaded"] == direct
    finally:
        kernel_store.reset_directory()
        _forget()


def test_shares_are_disjoint_and_cover_the_census(setup):
    c = census.Census()
    _precompile(setup, c)
    other = census.Census()
    _precompile(setup, other)
    n = len(c)
    assert len(c.merge(other)) == n                     # the same programs merge to one each
    shares = c.shares(3)
    assert sum(len(s) for s in shares) == n
    assert max(len(s) for s in shares) - min(len(s) for s in shares) <= 1
    keys = [k for s in shares for k in list(s.kernels) + list(s.ghn) + list(s.buckets)]
    assert len(set(keys)) == n
    assert len(shares[0].ghn) == 1                      # the costly GHN bucket is dealt first


def test_census_outputs_equal_compiled_outputs(setup):
    """Shape inference gives every kernel the output the compiled program has."""
    c = census.Census()
    _precompile(setup, c)
    for key, p, xs, out in list(c.kernels.values())[:40]:
        e = executor._kernel(key, p, xs)
        assert (e.out.shape, e.out.dtype) == (out.shape, out.dtype), key


def test_chunks():
    assert census.chunks(0, 10, 3) == [(0, 4), (4, 8), (8, 10)]
    assert census.chunks(5, 7, 8) == [(5, 6), (6, 7)]
    assert np.sum([b - a for a, b in census.chunks(3, 1000, 7)]) == 997


def test_a_step_on_a_census_filled_store_compiles_nothing(setup, tmp_path):
    """Every program of a meta-step that depends on the networks or on the GHN padding
    bucket (GHN programs, executor kernels, the block slicing and cotangent writes around
    the GHN outputs) comes from the census; a step in a fresh process only loads them."""
    from ghn_jax.deepnets import CompileCounter
    nets, step, abstract_params, x, y = setup
    params = jax.tree_util.tree_map(lambda a: jnp.full(a.shape, 0.01, a.dtype), abstract_params)
    images, labels = jnp.ones(x.shape, x.dtype), jnp.arange(y.shape[0], dtype=y.dtype)
    key = jax.random.PRNGKey(1)
    prepared = step.prepare([n.graph for n in nets])
    _forget()
    try:
        # The loss's programs (one per image batch shape, not per bucket) compile here, with
        # a same-shaped step of other networks on another store.
        kernel_store.set_directory(str(tmp_path / "other"))
        other = [MetaNet(net_plan(s, False), arch_graph(s, False))
                 for s in (sample("train", i).with_(C=8, n_cells=1, num_classes=10, fc_dim=20) for i in (7, 8))]
        jax.block_until_ready(step(params, other, images, labels, dropout_key=key)["grads"])
        _forget()

        kernel_store.set_directory(str(tmp_path / "store"))
        c = census.Census()
        _precompile(setup, c)
        c.compile(step, abstract_params)
        _forget()
        with CompileCounter() as counter:
            out = step(params, nets, images, labels, dropout_key=key, prepared=prepared)
            jax.block_until_ready(out["grads"])
        assert counter.count == 0, counter.count
        assert np.isfinite(out["loss"])
    finally:
        kernel_store.reset_directory()
        _forget()
