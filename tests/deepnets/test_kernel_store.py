"""The on-disk kernel store: another process loads what one compiled, with the same numbers;
bad entries are rebuilt; keys separate everything that changes a program."""
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ghn_jax.deepnets import executor, kernel_store, meta

# One meta-step of a small 32-px conv network with a flatten head through a
# small GHN; prints kernel-store counts and the results.
_STEP = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from ghn_jax.deepnets import arch_graph, kernel_store, net_plan, sample
    from ghn_jax.deepnets.meta import MetaNet, MetaStep
    from ghn_jax.ghn.checkpoint import GHNConfig, ghn_module
    from ghn_jax.ghn.model import GHN3
    from ghn_jax.ghn.shape_encoder import shape_indices
    from ghn_jax.graph.batch import pad_graphs
    kernel_store.set_directory(sys.argv[1])
    conv = next(s for s in (sample("train", i) for i in range(100)) if not s.is_vit and not s.glob_avg)
    specs = [conv.with_(C=16, n_cells=min(conv.n_cells, 2), num_classes=10, fc_dim=32)]
    nets = [MetaNet(net_plan(s, False), arch_graph(s, False)) for s in specs]
    cfg = GHNConfig(hid=32, layers=2, heads=4, max_shape=(32, 32, 16, 16), num_classes=10)
    module = ghn_module(cfg)
    b = pad_graphs([nets[0].graph])
    params = module.init(jax.random.PRNGKey(0), b.node_types, shape_indices(b.node_types, b.shapes, 10),
                         b.spd.astype(np.int32), b.mask, method=GHN3.init_all)["params"]
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 32, 32, 3))
    out = MetaStep(module)(params, nets, x, jnp.array([1, 2, 3, 4]), dropout_key=jax.random.PRNGKey(2))
    grads = [np.asarray(g).tobytes().hex() for g in jax.tree_util.tree_leaves(out["grads"])]
    print(json.dumps({"stats": kernel_store.stats(), "loss": out["loss"], "ce": out["ce"], "grads": grads}))
""")


def _run_step(store):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    p = subprocess.run([sys.executable, "-c", _STEP, str(store)], capture_output=True, text=True, env=env,
                       timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_another_process_loads_every_program_and_gets_identical_results(tmp_path):
    store = tmp_path / "kernels"
    first = _run_step(store)
    assert first["stats"]["loaded"] == 0 and first["stats"]["compiled"] == first["stats"]["saved"] > 20
    second = _run_step(store)
    # every kernel, every cotangent sum and the GHN program pair came from the store
    assert second["stats"]["compiled"] == 0, second["stats"]
    assert second["stats"]["loaded"] == first["stats"]["saved"]
    assert (second["loss"], second["ce"], second["grads"]) == (first["loss"], first["ce"], first["grads"])

    # damaged entries (truncated files) are compiled again, rewritten, and change nothing
    files = [os.path.join(d, f) for d, _, fs in os.walk(store) for f in fs]
    for f in files[::2]:
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)
    third = _run_step(store)
    assert third["stats"]["rebuilt"] == len(files[::2]) == third["stats"]["compiled"]
    assert (third["loss"], third["ce"], third["grads"]) == (first["loss"], first["ce"], first["grads"])
    for f in files[::2]:                  # rewritten whole
        assert os.path.getsize(f) > 0 and kernel_store._load(f) is not None


@pytest.fixture
def store(tmp_path):
    kernel_store.set_directory(str(tmp_path / "kernels"))
    yield tmp_path / "kernels"
    kernel_store.reset_directory()


def _files(folder):
    return sorted(f for _, _, fs in os.walk(folder) for f in fs) if os.path.isdir(folder) else []


def test_backward_key_includes_the_forward_arguments(store):
    """A global mean's VJP has no residuals: its backward receives the same (residuals,
    cotangent) for any spatial size, but must broadcast to the size it averaged over."""
    mean = lambda x: jnp.mean(x, axis=(1, 2))
    small = jax.ShapeDtypeStruct((2, 4, 4, 3), jnp.float32)
    large = jax.ShapeDtypeStruct((2, 8, 8, 3), jnp.float32)
    kernel_store.vjp_programs(("mean",), mean, (small,))
    fwd, bwd, out, res = kernel_store.vjp_programs(("mean",), mean, (large,))
    assert _files(store) and len(_files(store)) == 4
    x = jnp.ones((2, 8, 8, 3))
    y, r = fwd(x)
    (g,) = bwd(r, jnp.ones_like(y))
    assert g.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(np.asarray(g), 1 / 64)
    # loaded back from disk, not compiled
    before = kernel_store.stats()
    fwd, bwd, _, _ = kernel_store.vjp_programs(("mean",), mean, (large,))
    after = kernel_store.stats()
    assert after["loaded"] - before["loaded"] == 2 and after["compiled"] == before["compiled"]
    assert bwd(fwd(x)[1], jnp.ones((2, 3)))[0].shape == (2, 8, 8, 3)


def test_keys_separate_options_precision_and_unstable_parts():
    a = kernel_store.store_key(("k", 1), None)
    assert a == kernel_store.store_key(("k", 1), None)
    assert a != kernel_store.store_key(("k", 2), None)
    assert a != kernel_store.store_key(("k", 1), {"xla_backend_optimization_level": 1})
    with jax.enable_x64(True):
        assert a != kernel_store.store_key(("k", 1), None)
    assert kernel_store.store_key(("k", object()), None) is None      # a memory address: never stored


_MESH = textwrap.dedent("""
    import json, os, sys
    import jax, jax.numpy as jnp, numpy as np
    from ghn_jax.deepnets import kernel_store
    kernel_store.set_directory(sys.argv[1])
    f = jax.jit(lambda x: x * 2)
    count = lambda: sum(len(fs) for _, _, fs in os.walk(sys.argv[1]))
    mesh = lambda n: jax.sharding.Mesh(np.array(jax.devices()[:n]), ("data",))
    on = lambda n: jax.ShapeDtypeStruct((4, 3), jnp.float32, sharding=jax.sharding.NamedSharding(
        mesh(n), jax.sharding.PartitionSpec("data")))
    out = {}
    kernel_store.compile_stored(("k",), f, on(2))
    out["two_devices"] = count()
    c, _ = kernel_store.compile_stored(("k",), f, on(1))
    out["one_device"] = count()
    x = jax.device_put(np.ones((4, 3), np.float32), on(1).sharding)
    out["runs_mesh_array"] = np.asarray(c(x)).tolist()
    kernel_store.compile_stored(("k",), f, jax.ShapeDtypeStruct((4, 3), jnp.float32))
    out["stats"] = kernel_store.stats()
    print(json.dumps(out))
""")


def test_sharded_programs_are_not_stored_and_one_device_meshes_are(tmp_path):
    """A program sharded over devices depends on the mesh: not stored. A one-device mesh (the
    trainer on one device) is the unsharded program: stored, under the unsharded key."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    p = subprocess.run([sys.executable, "-c", _MESH, str(tmp_path / "k")], capture_output=True, text=True,
                       env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert (out["two_devices"], out["one_device"]) == (0, 1)
    assert out["runs_mesh_array"] == [[2.0] * 3] * 4
    assert out["stats"]["loaded"] == 1 and out["stats"]["saved"] == 1


_PCACHE = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp
    jax.config.update("jax_compilation_cache_dir", sys.argv[1])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from ghn_jax.deepnets import kernel_store
    kernel_store.set_directory(sys.argv[2] if sys.argv[2] != "-" else None)
    jax.jit(lambda x: x + 1)(1.0)         # jax decides whether its cache is in use at the first compile
    f = jax.jit(lambda x: jnp.concatenate([jnp.maximum(x, 0.0), jnp.tanh(x) * 2.0], -1).sum(0))
    c, _ = kernel_store.compile_stored(("t",), f, jax.ShapeDtypeStruct((4, 8), jnp.float32))
    print(float(c(jnp.arange(32.0).reshape(4, 8)).sum()))
""")


def test_programs_stored_beside_jax_persistent_cache_run(tmp_path):
    """Regression: with jax's persistent compilation cache on, a program that jax took from
    it serialised without its object code, and loaded from the store it failed at its first
    call ("Function ... not found"). Process 1 fills jax's cache, 2 stores, 3 loads."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    outs = []
    for store in ("-", str(tmp_path / "k"), str(tmp_path / "k")):
        p = subprocess.run([sys.executable, "-c", _PCACHE, str(tmp_path / "jax_cache"), store], capture_output=True,
                           text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]
        outs.append(p.stdout.strip().splitlines()[-1])
    assert len(set(outs)) == 1


def test_an_unwritable_store_only_costs_the_saving(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    kernel_store.set_directory(str(blocker / "kernels"))
    try:
        before = kernel_store.stats()
        f, out = kernel_store.compile_stored(("w",), jax.jit(lambda x: x + 1), jax.ShapeDtypeStruct((3,), jnp.float32))
        assert kernel_store.stats()["saved"] == before["saved"]
        np.testing.assert_array_equal(np.asarray(f(jnp.zeros(3))), 1.0)
    finally:
        kernel_store.reset_directory()


def test_store_location_and_switch(monkeypatch, tmp_path):
    monkeypatch.setenv("GHN_JAX_KERNEL_CACHE", "0")
    assert kernel_store.directory() is None
    monkeypatch.setenv("GHN_JAX_KERNEL_CACHE", str(tmp_path))
    assert kernel_store.directory() == str(tmp_path)
    monkeypatch.delenv("GHN_JAX_KERNEL_CACHE")
    monkeypatch.setenv("GHN_JAX_CACHE", str(tmp_path / "c"))
    assert kernel_store.directory() == os.path.join(str(tmp_path / "c"), "kernels")
    kernel_store.set_directory(None)
    try:
        assert kernel_store.directory() is None
    finally:
        kernel_store.reset_directory()


def test_executor_kernels_come_back_from_the_store(store):
    """In one process: after the in-memory programs are dropped (as eviction does), a pass
    loads every kernel instead of compiling it, and its logits are the same bits."""
    from ghn_jax.deepnets import Network, net_plan, sample
    spec = sample("train", 3).with_(C=8, n_cells=2, num_classes=10, fc_dim=16)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 3))
    params = Network(spec, imagenet=False).init(jax.random.PRNGKey(1), x)["params"]
    plan = net_plan(spec, False)
    ex = executor.Executor()
    executor._COMPILED.clear()            # kernels an earlier test compiled outside this store
    executor._ACC.clear()
    z1, tape = ex.forward(plan, params, x)
    g1, _ = ex.backward(tape, jnp.ones_like(z1))
    executor._COMPILED.clear()
    executor._ACC.clear()
    meta._PRECOMPILED.clear()
    before = kernel_store.stats()
    z2, tape = ex.forward(plan, params, x)
    g2, _ = ex.backward(tape, jnp.ones_like(z2))
    after = kernel_store.stats()
    assert after["compiled"] == before["compiled"] and after["loaded"] > before["loaded"]
    np.testing.assert_array_equal(np.asarray(z1), np.asarray(z2))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), g1, g2)
