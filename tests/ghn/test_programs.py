"""Serialised programs (ghn_jax.ghn.programs): a fresh process predicts without tracing the GHN
or the model, with the same numbers; a damaged or unwritable cache costs only the saving."""
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ghn_jax.ghn import predictor, programs
from ghn_jax.ghn.predictor import GHN
from ghn_jax.graph import cache as graph_cache
from ghn_jax.graph import tracer
from tests.ghn.small_ghn import SMALL, small_params

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _digest(variables) -> str:
    from ghn_jax import tree_paths
    h = hashlib.sha256()
    for k, v in sorted(tree_paths.flatten(variables).items()):
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()


def _forget():
    """What a fresh process does not have: programs and graphs in memory."""
    programs._MEMORY.clear()
    graph_cache._MEMORY.clear()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GHN_JAX_CACHE", str(tmp_path))
    _forget()
    yield tmp_path
    _forget()


@pytest.fixture(scope="module")
def ghn():
    return GHN(SMALL, small_params(0))


def _no_tracing(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("traced although a serialised program exists")
    monkeypatch.setattr(predictor, "_traced_forward", refuse)
    monkeypatch.setattr(tracer, "record_initialisers", refuse)


def test_reloaded_programs_give_identical_predictions(cache, ghn, monkeypatch):
    v1, r1 = ghn.predict("vit_b_16")                 # class token and biases not predicted: model-init program
    assert "params/class_token" in r1.not_predicted
    names = sorted(os.listdir(cache / "programs"))
    assert [n.split("-")[0] + "-" + n.split("-")[1] for n in names] == ["ghn-forward", "model-init"]
    _forget()
    _no_tracing(monkeypatch)
    v2, _ = ghn.predict("vit_b_16")
    assert _digest(v1) == _digest(v2)
    assert sorted(os.listdir(cache / "programs")) == names


def test_one_artifact_serves_every_ghn_of_a_configuration(cache, ghn, monkeypatch):
    ghn.predict("resnet18")
    other = GHN(SMALL, small_params(3))              # same shapes, other weights
    _forget()
    traced = predictor._traced_forward
    _no_tracing(monkeypatch)
    v = other("resnet18")
    _forget()
    monkeypatch.setattr(predictor, "_traced_forward", traced)
    monkeypatch.setenv("GHN_JAX_PROGRAM_CACHE", "0")
    ref = other("resnet18")                          # traced afresh, no artifact involved
    assert _digest(v) == _digest(ref)


def test_damaged_artifact_is_rebuilt(cache, ghn):
    v1 = ghn("resnet18")
    (path,) = (cache / "programs").iterdir()
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 3])
    _forget()
    v2 = ghn("resnet18")
    assert _digest(v1) == _digest(v2)
    assert path.stat().st_size == size              # replaced by a whole one


def test_unwritable_cache_costs_only_the_saving(tmp_path, monkeypatch, ghn):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GHN_JAX_CACHE", str(blocker / "cache"))
    _forget()
    try:
        v = ghn("resnet18")
        assert v["params"]["conv1"]["kernel"].shape == (7, 7, 3, 64)
    finally:
        _forget()


_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import numpy as np
    sys.path.insert(0, {root!r})
    from ghn_jax import tree_paths
    from ghn_jax.ghn import predictor
    from ghn_jax.ghn.predictor import GHN
    from tests.ghn.small_ghn import SMALL, small_params
    ghn = GHN(SMALL, small_params(0))
    if sys.argv[1] == "reuse":
        def refuse(*a, **k):
            raise AssertionError("traced the GHN in a process that has its program")
        predictor._traced_forward = refuse
    v = ghn("resnet18")
    h = hashlib.sha256()
    for k, x in sorted(tree_paths.flatten(v).items()):
        h.update(k.encode()); h.update(np.ascontiguousarray(x).tobytes())
    print(json.dumps({{"digest": h.hexdigest()}}))
""")


def test_fresh_process_reuses_the_program(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT.format(root=ROOT))
    env = dict(os.environ, GHN_JAX_CACHE=str(tmp_path / "cache"))
    out = [json.loads(subprocess.run([sys.executable, str(script), mode], env=env, check=True, capture_output=True,
                                     text=True, cwd=ROOT).stdout.strip().splitlines()[-1])["digest"]
           for mode in ("make", "reuse")]
    assert out[0] == out[1]
