"""One GHN-3-T training step against the PyTorch reference (../shared/train_step_ref, the
ImageNet-variant `train_step_*` files): per-network CE, regulariser, loss, every GHN
gradient, and the parameters after clipping + AdamW at lr 1e-5.

The reference trains on graphs read from the DeepNets-1M HDF5 (ppuda's builder plus the
loader's fixes, §1.10); ours are traced. The two are not isomorphic (docs/training.md), so
this test feeds the reference's own graphs: it checks the step, not the graph builder.
Needs ../shared (the 27 MB GHN); skipped without it. tests/deepnets/test_meta.py checks the
same step against an independent jax.grad in the default suite.
"""
import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from ghn_jax.deepnets import NetSpec, arch_graph, net_plan
from ghn_jax.deepnets.genotypes import from_dict
from ghn_jax.deepnets.meta import MetaNet, MetaStep
from ghn_jax.ghn.checkpoint import flax_to_torch_state_dict, ghn_module, load_torch_checkpoint
from ghn_jax.train import optim

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared")
REF = os.path.join(SHARED, "train_step_ref")
GHN_FILE = os.path.join(SHARED, "ghn3_ref", "ghn3_tiny_seed0.joblib")
pytestmark = pytest.mark.skipif(not (os.path.exists(os.path.join(REF, "train_step_result.json"))
                                     and os.path.exists(GHN_FILE)), reason="../shared/train_step_ref absent")


def loader_graph(ours, types, spd, info_shapes, info):
    """Our traced ArchGraph re-expressed on the reference loader's nodes and edges.

    Parameter nodes are matched by torch name; like the reference (`_map_net_params`), a
    matched node's shape is its parameter's, an unmatched one keeps the loader's `sz`.
    """
    by_torch = {t: i for i, t in enumerate(ours.torch_names) if t}
    names = {int(e[0]): e[1] for cell in info for e in cell}
    idx = [by_torch.get(names.get(i, "")) for i in range(len(types))]
    assert sorted(j for j in idx if j is not None) == sorted(by_torch.values())
    pick = lambda values, empty: [values[j] if j is not None else empty for j in idx]
    return dataclasses.replace(
        ours, node_types=np.asarray(types, np.int32), spd=np.asarray(spd, np.uint8),
        shapes=np.asarray([ours.shapes[j] if j is not None else info_shapes[i] for i, j in enumerate(idx)], np.int32),
        param_names=pick(ours.param_names, ""), torch_names=pick(ours.torch_names, ""),
        extra_params=pick(ours.extra_params, ()), target_shapes=pick(ours.target_shapes, ()),
        modules=pick(ours.modules, "op"))


@pytest.fixture(scope="module")
def step_result():
    cfg, params = load_torch_checkpoint(GHN_FILE, trust_pickle=True)
    with open(os.path.join(REF, "train_step_archs.json")) as f:
        archs = json.load(f)["archs"]
    z = np.load(os.path.join(REF, "train_step_arrays.npz"))
    nets = []
    for b, a in enumerate(archs):
        args = dict(a["net_args"])
        assert args.pop("is_imagenet_input") is True
        spec = NetSpec(genotype=from_dict(a["genotype"]), **args)
        traced = arch_graph(spec, True)
        info = json.loads(str(z[f"net{b}/graph/node_info_json"]))
        g = loader_graph(traced, z[f"net{b}/graph/node_feat"], z[f"net{b}/graph/edges"],
                         z[f"net{b}/graph/node_param_shape"], info)
        nets.append(MetaNet(net_plan(spec, True), g))
    batch = np.load(os.path.join(REF, "train_step_batch.npz"))
    x = batch["images"].transpose(0, 2, 3, 1)
    y = batch["labels"].astype(np.int32)
    out = MetaStep(ghn_module(cfg), label_smoothing=0.1, lam=3e-5)(params, nets, x, y)
    with open(os.path.join(REF, "train_step_result.json")) as f:
        ref = json.load(f)
    return params, out, ref, z


def test_losses(step_result):
    _, out, ref, _ = step_result
    np.testing.assert_allclose(out["ce"], ref["cross_entropy_per_arch"], rtol=1e-6)
    np.testing.assert_allclose(out["reg"], ref["regulariser"], rtol=1e-5)
    np.testing.assert_allclose(out["loss"], ref["loss_total"], rtol=1e-6)


def test_every_gradient(step_result):
    _, out, ref, z = step_result
    g = flax_to_torch_state_dict(jax.device_get(out["grads"]), "released")
    total = np.sqrt(sum(float(np.sum(np.square(v, dtype=np.float64))) for v in g.values()))
    np.testing.assert_allclose(total, ref["grad_norm_pre_clip_float64"], rtol=1e-5)
    for t in ref["per_tensor"]:
        ours = np.asarray(g[t["name_in_joblib"]], np.float64)
        if t["grad_l2_pre_clip"] < 1e-8:     # proj_e.2.bias: analytically zero, the stored value is noise
            assert np.linalg.norm(ours) < 1e-6
            continue
        np.testing.assert_allclose(np.linalg.norm(ours), t["grad_l2_pre_clip"], rtol=1e-4, err_msg=t["name"])
        full = f"grad/{t['name']}"
        if full in z.files:
            r = z[full]
            assert np.linalg.norm(ours - r) / np.linalg.norm(r) <= 1e-4, t["name"]
        else:                                # the two largest: first rows and every row's norm
            rows = next(k for k in z.files if k.startswith(full + "/rows0_"))
            n = int(rows.rsplit("_", 1)[1])
            r = z[rows]
            assert np.linalg.norm(ours[:n] - r) / np.linalg.norm(r) <= 1e-4, t["name"]
            np.testing.assert_allclose(np.linalg.norm(ours, axis=1), z[full + "/row_l2"], rtol=1e-3, atol=1e-9)


def test_adamw_update(step_result):
    """Clip (coefficient 1 here) and AdamW's first step at the epoch-0 learning rate 1e-5."""
    params, out, ref, _ = step_result
    cfg = optim.default_config()
    tx = optim.make(cfg)
    lr = optim.schedule(cfg, steps_per_epoch=100)(0)
    np.testing.assert_allclose(float(lr), ref["lr_at_step0"], rtol=1e-6)
    state = optim.set_lr(tx.init(params), lr)
    updates, _ = tx.update(out["grads"], state, params)
    new = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
    after = flax_to_torch_state_dict(jax.device_get(new), "released")
    z = step_result[3]
    for t in ref["per_tensor"]:
        ours = after[t["name_in_joblib"]]
        key = f"after/{t['name']}"
        if key in z.files:
            r = z[key]
        else:                                # the two largest: their first rows
            rows = next(k for k in z.files if k.startswith(key + "/rows0_"))
            r = z[rows]
            ours = ours[: r.shape[0]]
        # elements move by ~lr = 1e-5; allowed: 2 float32 ulps of the parameter (torch decays
        # and steps in two roundings, optax in one). Where |g| is
        # near eps = 1e-8 the move g / (|g| + eps) is not determined by float32 gradients
        # (README of train_step_ref): there only the size of the move is checked.
        g_key = f"grad/{t['name']}"
        g = z[g_key] if g_key in z.files else z[next(k for k in z.files if k.startswith(g_key + "/rows0_"))]
        firm = np.abs(g) > 1e-6
        tol = 2 * np.spacing(np.abs(r[firm]).astype(np.float32)) + 1e-9
        assert np.all(np.abs(ours[firm] - r[firm]) <= tol), (t["name"], np.max(np.abs(ours[firm] - r[firm]) / tol))
        before = flax_to_torch_state_dict(jax.device_get(params), "released")[t["name_in_joblib"]][: r.shape[0]]
        assert np.all(np.abs(ours - before) <= 1.01e-5 * (1 + np.abs(before))), t["name"]
