"""python -m ghn_jax.train --config configs/X.py --workdir DIR [--config.key=value ...]

Multi-host: set GHN_JAX_DISTRIBUTED=1 on every process (Cloud TPU VMs and SLURM are
auto-detected by jax.distributed.initialize); elsewhere also GHN_JAX_COORDINATOR=host:port,
GHN_JAX_NUM_PROCESSES=N and GHN_JAX_PROCESS_ID=i. The launch/ scripts set these.
"""
import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "a configs/*.py file", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "checkpoints, metrics.jsonl and TensorBoard logs (local or gs://)")


def init_distributed() -> None:
    """jax.distributed.initialize() when GHN_JAX_DISTRIBUTED=1 (before any other jax call)."""
    if os.environ.get("GHN_JAX_DISTRIBUTED", "0") != "1":
        return
    import jax
    kw = {}
    if os.environ.get("GHN_JAX_COORDINATOR"):
        kw = dict(coordinator_address=os.environ["GHN_JAX_COORDINATOR"],
                  num_processes=int(os.environ["GHN_JAX_NUM_PROCESSES"]),
                  process_id=int(os.environ["GHN_JAX_PROCESS_ID"]))
    if os.environ.get("JAX_PLATFORMS", "") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kw)


def main(argv):
    del argv
    from ghn_jax.errors import GhnError
    if _WORKDIR.value is None or _CONFIG.value is None:
        print("error: --config and --workdir are required", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.WARNING)      # orbax logs every file operation at INFO
    cache = _CONFIG.value.get("compilation_cache_dir")
    if cache:
        import jax
        jax.config.update("jax_compilation_cache_dir", os.path.expanduser(cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from ghn_jax.train.config import apply_kernel_store
    apply_kernel_store(_CONFIG.value)
    from ghn_jax.train.trainer import train
    try:
        out = train(_CONFIG.value, _WORKDIR.value)
    except GhnError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import jax
    if jax.process_index() == 0:
        keys = ("step", "loss_avg", "ce", "nan_skipped")
        print(("preempted: " if out.get("preempted") else "done: ") +
              ", ".join(f"{k} {out[k]:.4g}" if isinstance(out.get(k), float) else f"{k} {out.get(k)}"
                        for k in keys if k in out))
    return 0


if __name__ == "__main__":
    # before flag parsing: loading the config file may import modules that touch jax
    init_distributed()
    app.run(lambda argv: sys.exit(main(argv)))
