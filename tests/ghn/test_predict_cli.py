"""python -m ghn_jax.predict end to end, export to torchvision, and bad input."""
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.ghn.small_ghn import small_params, write_official

ARCH = "resnet18"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    path = str(d / "small_ghn.pt")
    write_official(path, small_params(0))
    return path


def _run(*args, cache=None):
    env = dict(os.environ)
    if cache:
        env["GHN_JAX_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-m", "ghn_jax.predict", *args], capture_output=True, text=True,
                          timeout=600, env=env)


def test_export_pt_loads_strict_and_matches_flax(ckpt, tmp_path):
    import torch
    import jax.numpy as jnp
    from ghn_jax import zoo
    from ghn_jax.export import torch_to_flax
    from tests.zoo.parity import abstract_variables, torchvision_model
    out = tmp_path / "r18.pt"
    r = _run("--arch", ARCH, "--ckpt", ckpt, "--trust-pickle", "--out", str(out), cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "62 tensors predicted, 0 not predicted" in r.stdout and "total norm" in r.stdout
    sd = torch.load(out)
    tv = torchvision_model(ARCH)
    tv.load_state_dict(sd, strict=True)
    assert float(sd["bn1.running_var"].min()) == 1.0 and float(sd["bn1.running_mean"].abs().max()) == 0.0
    module = zoo.get(ARCH)
    variables = torch_to_flax({k: v.numpy() for k, v in sd.items()}, abstract_variables(module, 64))
    x = np.random.RandomState(0).randn(2, 3, 64, 64).astype(np.float32)
    with torch.no_grad():
        ref = tv(torch.from_numpy(x)).numpy()
    ours = np.asarray(module.apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1))))
    assert np.abs(ours - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_flax_outputs_same_values(ckpt, tmp_path):
    from ghn_jax.export.files import load_flax
    a, b = tmp_path / "a.safetensors", tmp_path / "b.msgpack"
    for out in (a, b):
        r = _run("--arch", ARCH, "--ckpt", ckpt, "--trust-pickle", "--out", str(out), cache=tmp_path)
        assert r.returncode == 0, r.stderr
    va, vb = load_flax(str(a)), load_flax(str(b))
    np.testing.assert_array_equal(va["params"]["conv1"]["kernel"], vb["params"]["conv1"]["kernel"])
    assert va["params"]["fc"]["kernel"].shape == (512, 1000)
    np.testing.assert_array_equal(va["batch_stats"]["bn1"]["var"], np.ones(64, np.float32))


@pytest.mark.parametrize("args,msg", [
    (["--ckpt", "ghn9"], "unknown GHN checkpoint 'ghn9'"),
    (["--arch", "resnet5O"], "unknown architecture 'resnet5O'. Did you mean"),
    (["--trust-pickle", "--num-classes", "10"], "has 10 classes but this GHN predicts 1000"),
    (["--trust-pickle", "--out", "/nonexistent_dir/x.pt"], "cannot write"),
    (["--trust-pickle", "--out", "x.weird"], "cannot tell the format"),
    ([], "--trust-pickle"),
])
def test_bad_input_one_line(ckpt, tmp_path, args, msg):
    base = {"--arch": ARCH, "--ckpt": ckpt}
    argv = []
    for k, v in base.items():
        if k not in args:
            argv += [k, v]
    r = _run(*(argv + args), cache=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_bad_checkpoints_leave_no_output(ckpt, tmp_path):
    data = open(ckpt, "rb").read()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 3])
    out = tmp_path / "o.safetensors"
    r = _run("--arch", ARCH, "--ckpt", str(cut), "--trust-pickle", "--out", str(out), cache=tmp_path)
    assert r.returncode == 2 and "truncated or corrupt" in r.stderr and not out.exists()
    import joblib
    joblib.dump({"fc.weight": np.zeros((3, 3), np.float32)}, tmp_path / "other.pt")
    r = _run("--arch", ARCH, "--ckpt", str(tmp_path / "other.pt"), "--trust-pickle", "--out", str(out),
             cache=tmp_path)
    assert r.returncode == 2 and "not a GHN-3 state dict" in r.stderr and not out.exists()


def test_tile_classifier_allows_other_class_counts(ckpt, tmp_path):
    from ghn_jax.export.files import load_flax
    out = tmp_path / "c10.safetensors"
    r = _run("--arch", ARCH, "--ckpt", ckpt, "--trust-pickle", "--num-classes", "10", "--tile-classifier",
             "--out", str(out), cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert load_flax(str(out))["params"]["fc"]["kernel"].shape == (512, 10)
