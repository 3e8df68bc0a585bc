"""GHN -> predicted params -> executor -> loss -> GHN gradients, against independent paths:
the inference predictor (values) and one jax.grad through GHN + Flax Network (gradients)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ghn_jax import tree_paths
from ghn_jax.deepnets import Network, arch_graph, net_plan, sample
from ghn_jax.deepnets.meta import MetaNet, MetaStep, _assign_fn, _ghn_program
from ghn_jax.ghn.checkpoint import GHNConfig, ghn_module
from ghn_jax.ghn.model import GHN3
from ghn_jax.ghn.predictor import GHN
from ghn_jax.ghn.shape_encoder import shape_indices
from ghn_jax.graph.batch import bucket_size, pad_graphs

CFG = GHNConfig(hid=32, layers=2, heads=4, max_shape=(32, 32, 16, 16), num_classes=10)


def _specs():
    # a ViT-like net with msa and a conv net with a flatten head, kept small
    vit = next(s for s in (sample("train", i) for i in range(100)) if s.is_vit)
    conv = next(s for s in (sample("train", i) for i in range(100)) if not s.is_vit and not s.glob_avg)
    return [s.with_(C=16, n_cells=min(s.n_cells, 5), num_classes=10, fc_dim=32) for s in (vit, conv)]


@pytest.fixture(scope="module")
def setup():
    specs = _specs()
    nets = [MetaNet(net_plan(s, False), arch_graph(s, False)) for s in specs]
    b = pad_graphs([nets[0].graph])
    module = ghn_module(CFG)
    params = module.init(jax.random.PRNGKey(0), b.node_types, shape_indices(b.node_types, b.shapes, 10),
                         b.spd.astype(np.int32), b.mask, method=GHN3.init_all)["params"]
    return specs, nets, module, params


def _padded_shape(inputs):
    """(nodes, window pixels, conv nodes, 1-D nodes) of MetaStep inputs."""
    return inputs[0].shape[1], inputs[5].shape[0], inputs[4].shape[0], inputs[8].shape[0]


@pytest.mark.parametrize("larger", [False, True])
def test_predictions_equal_inference_predictor(setup, larger):
    """larger: the meta-batch is padded beyond its own sizes (MetaStep._padding)."""
    specs, nets, module, params = setup
    step = MetaStep(module)
    if larger:
        m, pix, conv, one_d = _padded_shape(MetaStep(module).prepare([n.graph for n in nets])[0])
        sizes = (bucket_size(m + 1), 2 * pix, 2 * conv, 2 * one_d)
        step._padding = lambda *counts: sizes
        assert _padded_shape(step.prepare([n.graph for n in nets])[0]) == sizes
    (raw, _), _ = step.predict(params, [n.graph for n in nets])
    ghn = GHN(CFG, params)
    for net, r in zip(nets, raw):
        ref = tree_paths.flatten(ghn.predict(net.graph)[0]["params"])
        ours = tree_paths.flatten(step.materialise(r))
        assert set(ours) == set(ref)
        for k in ref:
            err = np.linalg.norm(np.asarray(ours[k]) - ref[k]) / (np.linalg.norm(ref[k]) + 1e-12)
            assert err <= 1e-5, (k, err)


def test_loss_and_ghn_gradients_equal_one_monolithic_grad(setup):
    specs, nets, module, params = setup
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
        x = jax.random.normal(jax.random.PRNGKey(1), (3, 32, 32, 3), jnp.float64)
        y = jnp.array([1, 2, 3])
        step = MetaStep(module, label_smoothing=0.1, lam=3e-5)
        out = step(p64, nets, x, y)
        inputs, jobs, _ = step._inputs([n.graph for n in nets])

        def loss(p):
            pix, rows, cw, cb = _ghn_program(module, None, p, *inputs)       # the full decoder map
            srcs = {"pix": pix, "rows": rows, "cw": cw, "cb": cb}
            flat, reg = [{} for _ in nets], 0.0
            for j in jobs:
                block = srcs[j.src][j.start:j.start + j.n]
                leaves, norm = _assign_fn(j.a, block if j.src == "pix" else block[0])
                reg = reg + norm
                flat[j.net].update(zip(j.paths, leaves))
            ce = 0.0
            for spec, f in zip(specs, flat):
                logits = Network(spec, False).apply({"params": tree_paths.unflatten(f)}, x)
                k = logits.shape[-1]
                target = jax.nn.one_hot(y, k) * 0.9 + 0.1 / k
                ce = ce - jnp.mean(jnp.sum(target * jax.nn.log_softmax(logits), -1))
            return (ce + 3e-5 * reg) / len(nets)

        # one program: op-by-op dispatch of this graph compiles thousands of tiny ones (3x slower)
        ref_loss, ref_grads = jax.jit(jax.value_and_grad(loss))(p64)
        assert abs(out["loss"] - float(ref_loss)) <= 1e-6 * abs(float(ref_loss))
        a, b = tree_paths.flatten(out["grads"]), tree_paths.flatten(ref_grads)
        total = np.sqrt(sum(float(jnp.sum(v ** 2)) for v in b.values()))
        diff = np.sqrt(sum(float(jnp.sum((a[k] - b[k]) ** 2)) for k in b))
        # the classifier runs in float32 (as the reference's), the rest in float64
        assert diff <= 1e-6 * total, diff / total


def test_precompile_leaves_nothing_to_compile(setup):
    """After MetaStep.precompile (shapes only), the step itself compiles nothing."""
    from ghn_jax.deepnets import CompileCounter
    _, _, module, params = setup
    specs = [s.with_(C=24) for s in _specs()]          # shapes no other test compiled
    nets = [MetaNet(net_plan(s, False), arch_graph(s, False)) for s in specs]
    step = MetaStep(module)
    x, y = jnp.ones((2, 32, 32, 3)), jnp.array([0, 1], jnp.int32)
    prepared = step.prepare([n.graph for n in nets])
    step.precompile(params, nets, prepared, jax.ShapeDtypeStruct(x.shape, x.dtype),
                    jax.ShapeDtypeStruct(y.shape, y.dtype), jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(3)
    counter = CompileCounter()
    with counter:
        out = step(params, nets, x, y, dropout_key=key, prepared=prepared)
        jax.block_until_ready(out["grads"])
    assert counter.count == 0, counter.count
    assert np.isfinite(out["loss"])


def test_bfloat16_ghn_follows_float32(setup):
    """bf16 GHN compute (float32 master weights): same loss to bf16 precision, gradients
    pointing the same way, and float32 gradients for float32 parameters."""
    specs, nets, module, params = setup
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 32, 32, 3), jnp.float32)
    y = jnp.array([1, 2, 3])
    f32 = MetaStep(module)(params, nets, x, y)
    b16 = MetaStep(module, ghn_dtype="bfloat16")(params, nets, x, y)
    assert abs(b16["loss"] - f32["loss"]) <= 2e-2 * abs(f32["loss"])
    g32 = np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(f32["grads"])])
    g16 = np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(b16["grads"])])
    assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(b16["grads"]))
    cos = float(g32 @ g16 / np.linalg.norm(g32) / np.linalg.norm(g16))
    assert cos > 0.99, cos
