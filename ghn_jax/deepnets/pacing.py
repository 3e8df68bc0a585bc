"""Bounded dispatch on XLA:CPU's simulated devices (--xla_force_host_platform_device_count).

A meta-step dispatches thousands of small programs, and jax dispatches asynchronously, so
Python runs far ahead of the devices. With several CPU devices, the pinned jaxlib's CPU
client can then deadlock, and the process aborts 40 s later in a collective ("Termination
timeout for `all reduce ...` ... only 7 of them arrived"). This happened in CI's 8-device
trainer test on a loaded 2-core machine; gdb on a hung process shows the cycle:

* the client runs device programs on a pool of max(cores, devices) threads: enough for one
  collective and little else;
* a multi-device program launches each device's part from that pool, and a launch waits
  on its pool thread for a slot under the device's in-flight limit (32 computations);
* when a device falls that far behind (the OS ran its work less), the other devices' parts
  of a collective wait in its rendezvous on some pool threads, the lagging device's launch
  waits for a slot on the rest, and the queued computations that would free the slot have
  no thread left to run on (the CI failure, reproduced: 7 threads in an all-reduce, 1
  launch waiting).

Setting jax_cpu_enable_async_dispatch=False does not help: the 8-device trainer still hung
in at least 2 of its first 4 runs, with the same threads in the same places. Waiting for
the devices every `EVERY` dispatches keeps every queue far below the limit
(tests/deepnets/test_pacing.py reproduces the hang with deliberately lagging devices, and
shows pacing removes it). Only processes with several CPU devices pay the waits; with one
CPU device, on GPUs and on TPUs `step` does nothing.
"""
import functools

import jax

EVERY = 8          # dispatches between waits: with the few unpaced ones between, far below 32
_count = [0]


@functools.lru_cache(maxsize=None)
def active() -> bool:
    """Whether this process runs several XLA:CPU devices (known once jax is initialised)."""
    return jax.default_backend() == "cpu" and jax.local_device_count() > 1


def step(out):
    """Counts one dispatched program; every EVERY-th waits until `out` (and so everything
    dispatched before it on its devices) has been computed. Returns `out`."""
    if active():
        _count[0] += 1
        if _count[0] % EVERY == 0:
            jax.block_until_ready(out)
    return out
