"""Tiling and normalisation rules (design/ghn3-reference.md §2.8-2.9), checked element-wise."""
import math

import numpy as np

from ghn_jax.ghn import assign


def test_periodic_is_modulo_indexing():
    w = np.random.RandomState(0).randn(5, 3, 3, 3).astype(np.float32)
    t = (12, 7, 3, 3)
    out = assign.periodic(w, t)
    o, i = np.meshgrid(np.arange(12), np.arange(7), indexing="ij")
    np.testing.assert_array_equal(out, w[o % 5, i % 3])
    np.testing.assert_array_equal(assign.periodic(w, (2, 2, 3, 3)), w[:2, :2])     # slicing only


def test_tile_pos_tokens_row_major_after_class_row():
    pred = np.arange(2 * 3 * 3, dtype=np.float32).reshape(1, 2, 3, 3)             # (1, C', s, s)
    cls = np.full((1, 1, 2), -1.0, np.float32)
    out = assign.tile_pos(pred, (1, 10, 6), cls)
    assert out.shape == (1, 10, 6)
    np.testing.assert_array_equal(out[0, 0], [-1] * 6)
    np.testing.assert_array_equal(out[0, 1:, 0], pred[0, 0].ravel())                # grid row-major
    np.testing.assert_array_equal(out[0, :, 2:4], out[0, :, 0:2])                  # channels tiled


def test_normalise_rules():
    t4 = (8, 4, 3, 3)
    p = np.ones(t4, np.float32)
    np.testing.assert_allclose(assign.normalise(p, t4), math.sqrt(2 / 36))
    dw = (8, 1, 3, 3)
    np.testing.assert_allclose(assign.normalise(np.ones(dw, np.float32), dw), math.sqrt(1 / 9))
    wide = (8, 4, 1, 7)                                                             # kh < kw: beta 1
    np.testing.assert_allclose(assign.normalise(np.ones(wide, np.float32), wide), math.sqrt(1 / 28))
    pos = (1, 197, 768)
    q = np.random.RandomState(0).randn(*pos).astype(np.float32)
    np.testing.assert_array_equal(assign.normalise(q, pos), q)                     # untouched
    v = np.array([-1.0, 0.0, 2.0], np.float32)
    np.testing.assert_allclose(assign.normalise(v, (3,), norm_weight=True), 2 / (1 + np.exp(-0.5 * v)), rtol=1e-6)
    np.testing.assert_allclose(assign.normalise(v, (3,)), np.tanh(0.2 * v), rtol=1e-6)


def test_windows_and_keys():
    assert [assign.window(k, 16) for k in (1, 2, 3, 7, 16, 32)] == [(8, 9), (7, 9), (7, 10), (5, 12), (0, 16),
                                                                    (0, 16)]
    assert assign.window(3, 16, centre=False) == (0, 3)
    assert [assign.min_sz(n, 64) for n in (3, 16, 24, 48, 100)] == [4, 16, 64, 64, 64]


def test_bilinear_matches_torch():
    import torch
    x = np.random.RandomState(0).randn(2, 3, 16, 16).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=(32, 32), mode="bilinear",
                                          align_corners=False).numpy()
    np.testing.assert_allclose(assign.resize_bilinear(x, (32, 32)), ref, atol=1e-6)
