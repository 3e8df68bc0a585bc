"""DeepNets-1M sampler: exact parameter counts, determinism, rules, and statistics vs. the reference nets.

The reference fixture `tests/data/deepnets_first300.json` holds the first 300 nets that ppuda's
net_generator.py accepted for the train split (genotype, net args, num_params at C=32 / 10 classes).
Our sequence differs from the reference one by design, so statistics are compared with two-sample
tolerances (4 standard errors) rather than net by net.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from ghn_jax.deepnets.genotypes import OPS_EXT, Genotype, from_dict, parse_op, sample_genotype
from ghn_jax.deepnets.param_count import count_params
from ghn_jax.deepnets.sampler import FC_DIMS, NUM_CH, SPLITS, NetSpec, sample, sample_batch, sample_with_info
from ghn_jax.errors import GhnError

HERE = os.path.dirname(__file__)
N_OURS = 2000


@pytest.fixture(scope="module")
def ref():
    with open(os.path.join(HERE, "..", "data", "deepnets_first300.json")) as f:
        nets = json.load(f)["nets"]
    assert len(nets) == 300
    return nets


@pytest.fixture(scope="module")
def ours():
    return [sample_with_info("train", i, train_hparams=False) for i in range(N_OURS)]


def _ops(g):
    g = g if isinstance(g, Genotype) else from_dict(g)
    return [op for op, _ in g.normal + g.reduce]


def _get(n, k):
    return n[k] if isinstance(n, dict) else getattr(n, k)


# ------------------------------------------------------------------------------------------------ basics
def test_parse_op():
    assert parse_op("none") == ("none", 0)
    assert parse_op("skip_connect") == ("skip_connect", 0)
    assert parse_op("max_pool_3x3") == ("max_pool", 3)
    assert parse_op("sep_conv_5x5") == ("sep_conv", 5)
    assert parse_op("dil_conv_3x3") == ("dil_conv", 3)
    assert parse_op("conv_1x1") == ("conv", 1)
    assert parse_op("conv_7x1_1x7") == ("conv2", 7)
    assert parse_op("msa") == ("msa", 0) and parse_op("cse") == ("cse", 0)
    assert len(OPS_EXT) == 15 and OPS_EXT[0] == "none" and OPS_EXT[-2:] == ("msa", "cse")


def test_genotype_roundtrip(ref):
    for n in ref[:20]:
        g = from_dict(n["genotype"])
        assert g.to_dict() == n["genotype"]
        assert Genotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g


def test_sample_genotype_masks():
    rng = np.random.default_rng(0)
    for _ in range(200):
        steps = int(rng.integers(1, 5))
        g = sample_genotype(rng, steps=steps, only_pool=True, allow_none=False, drop_concat=True,
                            allow_transformer=False)
        assert len(g.normal) == len(g.reduce) == 2 * steps
        assert all(op in ("max_pool_3x3", "avg_pool_3x3", "skip_connect") for op, _ in g.reduce)
        assert "msa" not in _ops(g) and "none" not in _ops(g)
        assert g.normal_concat == g.reduce_concat and g.normal_concat[-1] == steps + 1
        for cell in (g.normal, g.reduce):
            for i in range(steps):  # two distinct inputs among the i + 2 available states
                a, b = cell[2 * i][1], cell[2 * i + 1][1]
                assert a != b and 0 <= a < i + 2 and 0 <= b < i + 2


# ------------------------------------------------------------------------------------- parameter count
def test_param_count_matches_reference(ref):
    for i, n in enumerate(ref):
        for name, imagenet in (("cifar10", False), ("imagenet", True)):
            assert count_params(n, imagenet, C=32, num_classes=10) == n["num_params"][name], (i, name)


def test_param_count_netspec_defaults(ref):
    spec = NetSpec.from_dict({**ref[0], "C": 32, "num_classes": 10})
    assert count_params(spec, imagenet=False) == ref[0]["num_params"]["cifar10"]
    assert count_params(spec, imagenet=True, C=64, num_classes=1000) > ref[0]["num_params"]["imagenet"]


# ----------------------------------------------------------------------------------------- determinism
def test_determinism_and_random_access():
    a = [sample("train", i) for i in (5, 0, 17)]
    assert sample("train", 17) == a[2] and sample("train", 0) == a[1]
    assert sample_batch("train", [5, 0, 17]) == a
    assert len({json.dumps(sample("train", i).to_dict(), sort_keys=True) for i in range(20)}) == 20
    assert sample("val", 3).genotype != sample("train", 3).genotype


def test_determinism_across_processes():
    code = ("import json; from ghn_jax.deepnets.sampler import sample; "
            "print(json.dumps([sample('train', i).to_dict() for i in (0, 123)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.join(HERE, "..", "..")).stdout
    assert json.loads(out) == [sample("train", i).to_dict() for i in (0, 123)]


def test_netspec_dict_roundtrip():
    s = sample("train", 7)
    d = json.loads(json.dumps(s.to_dict()))
    assert NetSpec.from_dict(d) == s
    assert s.with_(C=64).C == 64 and s.with_(C=64).genotype == s.genotype


# ------------------------------------------------------------------------------------ rules per sample
def _connected(g, n_cells):
    """Independent re-statement of ppuda's None propagation: which states carry data."""
    live = {0: True, 1: True}  # cell inputs (s0, s1)
    for c in range(n_cells):
        cell, concat = ((g.reduce, g.reduce_concat) if c in (n_cells // 3, 2 * n_cells // 3) and c > 0
                        else (g.normal, g.normal_concat))
        st = [live[0], live[1]]
        for k in range(0, len(cell), 2):
            st.append((cell[k][0] != "none" and st[cell[k][1]]) or (cell[k + 1][0] != "none" and st[cell[k + 1][1]]))
        live = {0: live[1], 1: any(st[j] for j in concat)}
    return live[1]


def test_rules_hold(ours):
    for spec, info in ours:
        g = spec.genotype
        ops = _ops(g)
        has_conv = any("conv" in op for op in ops)
        assert has_conv or "msa" in ops or "cse" in ops
        assert "cse" not in ops or has_conv
        for cell in (g.normal, g.reduce):
            names = [op for op, _ in cell]
            assert names.count("cse") <= 1
            assert sum(op in ("conv_5x5", "conv_7x7") for op in names) <= 1
        for imagenet, key in ((False, "cifar10"), (True, "imagenet")):
            n = count_params(spec, imagenet, C=32, num_classes=10)
            assert n == info["num_params"][key] and n <= 10 ** 7
        assert _connected(g, spec.n_cells)
        steps = len(g.normal) // 2
        assert 4 <= spec.n_cells <= 18 and 1 <= steps <= 4 and (spec.n_cells <= 10 or steps <= 2)
        assert steps > 1 or "none" not in ops
        assert spec.preproc or (steps == 1 and spec.C_mult == 1)
        assert spec.norm == "bnorm" or (spec.n_cells <= 5 and steps <= 2)
        assert spec.glob_avg or not spec.is_vit
        assert not spec.stem_pool or spec.stem_type == 0
        assert spec.fc_dim == 256 and spec.C == 32 and spec.imagenet_stride == 4


def test_train_hparams():
    for i in range(300):
        s, info = sample_with_info("train", i)
        base = sample("train", i, train_hparams=False)
        assert s.with_(C=32, fc_dim=256, imagenet_stride=4) == base  # only the §4.2 fields change
        P = info["num_params"]["cifar10"] / 1e6
        dense = any(op in ("conv_5x5", "conv_7x7") for op in _ops(s.genotype))
        assert s.fc_dim in FC_DIMS and s.C in NUM_CH and s.imagenet_stride in (2, 4)
        if P > 2.0 or not s.glob_avg or dense or s.n_cells > 14:
            assert s.C == 32
        elif P > 0.4 or s.n_cells > 10:
            assert s.C <= 80
        elif P > 0.2 or s.n_cells > 8:
            assert s.C <= 96
        if s.fc_dim > 256:
            assert s.C <= 64
        if s.imagenet_stride == 2:
            assert s.glob_avg and s.stem_type == 0 and s.stem_pool and P <= 0.2 and s.n_cells <= 8 and not dense


# ------------------------------------------------------------------------------------------ statistics
def _two_prop(k1, n1, k2, n2):
    p = (k1 + k2) / (n1 + n2)
    return abs(k1 / n1 - k2 / n2), 4 * math.sqrt(max(p * (1 - p), 1e-4) * (1 / n1 + 1 / n2))


def _two_mean(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    return abs(x.mean() - y.mean()), 4 * math.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y) + 1e-12)


SHARES = {
    "vit": lambda n: "msa" in _ops(_get(n, "genotype")),
    "cse": lambda n: "cse" in _ops(_get(n, "genotype")),
    "fc_layers_2": lambda n: _get(n, "fc_layers") == 2,
    "stem_type_1": lambda n: _get(n, "stem_type") == 1,
    "norm_none": lambda n: _get(n, "norm") is None,
    "glob_avg": lambda n: bool(_get(n, "glob_avg")),
    "preproc": lambda n: bool(_get(n, "preproc")),
    "C_mult_2": lambda n: _get(n, "C_mult") == 2,
    "stem_pool": lambda n: bool(_get(n, "stem_pool")),
    **{f"steps_{s}": (lambda s: lambda n: len(_get(n, "genotype")["normal"] if isinstance(n, dict)
                                              else n.genotype.normal) == 2 * s)(s) for s in (1, 2, 3, 4)},
    **{f"ks_{k}": (lambda k: lambda n: _get(n, "ks") == k)(k) for k in (3, 5, 7)},
}


# C_mult is left out: it is a fair coin that no reject rule reads (no net of the 363 reference draws hit the
# parameter cap), yet the reference has 121/300 = 0.403 C_mult=2, 3.4 sigma from 0.5 -- a fluctuation of the
# reference sample that would make this comparison fragile. test_pre_rejection_uniform_choices checks it.
@pytest.mark.parametrize("name", sorted(set(SHARES) - {"C_mult_2"}))
def test_share_matches_reference(name, ours, ref):
    f = SHARES[name]
    k1, k2 = sum(bool(f(s)) for s, _ in ours), sum(bool(f(n)) for n in ref)
    diff, tol = _two_prop(k1, len(ours), k2, len(ref))
    assert diff < tol, (name, k1 / len(ours), k2 / len(ref))


def test_reference_shares_as_documented(ref):
    # Guards the fixture: the figures quoted in /work/shared/deepnets_ref/README.md.
    count = lambda f: sum(bool(f(n)) for n in ref)
    assert [count(SHARES[f"steps_{s}"]) for s in (1, 2, 3, 4)] == [140, 116, 23, 21]
    assert (count(SHARES["vit"]), count(SHARES["fc_layers_2"]), count(SHARES["stem_type_1"])) == (98, 146, 148)
    assert (count(SHARES["norm_none"]), count(SHARES["glob_avg"])) == (10, 294)


def test_pre_rejection_uniform_choices(ours):
    # ks, stem_type, fc_layers and C_mult enter no reject rule except the (rarely binding) 1e7 parameter cap,
    # so their accepted distributions must be the drawn uniform ones.
    n = len(ours)
    for name, p in (("ks_3", 1 / 3), ("ks_5", 1 / 3), ("stem_type_1", 0.5), ("fc_layers_2", 0.5), ("C_mult_2", 0.5)):
        k = sum(bool(SHARES[name](s)) for s, _ in ours)
        assert abs(k / n - p) < 4 * math.sqrt(p * (1 - p) / n), (name, k / n)
    # stem_pool is a fair coin given stem_type 0.
    s0 = [s for s, _ in ours if s.stem_type == 0]
    p = sum(s.stem_pool for s in s0) / len(s0)
    assert abs(p - 0.5) < 4 * math.sqrt(0.25 / len(s0))


def test_op_frequencies_and_n_cells(ours, ref):
    def counts(g):
        ops = _ops(g)
        return np.array([ops.count(o) for o in OPS_EXT])
    a = np.stack([counts(s.genotype) for s, _ in ours])  # per-net op counts: nets are the i.i.d. unit
    b = np.stack([counts(n["genotype"]) for n in ref])
    for j, op in enumerate(OPS_EXT):
        diff, tol = _two_mean(a[:, j], b[:, j])
        assert diff < tol, (op, a[:, j].mean(), b[:, j].mean())
    diff, tol = _two_mean([s.n_cells for s, _ in ours], [n["n_cells"] for n in ref])
    assert diff < tol


def test_param_range(ours, ref):
    ours_p = np.array([i["num_params"]["cifar10"] for _, i in ours])
    ref_p = np.array([n["num_params"]["cifar10"] for n in ref])
    assert ours_p.max() <= 10 ** 7
    assert 5_000 < ours_p.min() < 100_000  # reference minimum: 21,930
    assert 0.25 < np.percentile(ours_p, 5) / np.percentile(ref_p, 5) < 4
    assert 0.5 < np.median(ours_p) / np.median(ref_p) < 2


def test_rejection_rate(ours):
    # Reference: 63 rejections in 363 iterations (17.4%).
    att = sum(i["attempts"] for _, i in ours)
    rate = 1 - len(ours) / att
    assert abs(rate - 63 / 363) < 4 * math.sqrt(0.174 * 0.826 * (1 / att + 1 / 363))


# -------------------------------------------------------------------------------------------- splits
def test_splits():
    assert set(SPLITS) == {"train", "val", "test", "wide", "deep", "dense", "bnfree", "predefined"}
    for i in range(5):
        d = sample("deep", i)
        assert 10 <= d.n_cells <= 36 and (d.n_cells <= 18 or len(d.genotype.normal) <= 4)
        assert count_params(d, False, C=32, num_classes=10) <= 10 ** 8
        dn = sample("dense", i)
        assert 2 <= len(dn.genotype.normal) // 2 <= 10
        assert sample("bnfree", i).norm is None
        w, t = sample("wide", i), sample("test", i)
        assert w.wide and not t.wide and w.with_(wide=False, split="test") == t
        assert w.eval_C(True) == 2 * w.C and w.eval_C(False) == 4 * w.C
        v = sample("val", i, train_hparams=True)
        assert v.C == 32 and v.fc_dim == 256  # §4.2 draws are for training nets only
    r50, vit = sample("predefined", 0), sample("predefined", 1)
    assert r50.arch == "resnet50" and r50.genotype is None
    assert vit.is_vit and vit.n_cells == 12 and vit.C == 128 and not vit.preproc and vit.C_mult == 1


@pytest.mark.parametrize("split,index", [("nope", 0), ("train", -1), ("predefined", 2), ("train", 1.5),
                                         ("train", "3")])
def test_bad_input(split, index):
    with pytest.raises(GhnError, match="split|index|predefined"):
        sample(split, index)
