"""GHN-3 / GHN-2 parity with the reference PyTorch code (seeded random GHNs).

Fast: tests/data/ghn{3,2}_*_compact.npz (see make_compact_fixtures.py) check the node
embeddings of every fixture graph and a few predicted tensors per arch. Slow: every
predicted tensor of every fixture, with the full GHNs from ../shared (skipped where absent).
"""
import json
import os

import jax
import numpy as np
import pytest

from ghn_jax.export.torch_params import torch_name
from ghn_jax.ghn.checkpoint import torch_state_dict_to_flax
from ghn_jax.ghn.predictor import GHN
from ghn_jax.graph import build_graph

HERE = os.path.dirname(__file__)
DATA = os.path.join(HERE, "..", "data")
SHARED = os.path.join(HERE, "..", "..", "..", "shared")
ARCHS = ["resnet18", "resnet50", "vit_b_16", "mobilenet_v2", "convnext_tiny", "densenet121",
         "efficientnet_b0", "swin_t", "regnet_y_400mf"]
GHN2_ARCHS = ["resnet18", "mobilenet_v2", "vit_b_16"]
CASES = [("ghn3", a) for a in ARCHS] + [("ghn2", a) for a in GHN2_ARCHS]
COMPACT = {"ghn3": "ghn3_tiny_compact.npz", "ghn2": "ghn2_compact.npz"}
FULL = {"ghn3": ("ghn3_ref", "ghn3_tiny_seed0.joblib"), "ghn2": ("ghn2_ref", "ghn2_seed0.joblib")}
RTOL = 1e-4


def rel_l2(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-12))


_CACHE = {}


def compact(kind):
    if kind in _CACHE:
        return _CACHE[kind]
    z = np.load(os.path.join(DATA, COMPACT[kind]))
    sd = {}
    for k in z.files:
        if not k.startswith("ghn/"):
            continue
        name = k[4:]
        if name.endswith("@rows"):
            name = name[:-5]
            base = name.rsplit(".", 1)[0]
            rows = z[f"rows/{base}"]
            shape = tuple(z[f"shapes/{base}.weight"])
            full = np.zeros(shape if name.endswith("weight") else shape[:1], np.float32)
            full[rows] = z[k]
            sd[name] = full
        else:
            sd[name] = z[k]
    config, params = torch_state_dict_to_flax(sd)
    _CACHE[kind] = z, GHN(config, params)
    return _CACHE[kind]


def _torch_names(graph):
    return {torch_name(p.split("/")[0], tuple(p.split("/")[1:])): p
            for p in graph.param_names + [e for ex in graph.extra_params for e in ex] if p}


def _assert_embeddings(graph, x, ref_x, ref_graph):
    """Named nodes compared one to one; op nodes of each primitive as sorted sets."""
    ref_names = [str(n) for n in ref_graph[f"{graph.name}/node_names"]]
    ref_types = ref_graph[f"{graph.name}/node_feat"]
    ours = {n: i for i, n in enumerate(graph.torch_names) if n}
    scale = np.abs(ref_x).max()
    for j, n in enumerate(ref_names):
        if n in ours:
            np.testing.assert_allclose(x[ours[n]], ref_x[j], atol=1e-5 * scale, rtol=0, err_msg=n)
    for t in set(ref_types.tolist()):
        mine = x[[i for i in range(graph.n_nodes) if not graph.torch_names[i] and graph.node_types[i] == t]]
        theirs = ref_x[[j for j in range(len(ref_names)) if ref_names[j] not in ours and ref_types[j] == t]]
        key = lambda a: a[np.lexsort(np.round(a, 4).T[::-1])]
        np.testing.assert_allclose(key(mine), key(theirs), atol=1e-5 * scale, rtol=0)


@pytest.fixture(scope="module")
def ref_graphs():
    return np.load(os.path.join(HERE, "..", "data", "ghn3_ref_graphs.npz"))


@pytest.mark.parametrize("kind,arch", CASES)
def test_parity_compact(kind, arch, ref_graphs):
    z, ghn = compact(kind)
    graph = build_graph(arch)
    x, *_ = ghn.run(graph, [])
    _assert_embeddings(graph, x, z[f"{arch}/x_ln"], ref_graphs)
    pred = ghn.decode(graph, jax.random.PRNGKey(0))
    names = _torch_names(graph)
    checked = [k for k in z.files if k.startswith((f"{arch}/param/", f"{arch}/first256/"))]
    assert checked
    for k in checked:
        n = k.split("/", 2)[2]
        ours = np.asarray(pred[names[n]])
        if "/param/" in k:
            assert rel_l2(ours, z[k]) <= RTOL, n
        else:
            assert rel_l2(ours.ravel()[:256], z[k]) <= RTOL, n
            l2 = float(z[f"{arch}/l2/{n}"])
            assert abs(np.linalg.norm(ours.astype(np.float64)) - l2) <= RTOL * l2, n


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared not present")
@pytest.mark.parametrize("kind,arch", CASES)
def test_parity_full_fixtures(kind, arch):
    folder, ghn_file = FULL[kind]
    ghn = GHN.from_pretrained(os.path.join(SHARED, folder, ghn_file), trust_pickle=True)
    z = np.load(os.path.join(SHARED, folder, f"{arch}.npz"))
    graph = build_graph(arch)
    pred = ghn.decode(graph, jax.random.PRNGKey(0))
    names = _torch_names(graph)
    ref_pred = [str(n) for n in z["meta/predicted_names"]]
    assert sorted(names) == sorted(ref_pred)
    not_pred = sorted(torch_name(p.split("/")[0], tuple(p.split("/")[1:])) for p in graph.not_predicted)
    assert not_pred == sorted(str(n) for n in z["meta/not_predicted_names"])
    total = 0.0
    for n in ref_pred:
        ours = np.asarray(pred[names[n]])
        assert tuple(ours.shape) == tuple(z[f"param_shape/{n}"]), n
        total += float(np.sum(np.square(ours, dtype=np.float64)))
        if f"param/{n}" in z.files:
            ref = z[f"param/{n}"]
            if n.endswith("pos_embedding"):        # row 0 is drawn at random by the reference
                ours, ref = ours[:, 1:], ref[:, 1:]
            assert rel_l2(ours, ref) <= RTOL, n
        else:
            l2 = float(z[f"param_l2/{n}"])
            assert abs(np.linalg.norm(ours.astype(np.float64)) - l2) <= RTOL * l2, n
            f256 = z[f"param_first256/{n}"]
            assert rel_l2(ours.ravel()[: f256.size], f256) <= RTOL, n
    summary = json.load(open(os.path.join(SHARED, folder, "summary.json")))
    summary = summary.get("models", summary)[arch]
    if not any(n.endswith("pos_embedding") for n in ref_pred):
        assert abs(np.sqrt(total) - summary["total_l2_norm_predicted"]) <= 1e-5 * summary["total_l2_norm_predicted"]
