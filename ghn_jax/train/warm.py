"""Fill the kernel store with what a training run's steps will compile, before the run.

    python -m ghn_jax.train.warm --config configs/ghn3_t_cifar10.py --steps 0:2000 --procs 16

A DeepNets-1M run meets new kernel signatures (op x shapes) and GHN padding buckets for
its first thousands of networks (docs/deepnets.md, "Kernel store"); each costs a trace,
lowering and XLA compile of ~0.1-3 s on the training host. This command compiles them
ahead for exactly the networks the config's steps will sample (the stream is a function of
config.seed and the step), into the store the trainer then loads from
(`config.kernel_store`). It first takes a census of the steps' programs from shapes alone
(`deepnets.census`, split over the processes), then compiles each distinct program once,
the union dealt out to the same processes. Processes, restarts and later runs on the same
kind of machine share the store.

Single-device runs only: programs with sharded inputs (a mesh of several devices) are not
kept in the store, and the command says so. It takes the trainer's own settings: GHN
config and dtype, meta-batch, batch size, image size, loss options.
"""
import os
import sys
import time
from typing import Dict, Tuple

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "a configs/*.py file", lock_config=True)
_STEPS = flags.DEFINE_string("steps", "0:1000", "training steps A:B whose networks are compiled")
_PROCS = flags.DEFINE_integer("procs", 0, "worker processes (0: the host's cores, at most 16)")


def parse_steps(text: str) -> Tuple[int, int]:
    from ghn_jax.errors import GhnError
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise GhnError(f"--steps takes A:B (training steps A..B-1), got {text!r}") from None
    if not 0 <= a < b:
        raise GhnError(f"--steps {text}: need 0 <= A < B")
    return a, b


def _setup(config):
    """(MetaStep, abstract GHN parameters, abstract images and labels, base dropout key) of
    the trainer's single-device setting, with the store the config names."""
    import jax
    import jax.numpy as jnp
    from ghn_jax.deepnets.meta import MetaStep
    from ghn_jax.ghn.checkpoint import ghn_module
    from ghn_jax.train.config import apply_kernel_store
    from ghn_jax.train.trainer import _ghn_config, _init_fn

    apply_kernel_store(config)
    module = ghn_module(_ghn_config(config.ghn))
    params = jax.eval_shape(_init_fn(module, config.seed))
    meta = MetaStep(module, label_smoothing=config.loss.label_smoothing, lam=config.loss.lam,
                    ghn_dtype=config.ghn_dtype)
    b, size = config.data.batch_size, config.data.image_size
    x = jax.ShapeDtypeStruct((b, size, size, 3), jnp.float32)
    y = jax.ShapeDtypeStruct((b,), jnp.int32)
    return meta, params, x, y, jax.random.PRNGKey(config.seed + 1)


def census_steps(config, first: int, last: int, progress: bool = True):
    """The programs training steps first..last-1 need, from shapes alone (`census.Census`)."""
    from ghn_jax.deepnets.census import Census
    from ghn_jax.train import archs
    from ghn_jax.train.trainer import _fold

    meta, params, x, y, key = _setup(config)
    census = Census()
    t0 = time.perf_counter()
    for step in range(first, last):
        nets = archs.meta_batch(config.deepnets, config.seed, step, config.ghn.num_classes)
        meta.precompile(params, nets, meta.prepare([n.graph for n in nets]), x, y, _fold(key, step), census=census)
        done = step + 1 - first
        if progress and (done % 100 == 0 or step + 1 == last):
            eta = (time.perf_counter() - t0) / done * (last - first - done)
            print(f"  census of steps {first}:{last}: {done}/{last - first}, {len(census)} signatures, "
                  f"ETA {eta:.0f} s", file=sys.stderr, flush=True)
    return census


def _census_worker(args):
    config, first, last = args
    return census_steps(config, first, last)


def _compile_worker(config, share):
    meta, params, *_ = _setup(config)
    t0 = time.perf_counter()

    def progress(done, total):
        eta = (time.perf_counter() - t0) / done * (total - done)
        print(f"  compiling: {done}/{total} signatures, ETA {eta:.0f} s", file=sys.stderr, flush=True)
    return share.compile(meta, params, progress)


def warm(config, first: int, last: int, procs: int) -> Tuple[float, Dict[str, int], int]:
    """Steps first..last-1: a census in `procs` spawned processes, then every program found
    compiled once, the work split over the same processes; (seconds, summed store counts,
    signatures found)."""
    from ghn_jax.deepnets.census import chunks, fill_store
    jobs = [(config, a, b) for a, b in chunks(first, last, procs)]
    return fill_store(_census_worker, jobs, _compile_worker, config, procs)


def main(argv):
    del argv
    from ghn_jax.errors import GhnError
    config = _CONFIG.value
    if config is None:
        print("error: --config is required", file=sys.stderr)
        return 2
    try:
        first, last = parse_steps(_STEPS.value)
        import jax
        if config.get("parallel", "data") == "arch" or jax.device_count() > 1:
            raise GhnError(f"the kernel store keeps single-device programs only; this run would shard over "
                           f"{jax.device_count()} devices")
        from ghn_jax.train.config import apply_kernel_store
        folder = apply_kernel_store(config)
        if folder is None:
            raise GhnError("the kernel store is off (config.kernel_store or GHN_JAX_KERNEL_CACHE): nothing to fill")
        procs = _PROCS.value or min(16, os.cpu_count() or 1)
        print(f"compiling the programs of steps {first}:{last} into {folder} with {procs} processes", flush=True)
        seconds, stats, found = warm(config, first, last, procs)
    except GhnError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"done in {seconds:.0f} s: {found} signatures, {stats['compiled']} programs compiled, "
          f"{stats['loaded']} already stored", flush=True)
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
