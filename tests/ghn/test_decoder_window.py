"""The conv decoder evaluates its first layer on a window of the S x S map only
(ConvDecoder.window_map, assign.pixel_box): the same values as the whole map, sliced."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ghn_jax.ghn import assign
from ghn_jax.ghn.checkpoint import ghn_module
from tests.ghn.small_ghn import SMALL, small_params


@pytest.mark.parametrize("centre", [True, False])
def test_pixel_box_holds_every_window(centre):
    s = 16
    for kh in range(1, 21):
        for kw in range(1, 21):
            t = assign.NodeTask(0, "conv", (4, 4, kh, kw), (assign.window(kh, s, centre), assign.window(kw, s, centre)))
            others = [assign.NodeTask(1, "conv", (4, 4, 1, 1), (assign.window(1, s, centre),) * 2),
                      assign.NodeTask(2, "1d", (4,))]
            (r0, r1), (c0, c1) = box = assign.pixel_box([t] + others, s, centre)
            assert r1 - r0 == c1 - c0 == min(s, max(kh, kw))          # square, no larger than needed
            for (a0, a1), (b0, b1) in (t.window, others[0].window):
                assert r0 <= a0 and a1 <= r1 and c0 <= b0 and b1 <= c1, (kh, kw, box)


def test_window_map_equals_the_whole_map_sliced():
    module, params = ghn_module(SMALL), small_params(1)
    z = jax.random.normal(jax.random.PRNGKey(2), (5, SMALL.hid))
    s = SMALL.max_shape[2]
    full = module.apply({"params": params}, z, (0, s), (0, s), method=lambda m, *a: m.decoder.window_map(*a))
    for rows, cols in [((5, 12), (5, 12)), ((8, 9), (8, 9)), ((0, 3), (0, 7))]:
        part = module.apply({"params": params}, z, rows, cols, method=lambda m, *a: m.decoder.window_map(*a))
        np.testing.assert_allclose(part, full[:, rows[0]:rows[1], cols[0]:cols[1]], rtol=1e-6, atol=1e-6)


def test_pixel_hidden_with_a_box_equals_without():
    module, params = ghn_module(SMALL), small_params(3)
    z = jax.random.normal(jax.random.PRNGKey(4), (3, SMALL.hid))
    s = SMALL.max_shape[2]
    box = (assign.window(5, s), assign.window(5, s))
    rng = np.random.default_rng(0)
    slot = jnp.asarray(rng.integers(0, 3, 20), jnp.int32)
    r = jnp.asarray(rng.integers(*box[0], 20), jnp.int32)
    c = jnp.asarray(rng.integers(*box[1], 20), jnp.int32)
    hidden = lambda m, *a: m.decoder.pixel_hidden(*a)
    np.testing.assert_allclose(module.apply({"params": params}, z, slot, r, c, box, method=hidden),
                               module.apply({"params": params}, z, slot, r, c, None, method=hidden),
                               rtol=1e-6, atol=1e-6)
