"""GHN-3 training steps on streams of never-seen DeepNets-1M architectures.

    python benchmarks/train_step.py                         # the full grid: m 2 and 8, 32 and 224 px, 200 steps
    python benchmarks/train_step.py --meta 2 --size 32 --steps 60
    python benchmarks/train_step.py --meta 2 --size 32 --steps 200 --kernel-store /tmp/ks --warm-nets 2000

Kernel store (ghn_jax/deepnets/kernel_store.py): by default each configuration starts from
an empty, temporary store, so every kernel signature it meets is compiled in the run.
`--kernel-store DIR` keeps the compiled kernels in DIR; `--warm-nets N` first compiles
into it everything that N train-split networks from a disjoint index range (5,000,000 on,
never seen by the timed steps) need, in `--warm-procs` processes (a shape-only census,
then each program compiled once: `ghn_jax.deepnets.census`): the figures are then those of
a deployment whose store already holds the signature universe it meets, with
architectures that are still new.

Each step samples `meta` fresh train-split architectures (indices never repeat), predicts
their parameters with a randomly initialised GHN-3-T, runs them with the op-by-op executor
on one batch of 8 images, and applies AdamW to the GHN. A background thread works one step
ahead: it traces the next architectures' graphs and compiles every kernel they will need
(`MetaStep.precompile`), so compilation overlaps compute (`--no-ahead` turns this off).

Reported per configuration: steps/s, images x archs / s, XLA compilations and compile
seconds (all threads), the compile seconds the training thread itself waited for ("stall"),
both also after the first 20 steps, peak memory, and the warm step: the last `--warm-batches`
meta-batches again once all their kernels are compiled (mean, median and range; per
meta-batch the median of 3), the figure comparable to the
reference's eager step. The last line is a JSON summary.
"""
import argparse
import collections
import concurrent.futures
import json
import os
import resource
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ghn_jax.deepnets import CompileCounter, arch_graph, kernel_store, net_plan, sample
from ghn_jax.deepnets.census import Census, chunks, fill_store
from ghn_jax.deepnets.executor import HOT_USES, wait_for_upgrades
from ghn_jax.deepnets.meta import MetaNet, MetaStep
from ghn_jax.ghn.checkpoint import GHNConfig, ghn_module
from ghn_jax.ghn.model import GHN3
from ghn_jax.ghn.shape_encoder import shape_indices
from ghn_jax.graph.batch import pad_graphs

WARMUP = 20
WARM_START = 5_000_000


def _nets(indices, imagenet):
    out = []
    for i in indices:
        spec = sample("train", int(i))
        out.append(MetaNet(net_plan(spec, imagenet), arch_graph(spec, imagenet)))
    return out


def _peak_bytes():
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024      # CPU: process peak RSS


def _ghn(seed, start_index, imagenet):
    cfg = GHNConfig(hid=64, layers=3, heads=8, max_shape=(64, 64, 16, 16), num_classes=1000)
    module = ghn_module(cfg)
    first = _nets([start_index], imagenet)
    b = pad_graphs([first[0].graph])
    params = module.init(jax.random.PRNGKey(seed), b.node_types, shape_indices(b.node_types, b.shapes),
                         b.spd.astype(np.int32), b.mask, method=GHN3.init_all)["params"]
    return module, params


def _census_worker(args):
    """The programs meta-batches of nets `first`..`last`-1 need, from shapes alone."""
    meta, size, first, last = args
    imagenet = size == 224
    module, params = _ghn(0, first, imagenet)
    step_fn = MetaStep(module)
    x = jax.ShapeDtypeStruct((8, size, size, 3), jnp.float32)
    y = jax.ShapeDtypeStruct((8,), jnp.int32)
    c = Census()
    t0 = time.perf_counter()
    for k in range(first, last - meta + 1, meta):
        nets = _nets(range(k, k + meta), imagenet)
        step_fn.precompile(params, nets, step_fn.prepare([n.graph for n in nets]), x, y, jax.random.PRNGKey(0),
                           census=c)
        done = k + meta - first
        if done % 500 < meta:
            eta = (time.perf_counter() - t0) / done * (last - first - done)
            print(f"  census {first}: {done}/{last - first} nets, {len(c)} signatures, ETA {eta:.0f} s",
                  file=sys.stderr, flush=True)
    return c


def _compile_worker(args, share):
    store, size = args
    kernel_store.set_directory(store)
    module, params = _ghn(0, WARM_START, size == 224)
    t0 = time.perf_counter()

    def progress(done, total):
        print(f"  compiling: {done}/{total} signatures, ETA {(time.perf_counter() - t0) / done * (total - done):.0f} s",
              file=sys.stderr, flush=True)
    return share.compile(MetaStep(module), params, progress)


def warm(store: str, meta: int, size: int, n_nets: int, procs: int):
    """Fills `store` with the programs of n_nets disjoint networks (a census, then each
    program compiled once); returns (seconds, store counts, signatures found)."""
    jobs = [(meta, size, a, b) for a, b in chunks(WARM_START, WARM_START + n_nets, procs)]
    return fill_store(_census_worker, jobs, _compile_worker, (store, size), procs)


def run(meta: int, size: int, steps: int, seed: int, start_index: int, ahead: bool = True,
        warm_batches: int = 10):
    imagenet = size == 224
    module, params = _ghn(seed, start_index, imagenet)
    opt = optax.chain(optax.clip_by_global_norm(5.0), optax.adamw(4e-4, weight_decay=1e-2))
    opt_state = opt.init(params)
    update = jax.jit(lambda g, s, p: (lambda u, s2: (optax.apply_updates(p, u), s2))(*opt.update(g, s, p)))
    step_fn = MetaStep(module)
    rng = np.random.default_rng(seed)
    counter = CompileCounter(always=True)       # background compiles count too
    store0 = kernel_store.stats()
    pool = concurrent.futures.ThreadPoolExecutor(1)
    next_index = start_index
    x_abs = jax.ShapeDtypeStruct((8, size, size, 3), jnp.float32)
    y_abs = jax.ShapeDtypeStruct((8,), jnp.int32)

    def load(idx):
        nets = _nets(idx, imagenet)
        prepared = step_fn.prepare([n.graph for n in nets])
        if ahead:
            step_fn.precompile(params, nets, prepared, x_abs, y_abs, jax.random.PRNGKey(0))
        return nets, prepared

    def submit():
        nonlocal next_index
        idx = list(range(next_index, next_index + meta))
        next_index += meta
        return pool.submit(load, idx)
    pending = submit()
    rows = []
    recent = collections.deque(maxlen=warm_batches)     # (nets, prepared) of the last meta-batches
    t_all = time.perf_counter()
    for step in range(steps):
        # Compiles are counted over the whole interval, the wait for the loader included: the
        # loader thread compiles the next nets' kernels while this thread waits for it.
        c0, s0, st0 = counter.count, counter.seconds, counter.stall_seconds
        t0 = time.perf_counter()
        nets, prepared = pending.result()
        t_graph_wait = time.perf_counter() - t0
        pending = submit() if step + 1 < steps else None
        recent.append((nets, prepared))
        x = jnp.asarray(rng.standard_normal((8, size, size, 3)), jnp.float32)
        y = jnp.asarray(rng.integers(0, 1000, 8), jnp.int32)
        with counter:
            out = step_fn(params, nets, x, y, dropout_key=jax.random.PRNGKey(step), prepared=prepared)
            params, opt_state = update(out["grads"], opt_state, params)
            jax.block_until_ready(params)
        dt = time.perf_counter() - t0
        rows.append((dt, counter.count - c0, counter.seconds - s0, t_graph_wait, out["loss"],
                     counter.stall_seconds - st0))
        if step % 10 == 9 or step == steps - 1:
            a = np.array(rows)
            done = step + 1
            eta = (time.perf_counter() - t_all) / done * (steps - done)
            print(f"  m{meta} {size}px step {done}/{steps}: {a[-10:, 0].mean():.2f} s/step, "
                  f"compiles {int(a[:, 1].sum())} ({a[:, 2].sum():.0f} s), loss {a[-1, 4]:.3f}, ETA {eta:.0f} s",
                  file=sys.stderr, flush=True)
    pool.shutdown()
    # Warm step: the last `warm_batches` meta-batches again once every kernel they use is
    # compiled (the figure comparable to the reference's eager step, which compiles nothing).
    # Networks differ by more than 5x in cost (0.25-2.1 s per 32-px meta-batch measured on
    # the 2-core CPU), so one meta-batch says little: mean and median over several.
    warm_times = []
    for nets, prepared in recent:
        for _ in range(HOT_USES):
            step_fn(params, nets, x, y, dropout_key=jax.random.PRNGKey(0), prepared=prepared)
        wait_for_upgrades()
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = step_fn(params, nets, x, y, dropout_key=jax.random.PRNGKey(0), prepared=prepared)
            jax.block_until_ready(out["grads"])
            ts.append(time.perf_counter() - t0)
        warm_times.append(float(np.median(ts)))
    a = np.array(rows)
    wall = float(a[:, 0].sum())
    st = kernel_store.stats()
    late = a[WARMUP:] if len(a) > WARMUP else a[-1:]
    return {
        "meta_batch": meta, "image_size": size, "images": 8, "steps": steps,
        "steps_per_s": steps / wall, "images_x_archs_per_s": steps * meta * 8 / wall,
        "compilations": int(a[:, 1].sum()), "compile_s": float(a[:, 2].sum()),
        "compilations_after_warmup": int(late[:, 1].sum()),
        "compile_fraction_after_warmup": float(late[:, 2].sum() / late[:, 0].sum()),
        "stall_s": float(a[:, 5].sum()),
        "stall_fraction_after_warmup": float(late[:, 5].sum() / late[:, 0].sum()),
        "compile_fraction_last_half": float(a[steps // 2:, 2].sum() / a[steps // 2:, 0].sum()),
        "graph_wait_s": float(a[:, 3].sum()), "peak_memory_bytes": _peak_bytes(),
        "wall_s": wall, "first_loss": float(a[0, 4]), "last_loss": float(a[-1, 4]),
        "warm_step_s": float(np.mean(warm_times)), "warm_step_median_s": float(np.median(warm_times)),
        "warm_step_range_s": [float(min(warm_times)), float(max(warm_times))], "warm_batches": len(warm_times),
        "stream_to_warm": float(np.mean(a[-len(warm_times):, 0]) / np.mean(warm_times)),
        "kernel_store": {k: st[k] - store0[k] for k in st},
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--meta", type=int, nargs="+", default=[2, 8])
    p.add_argument("--size", type=int, nargs="+", default=[32, 224], choices=[32, 224])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=10_000,
                   help="train-split index of the first timed network (a later run on the same store: a new range)")
    p.add_argument("--cache-dir", default=None, help="persistent XLA compilation cache directory")
    p.add_argument("--kernel-store", default=None,
                   help="keep compiled kernels in this folder (default: a fresh temporary store per configuration)")
    p.add_argument("--warm-nets", type=int, default=0,
                   help="first compile into the store what this many disjoint networks need")
    p.add_argument("--warm-procs", type=int, default=max(1, min(8, os.cpu_count() or 1)))
    p.add_argument("--warm-batches", type=int, default=10,
                   help="the warm step is averaged over this many of the last meta-batches")
    p.add_argument("--no-ahead", action="store_true", help="do not compile the next step's kernels in the background")
    args = p.parse_args(argv)
    if args.cache_dir:
        jax.config.update("jax_compilation_cache_dir", args.cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    results = []
    start = args.start
    for size in args.size:
        for meta in args.meta:
            tmp = None
            if args.kernel_store:
                store = args.kernel_store
            else:
                tmp = tempfile.TemporaryDirectory(prefix="ghn_jax_kernels_")
                store = tmp.name
            kernel_store.set_directory(store)
            warm_s, warm_stats, found = (warm(store, meta, size, args.warm_nets, args.warm_procs) if args.warm_nets
                                         else (0.0, None, 0))
            if args.warm_nets:
                print(f"m{meta} {size}px: store warmed with {args.warm_nets} disjoint nets in {warm_s:.0f} s: "
                      f"{found} signatures ({warm_stats})", flush=True)
            r = run(meta, size, args.steps, args.seed, start, ahead=not args.no_ahead, warm_batches=args.warm_batches)
            r.update(warm_nets=args.warm_nets, warm_s=warm_s, warm_signatures=found, kernel_store_dir=args.kernel_store)
            if tmp is not None:
                tmp.cleanup()
            start += meta * args.steps          # every configuration sees its own fresh nets
            print(f"m{meta} {size}px: {r['steps_per_s']:.3f} steps/s, {r['images_x_archs_per_s']:.1f} images x archs/s, "
                  f"{r['compilations']} compilations ({r['compile_s']:.0f} s, stall {r['stall_s']:.0f} s), "
                  f"after step {WARMUP}: {r['compilations_after_warmup']} "
                  f"({100 * r['compile_fraction_after_warmup']:.1f}% of wall, stall "
                  f"{100 * r['stall_fraction_after_warmup']:.1f}%), "
                  f"peak {r['peak_memory_bytes'] / 2**30:.2f} GiB, warm step {r['warm_step_s']:.2f} s "
                  f"(mean of {r['warm_batches']} meta-batches, median {r['warm_step_median_s']:.2f} s, "
                  f"range {r['warm_step_range_s'][0]:.2f}-{r['warm_step_range_s'][1]:.2f} s), "
                  f"kernel store {r['kernel_store']}", flush=True)
            results.append(r)
    print(json.dumps({"backend": jax.default_backend(), "device": str(jax.devices()[0]), "results": results}))


if __name__ == "__main__":
    main()
