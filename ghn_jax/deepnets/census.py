"""The programs a stream of meta-batches needs, found from shapes alone, and filling the
kernel store with them in parallel processes.

    c = Census()
    meta_step.precompile(ghn_params, nets, prepared, images, labels, key, census=c)   # no compiling
    ...
    c.compile(meta_step, ghn_params)            # each signature once, into the kernel store

A warm-up that precompiles network after network (`MetaStep.precompile`) in N processes
compiles every signature that two processes meet twice, and pays for building and walking
each network's programs in the process that compiles them. A census walks the same plans
with shape inference only (`jax.eval_shape` for the first use of a signature, a dictionary
lookup after): 3,200 train-split networks at 32 px took 90 s in one process and met 2,333
kernel signatures. The union of the processes' censuses is then split into disjoint shares
and each share compiled once (docs/deepnets.md, "Kernel store").

Single-device programs only, like the store itself.
"""
import concurrent.futures
import multiprocessing
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

from ghn_jax.deepnets import executor, kernel_store


class Census:
    """Kernel signatures -> (key, abstract params, abstract inputs, abstract output), GHN
    padding buckets -> (decoder window box, abstract GHN inputs, abstract outputs), and the
    small programs around a bucket's outputs (`meta.bucket_program`) -> (name, static,
    abstract args, abstract output). Picklable, so processes can send theirs to a parent
    that merges them."""

    def __init__(self):
        self.kernels: Dict[Any, Tuple] = {}
        self.ghn: Dict[Any, Tuple] = {}
        self.buckets: Dict[Any, Tuple] = {}

    def __len__(self) -> int:
        return len(self.kernels) + len(self.ghn) + len(self.buckets)

    def kernel(self, key, p, xs):
        """Records one kernel use; its abstract output."""
        sig = (key, executor.signature((p, xs)))
        e = self.kernels.get(sig)
        if e is None:
            e = self.kernels[sig] = (key, p, xs, executor.output_shape(key, p, xs))
        return e[3]

    def ghn_bucket(self, sig, box, inputs, outputs: Callable[[], Any]):
        """Records one GHN padding bucket; its abstract outputs (`outputs()` on first sight)."""
        e = self.ghn.get(sig)
        if e is None:
            e = self.ghn[sig] = (box, inputs, outputs())
        return e[2]

    def bucket_program(self, name: str, static: Tuple, args: Tuple):
        """Records one use of a bucket program; its abstract output."""
        sig = (name, static, executor.signature(args))
        e = self.buckets.get(sig)
        if e is None:
            from ghn_jax.deepnets.meta import bucket_output
            e = self.buckets[sig] = (name, static, args, bucket_output(name, static, args))
        return e[3]

    def merge(self, other: "Census") -> "Census":
        for mine, theirs in ((self.kernels, other.kernels), (self.ghn, other.ghn), (self.buckets, other.buckets)):
            for k, v in theirs.items():
                mine.setdefault(k, v)
        return self

    def shares(self, n: int) -> List["Census"]:
        """n disjoint censuses covering this one. GHN buckets (seconds each to compile) are
        dealt out first, then kernels (a fraction of a second each), then the bucket
        programs (tens of milliseconds), round robin."""
        out = [Census() for _ in range(n)]
        i = 0
        for field in ("ghn", "kernels", "buckets"):
            for k, v in getattr(self, field).items():
                getattr(out[i % n], field)[k] = v
                i += 1
        return out

    def compile(self, meta_step, ghn_params, progress: Callable[[int, int], None] = None) -> Dict[str, int]:
        """Compiles (or finds in the store) every program recorded; the store's count changes.

        meta_step: a `MetaStep` with the GHN module and dtype the census was taken with;
        ghn_params: its (abstract) parameters."""
        from ghn_jax.deepnets.meta import bucket_program
        before = kernel_store.stats()
        total, done = len(self), 0

        def tick(every: int):           # GHN buckets take seconds each: reported one by one
            nonlocal done
            done += 1
            if progress and (done % every == 0 or done == total):
                progress(done, total)
        for box, inputs, _ in self.ghn.values():
            meta_step.ghn_programs(ghn_params, inputs, box)
            tick(1)
        for key, p, xs, _ in self.kernels.values():
            executor.ensure_compiled(key, p, xs)
            # A process compiling thousands of programs would exhaust its memory mappings;
            # dropped programs stay in the store, which is the point here.
            meta_step.executor.maybe_evict()
            tick(100)
        for name, static, args, _ in self.buckets.values():
            bucket_program(name, static, args)
            tick(100)
        after = kernel_store.stats()
        return {k: after[k] - before[k] for k in after}


def fill_store(census_fn: Callable[[Any], Census], census_jobs: Sequence[Any],
               compile_fn: Callable[[Any, Census], Dict[str, int]], compile_arg: Any,
               procs: int) -> Tuple[float, Dict[str, int], int]:
    """Census of `census_jobs` (census_fn(job) -> Census, one job per call) in `procs`
    processes, then the union compiled in `procs` disjoint shares (compile_fn(compile_arg,
    share) -> store counts). census_fn and compile_fn must be importable (module-level)
    functions: processes are spawned (jax does not survive fork). Returns (seconds, summed
    store counts, number of distinct signatures (kernels and GHN padding buckets) found)."""
    t0 = time.perf_counter()
    procs = max(1, min(procs, len(census_jobs)))
    if procs == 1:
        total = Census()
        for job in census_jobs:
            total.merge(census_fn(job))
        return time.perf_counter() - t0, compile_fn(compile_arg, total), len(total)
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(procs, mp_context=ctx) as pool:
        total = Census()
        for c in pool.map(census_fn, census_jobs):
            total.merge(c)
        shares = total.shares(procs)
        stats = list(pool.map(compile_fn, [compile_arg] * procs, shares))
    return time.perf_counter() - t0, {k: sum(s[k] for s in stats) for k in stats[0]}, len(total)


def chunks(first: int, last: int, n: int) -> List[Tuple[int, int]]:
    """[first, last) cut into at most n contiguous ranges of near-equal size."""
    n = max(1, min(n, last - first))
    size = -(-(last - first) // n)
    return [(a, min(a + size, last)) for a in range(first, last, size)]
