"""Shared fixtures: one prepared `digits` per session, a private split cache per test."""
import pytest


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    from ghn_jax.data import digits
    path = str(tmp_path_factory.mktemp("tfds"))
    digits.prepare(path)
    return path


@pytest.fixture(autouse=True)
def _split_cache(tmp_path, monkeypatch):
    # Held-out split indices are cached by dataset name/size; mock datasets must not share them.
    monkeypatch.setenv("GHN_JAX_CACHE", str(tmp_path / "cache"))
