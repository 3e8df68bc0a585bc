"""`python -m ghn_jax.train` end to end on CPU (tests/train/tiny_config.py: a tiny GHN on
scikit-learn's digits): sharding, multi-host, exact resume, preemption, NaN steps and a
corrupt checkpoint. Every run is a separate process, as on a real machine; they share a
persistent compilation cache and a kernel store, so that only the first run of each device
layout compiles (and later runs load the store's programs: their results must not change)."""
import hashlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from ghn_jax import tree_paths
from ghn_jax.ghn.hub import load_safetensors

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIG = os.path.join(ROOT, "tests", "train", "tiny_config.py")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_shared")
    return {"data_dir": str(d / "tfds"), "cache": str(d / "xla_cache"), "kernels": str(d / "kernels")}


def _cmd(workdir, shared, *overrides, config=CONFIG):
    return [sys.executable, "-m", "ghn_jax.train", "--config", config, "--workdir", str(workdir),
            f"--config.data.data_dir={shared['data_dir']}", f"--config.compilation_cache_dir={shared['cache']}",
            f"--config.kernel_store={shared['kernels']}", *overrides]


def _env(devices=1, **extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu", **extra)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}" if devices > 1 else ""
    return env


def why(stderr: str) -> str:
    """XLA's fatal and error log lines first (an abort's tail is all thread dumps), then the tail."""
    logged = [l for l in stderr.splitlines() if re.match(r"[FE]\d{4} ", l)]
    return "\n".join(logged[:3] + logged[-3:]) + "\n...\n" + stderr[-2000:]


def run(workdir, shared, *overrides, devices=1, timeout=600, config=CONFIG):
    p = subprocess.run(_cmd(workdir, shared, *overrides, config=config), env=_env(devices), cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, why(p.stderr)
    return p


def params(workdir):
    return tree_paths.flatten(load_safetensors(os.path.join(str(workdir), "ghn.safetensors"))[1])


def digest(workdir):
    h = hashlib.sha256()
    for k, v in sorted(params(workdir).items()):
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()


def rel(a, b):
    num = sum(float(np.sum((np.asarray(a[k], np.float64) - b[k]) ** 2)) for k in a)
    den = sum(float(np.sum(np.asarray(a[k], np.float64) ** 2)) for k in a)
    return (num / den) ** 0.5


def checkpoint_steps(workdir):
    d = os.path.join(str(workdir), "checkpoints")
    return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


@pytest.fixture(scope="module")
def reference(tmp_path_factory, shared):
    """4 uninterrupted steps on one device."""
    w = tmp_path_factory.mktemp("reference")
    p = run(w, shared)
    assert "done: step 4" in p.stdout
    with open(os.path.join(str(w), "stderr.txt"), "w") as f:
        f.write(p.stderr)
    return w


def test_reference_run_writes_metrics_checkpoints_and_a_loadable_ghn(reference):
    import json
    rows = [json.loads(l) for l in open(os.path.join(str(reference), "metrics.jsonl"))]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(r["loss"]) and r["nan_skipped"] == 0 for r in rows)
    assert checkpoint_steps(reference) == [2, 3, 4]           # keep = 3
    import ghn_jax
    ghn = ghn_jax.from_pretrained(os.path.join(str(reference), "ghn.safetensors"))
    assert ghn.config.hid == 16


def _memory_line(p):
    text = p.read() if hasattr(p, "read") else p.stderr
    return float(re.search(r"optimizer state: ([\d.]+) MiB on device 0", text).group(1))


def test_eight_devices_equal_one_with_sharded_parameters(tmp_path, shared, reference):
    """FSDP (the L/XL rule) on 8 devices: the same parameters, a fraction of the memory each."""
    p = run(tmp_path, shared, devices=8, config=CONFIG + ":fsdp")
    assert rel(params(reference), params(tmp_path)) <= 1e-5
    with open(os.path.join(str(reference), "stderr.txt")) as f:
        one = _memory_line(f)
    assert _memory_line(p) < 0.3 * one


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _two_processes(tmp_path, shared, *overrides):
    port = _free_port()
    procs = [subprocess.Popen(_cmd(tmp_path, shared, *overrides), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env(1, GHN_JAX_DISTRIBUTED="1", GHN_JAX_COORDINATOR=f"localhost:{port}",
                                                  GHN_JAX_NUM_PROCESSES="2", GHN_JAX_PROCESS_ID=str(i)))
             for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    # every failed process's log: the first to fail is not always the first one
    failed = [f"process {i} (exit {p.returncode}):\n{why(err)}" for i, (p, (_, err)) in enumerate(zip(procs, outs))
              if p.returncode != 0]
    assert not failed, "\n\n".join(failed)
    digests = [re.search(r"params sha256 (\w+)", out).group(1) for out, _ in outs]
    assert digests[0] == digests[1]                            # both processes end identical
    assert digests[0] == digest(tmp_path)


def test_two_processes_equal_one(tmp_path, shared, reference):
    """parallel='data': images split between the processes, every network on both."""
    _two_processes(tmp_path, shared)
    assert rel(params(reference), params(tmp_path)) <= 1e-5    # equal to the single-process run


def test_two_processes_sharing_the_architectures_equal_one(tmp_path, shared, reference):
    """parallel='arch': each process runs its half of the meta-batch on the whole batch."""
    _two_processes(tmp_path, shared, "--config.parallel=arch")
    assert rel(params(reference), params(tmp_path)) <= 1e-5


def test_sigkill_then_restart_is_bit_identical(tmp_path, shared, reference):
    kill_after = random.Random().choice([1, 2, 3])             # a random step, reported on failure
    p = subprocess.Popen(_cmd(tmp_path, shared), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    t0 = time.time()
    while kill_after not in checkpoint_steps(tmp_path) and p.poll() is None and time.time() - t0 < 600:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not os.path.exists(os.path.join(str(tmp_path), "ghn.safetensors")), "killed too late"
    out = run(tmp_path, shared)
    assert "resuming from" in out.stderr, (kill_after, out.stderr[-2000:])
    assert digest(tmp_path) == digest(reference), f"killed after checkpoint {kill_after}"


def test_sigterm_saves_and_exits_cleanly(tmp_path, shared):
    p = subprocess.Popen(_cmd(tmp_path, shared, "--config.total_steps=1000", "--config.checkpoint.every_steps=500"),
                         cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    metrics = os.path.join(str(tmp_path), "metrics.jsonl")
    while (not os.path.exists(metrics) or os.path.getsize(metrics) == 0) and time.time() - t0 < 600:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, why(err)
    saved = int(re.search(r"preempted: saved step (\d+)", err).group(1))
    assert 1 <= saved < 1000 and checkpoint_steps(tmp_path) == [saved]


def test_nan_step_is_skipped_and_reported(tmp_path, shared, reference):
    import json
    p = run(tmp_path, shared, "--config.debug.nan_steps=(1,)")
    assert "step 2: loss nan is not finite; update skipped (1 skipped so far)" in p.stderr
    rows = [json.loads(l) for l in open(os.path.join(str(tmp_path), "metrics.jsonl"))]
    assert rows[-1]["nan_skipped"] == 1
    assert np.isnan(rows[1]["loss"]) and np.isfinite(rows[-1]["loss"])
    assert all(np.all(np.isfinite(v)) for v in params(tmp_path).values())


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, shared, reference):
    run(tmp_path, shared, "--config.total_steps=3")
    assert checkpoint_steps(tmp_path) == [1, 2, 3]
    state = os.path.join(str(tmp_path), "checkpoints", "3", "state")
    for root, _, files in os.walk(state):
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"\x00garbage" * 7)
    p = run(tmp_path, shared)
    assert re.search(r"checkpoints/3 is unreadable .*; falling back to step 2", p.stderr), p.stderr[-2000:]
    assert digest(tmp_path) == digest(reference)          # steps 3 and 4 redone exactly


def test_bad_parallel_settings_are_clear_errors(tmp_path):
    import importlib.util
    from ghn_jax.errors import GhnError
    from ghn_jax.train.trainer import train
    spec = importlib.util.spec_from_file_location("tiny", CONFIG)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config("fsdp")
    c.parallel = "arch"
    with pytest.raises(GhnError, match="parallel='arch' keeps a full copy"):
        train(c, str(tmp_path))
    c = mod.get_config()
    c.ghn.num_classes = 1000
    with pytest.raises(GhnError, match="1000-way classifiers but digits has 10 classes"):
        train(c, str(tmp_path))
