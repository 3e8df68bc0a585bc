"""Fixtures: prepared `digits`, small random GHNs (10 and 1000 classes) as safetensors, and,
for this package only, a private GHN_JAX_CACHE and JAX compilation cache."""
import os

import pytest

from tests.eval.helpers import write_small_ghn


@pytest.fixture(scope="package", autouse=True)
def _private_cache(tmp_path_factory):
    old = os.environ.get("GHN_JAX_CACHE")
    os.environ["GHN_JAX_CACHE"] = str(tmp_path_factory.mktemp("ghn_jax_cache"))
    yield
    if old is None:
        os.environ.pop("GHN_JAX_CACHE", None)
    else:
        os.environ["GHN_JAX_CACHE"] = old


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    from ghn_jax.data import digits
    path = str(tmp_path_factory.mktemp("tfds"))
    digits.prepare(path)
    return path


@pytest.fixture(scope="session")
def ghn10_path(tmp_path_factory):
    return write_small_ghn(tmp_path_factory.mktemp("ghn") / "ghn10.safetensors", 10, seed=0)


@pytest.fixture(scope="session")
def ghn1000_path(tmp_path_factory):
    return write_small_ghn(tmp_path_factory.mktemp("ghn") / "ghn1000.safetensors", 1000, seed=1)


@pytest.fixture(scope="session")
def ghn10(ghn10_path):
    from ghn_jax.ghn.predictor import GHN
    return GHN.from_pretrained(ghn10_path)


@pytest.fixture(scope="session")
def ghn1000(ghn1000_path):
    from ghn_jax.ghn.predictor import GHN
    return GHN.from_pretrained(ghn1000_path)


@pytest.fixture(scope="package", autouse=True)
def _compilation_cache(_private_cache):
    # As the CLIs do: tests that compile the same programs share them. Restored afterwards so
    # that other test packages run with JAX's settings as they were.
    import jax
    from ghn_jax.cli import enable_compilation_cache
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    old = {n: getattr(jax.config, n) for n in names}
    enable_compilation_cache()
    yield
    for n, v in old.items():
        jax.config.update(n, v)
    try:
        from jax._src import compilation_cache
        compilation_cache.reset_cache()
    except (ImportError, AttributeError):
        pass
