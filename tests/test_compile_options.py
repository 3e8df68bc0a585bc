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


@pytest.mark.skipif(jax.default_backend() != "cpu" or not __import__("os").path.exists("/proc/self/maps"),
                    reason="XLA:CPU on Linux")
@pytest.mark.parametrize("options", [compile_options.OPTIMISED, compile_options.QUICK])
def test_programs_hold_few_memory_mappings(options):
    """One object file per program: a process can keep thousands of kernels loaded under
    Linux's default vm.max_map_count (XLA's default codegen split costs ~40 per program)."""
    def maps():
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    def f(x, w):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.nn.relu((y - y.mean((0, 1, 2))) * jax.lax.rsqrt(y.var((0, 1, 2)) + 1e-5)).sum()
    before, progs = maps(), []
    for c in range(8, 18):
        x = jax.ShapeDtypeStruct((2, 8, 8, c), np.float32)
        w = jax.ShapeDtypeStruct((3, 3, c, 5), np.float32)
        progs.append(jax.jit(jax.value_and_grad(f, argnums=(0, 1))).lower(x, w).compile(options))
    assert (maps() - before) / len(progs) < 15
