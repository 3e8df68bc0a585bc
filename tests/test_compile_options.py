"""The XLA options of ghn_jax.compile_options are accepted by the pinned jaxlib, and change
no values."""
import jax
import numpy as np
import pytest

from ghn_jax import compile_options


@pytest.mark.parametrize("options", [compile_options.OPTIMISED, compile_options.QUICK])
def test_options_compile_and_agree_with_xla_defaults(options):
    def f(x, w):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        m = y.mean((0, 1, 2))
        return jax.nn.relu((y - m) * jax.lax.rsqrt(y.var((0, 1, 2)) + 1e-5))
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 4))
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 4, 5))
    lowered = jax.jit(f).lower(x, w)
    ours = lowered.compile(options)(x, w) if jax.default_backend() == "cpu" else lowered.compile()(x, w)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(lowered.compile()(x, w)), rtol=1e-5, atol=1e-5)


def test_other_backends_get_xla_defaults(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert compile_options.optimised() is None and compile_options.quick() is None
