"""deepnets/pacing.py: bounded dispatch keeps XLA:CPU's simulated devices out of a deadlock.

The script makes 7 of 8 CPU devices lag on purpose (a host callback that sleeps on them),
the way the OS scheduler made one lag in CI's 8-device trainer test, and then runs an
all-reduce, round after round. Unpaced, the lagging devices' queues reach the client's
in-flight limit and the process aborts in an all-reduce (the pinned jaxlib's failure, kept
to show that the script reproduces it: about 1 round in 3 hangs on the 2-core machine, and
12 rounds hung 6 runs out of 6; the test allows 40). Paced, 20 rounds complete."""
import os
import subprocess
import sys

import pytest

from ghn_jax.deepnets import pacing

_SCRIPT = r"""
import sys, time
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from ghn_jax.deepnets import pacing

assert pacing.active()
mesh = Mesh(np.array(jax.devices()), ("d",))
sh = NamedSharding(mesh, P("d"))

def lag_body(x):
    def sleep_unless_device_0(v):
        v = np.asarray(v)
        if v[0] != 0:
            time.sleep(0.01)
        return v
    return jax.pure_callback(sleep_unless_device_0, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

lag = jax.jit(jax.shard_map(lag_body, mesh=mesh, in_specs=P("d"), out_specs=P("d")))
all_reduce = jax.jit(lambda x: x + jnp.sum(x), out_shardings=sh)
x = jax.device_put(np.arange(8, dtype=np.float32), sh)
for _ in range(int(sys.argv[2])):
    for _ in range(40):                 # more than the 32 computations a device may queue
        x = lag(x)
        if sys.argv[1] == "paced":
            pacing.step(x)
    x = jax.device_put(all_reduce(x) * 0.0 + jnp.arange(8, dtype=jnp.float32), sh)
print("done", np.asarray(x).tolist())
"""


def _run(mode):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=8 "
                         "--xla_cpu_collective_call_warn_stuck_timeout_seconds=2 "
                         "--xla_cpu_collective_call_terminate_timeout_seconds=5")
    rounds = "20" if mode == "paced" else "40"
    return subprocess.run([sys.executable, "-c", _SCRIPT, mode, rounds], env=env, capture_output=True, text=True,
                          timeout=300)


def test_one_cpu_device_is_not_paced():
    assert not pacing.active()          # the test process has one CPU device


@pytest.mark.parametrize("mode", ["unpaced", "paced"])
def test_pacing_prevents_the_cpu_collective_deadlock(mode):
    p = _run(mode)
    if mode == "paced":
        assert p.returncode == 0, p.stderr[-3000:]
        assert "done [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]" in p.stdout
    else:
        assert p.returncode != 0 and "Termination timeout for `all reduce" in p.stderr, (
            "the script no longer deadlocks without pacing: has jaxlib's CPU client changed? "
            "(then deepnets/pacing.py may be unnecessary)\n" + p.stderr[-2000:])
