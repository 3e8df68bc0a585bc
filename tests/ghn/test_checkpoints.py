"""Checkpoint import: both reference layouts, the hub download path, caching, bad files."""
import os

import jax
import numpy as np
import pytest

from ghn_jax.ghn.checkpoint import CheckpointError, load_torch_checkpoint
from ghn_jax.ghn.hub import load_ghn, load_safetensors
from tests.ghn.fake_hub import FakeHub
from tests.ghn.small_ghn import SMALL, small_params, write_official, write_trainer


def _assert_same(a, b):
    fa, fb = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    assert [p for p, _ in fa] == [p for p, _ in fb]
    for (p, x), (_, y) in zip(fa, fb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(p))


@pytest.fixture(scope="module")
def params():
    return small_params(0)


@pytest.mark.parametrize("writer", [write_official, write_trainer])
def test_both_layouts(tmp_path, params, writer):
    path = str(tmp_path / "ghn.pt")
    writer(path, params)
    config, loaded = load_torch_checkpoint(path, trust_pickle=True)
    assert config == SMALL
    _assert_same(loaded, params)


def test_pickle_refused_without_trust(tmp_path, params):
    path = str(tmp_path / "ghn.pt")
    write_official(path, params)
    with pytest.raises(CheckpointError, match="--trust-pickle"):
        load_ghn(path)


def test_truncated_and_wrong_layout(tmp_path, params):
    path = str(tmp_path / "ghn.pt")
    write_official(path, params)
    data = open(path, "rb").read()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_ghn(str(cut), trust_pickle=True)
    import joblib
    joblib.dump({"fc.weight": np.zeros((3, 3), np.float32)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a GHN-3 state dict"):
        load_ghn(str(tmp_path / "other.pt"), trust_pickle=True)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_ghn(str(tmp_path / "missing.pt"))
    with pytest.raises(CheckpointError, match="unknown GHN checkpoint 'ghn4'.*ghn3tm8"):
        load_ghn("ghn4")


def test_download_from_hub_then_cached(tmp_path, params):
    src = tmp_path / "ghn3tm8.pt"
    write_official(str(src), params)
    cache = str(tmp_path / "cache")
    with FakeHub({"SamsungSAILMontreal/ghn3/resolve/main/ghn3tm8.pt": src.read_bytes()}) as hub:
        with pytest.raises(CheckpointError, match="--trust-pickle"):
            load_ghn("ghn3tm8", cache=cache, endpoint=hub.url)
        config, loaded = load_ghn("ghn3tm8", trust_pickle=True, cache=cache, endpoint=hub.url)
        assert config == SMALL and hub.gets == 1
        _assert_same(loaded, params)
        # Converted once: the second load reads the safetensors cache, no pickle, no download.
        config2, again = load_ghn("ghn3tm8", cache=cache, endpoint=hub.url)
        assert hub.gets == 1 and config2 == SMALL
        _assert_same(again, params)
    assert os.path.exists(os.path.join(cache, "ghn3tm8.safetensors"))


def test_offline_hub_is_one_clear_error(tmp_path):
    with FakeHub({}) as hub:
        with pytest.raises(CheckpointError, match="could not download 'ghn3sm8.pt'.*--ckpt PATH"):
            load_ghn("ghn3sm8", trust_pickle=True, cache=str(tmp_path), endpoint=hub.url)


def test_corrupt_safetensors(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_safetensors(str(bad))
