"""`python -m ghn_jax.train.warm`: the store it fills holds every program the trainer then runs."""
import os
import re
import subprocess
import sys

import pytest

from ghn_jax.train.warm import parse_steps
from ghn_jax.errors import GhnError

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIG = os.path.join(ROOT, "tests", "train", "tiny_config.py")


def _env(devices=1):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}" if devices > 1 else ""
    return env


def _stored(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs
                  if f.endswith(".xla"))


def _warm(store, *args, devices=1):
    return subprocess.run([sys.executable, "-m", "ghn_jax.train.warm", "--config", CONFIG,
                           f"--config.kernel_store={store}", *args], env=_env(devices), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_warm_then_train_compiles_nothing_new(tmp_path):
    store = tmp_path / "kernels"
    p = _warm(store, "--steps", "0:4", "--procs", "2")
    assert p.returncode == 0, p.stderr[-3000:]
    n = int(re.search(r"(\d+) programs compiled", p.stdout).group(1))
    before = _stored(str(store))
    # Every program once (the census is split into disjoint shares), except the small sums of
    # two cotangents, which each process compiles for the kernels it meets.
    assert 0 < len(before) <= n

    again = _warm(store, "--steps", "0:4", "--procs", "1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 programs compiled" in again.stdout

    # The trainer's own steps 0-3 on an empty store: it keeps its programs there too (its
    # single-device arrays live on a one-device mesh, whose programs are the unsharded ones),
    # and every one of them is among those the warm-up compiled (same keys).
    fresh = tmp_path / "fresh"
    t = subprocess.run([sys.executable, "-m", "ghn_jax.train", "--config", CONFIG, "--workdir", str(tmp_path / "w"),
                        f"--config.data.data_dir={tmp_path / 'tfds'}", f"--config.kernel_store={fresh}"],
                       env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert t.returncode == 0, t.stderr[-3000:]
    assert "done: step 4" in t.stdout
    used = _stored(str(fresh))
    assert used and set(used) <= set(before)


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(GhnError, match="A:B"):
        parse_steps("100")
    with pytest.raises(GhnError, match="0 <= A < B"):
        parse_steps("5:5")
    p = _warm(tmp_path / "k", "--steps", "0:2", devices=2)
    assert p.returncode == 2 and "single-device" in p.stderr
    p = _warm("", "--steps", "0:2")
    assert p.returncode == 2 and "off" in p.stderr
