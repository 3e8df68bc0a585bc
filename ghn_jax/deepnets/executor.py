"""Training-time executor: run a stream of never-seen DeepNets networks without compiling
each one (design and measurements: docs/deepnets.md, "Executor").

A network is a walk over its plan (network.run_plan). Here every op of the walk is one
compiled *kernel* keyed by (OpSpec, input shapes): its forward program returns the op's
output and the residuals of its VJP (`jax.vjp` inside `jax.jit`, flattened to arrays), its
backward program applies them to a cotangent. The forward records a tape; `backward` walks
it in reverse. Both programs go through the on-disk kernel store (kernel_store.py), so a
signature any earlier process compiled costs a ~2 ms load instead of a compile. Compilations are therefore bounded by the number
of distinct (op, channels, resolution, batch) buckets, not by the number of
architectures: a new genotype reuses the kernels of the ops it is made of.

Values are exactly those of the Flax `Network` (the same modules, applied op by op);
gradients are jax's own VJPs of those modules.
"""
import atexit
import dataclasses
import functools
import gc
import logging
import queue
import threading
from typing import Any, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from ghn_jax import compile_options
from ghn_jax.deepnets import kernel_store, pacing
from ghn_jax.deepnets.network import NetPlan, Ops, run_plan
from ghn_jax.deepnets.ops import OpSpec, make_op, shift_add_depthwise


class Raw:
    """An op's parameters given as raw GHN outputs plus a hashable `builder`:
    builder(blocks) -> (params subtree, sum of the parameters' Frobenius norms).

    The builder runs inside the op's kernel, so shaping predictions into parameters
    (tiling, normalisation) costs no extra kernel, compilation or dispatch.
    """
    __slots__ = ("builder", "blocks")

    def __init__(self, builder, blocks):
        self.builder, self.blocks = builder, tuple(blocks)


def _apply(key: Tuple, p, xs):
    """(output, norm of the op's parameters if it builds them from raw blocks, else 0).

    key: (kind, [OpSpec, [builder]], optimised); the last entry only separates the traces
    of the two tiers in jit's cache (depthwise convolutions differ, see ops.py)."""
    key = key[:-1]
    kind, builder = key[0], key[2] if len(key) > 2 else None
    norm = jnp.zeros((), jnp.float32)
    if builder is not None:
        p, norm = builder(p)
    if kind == "op":
        y = make_op(key[1]).apply({"params": p}, xs[0])
    elif kind == "head":
        y = make_op(key[1]).apply({"params": p}, xs[0], xs[1] if len(xs) > 1 else None)
    elif kind == "add":
        y = xs[0] + xs[1]
    elif kind == "concat":
        y = jnp.concatenate(xs, axis=-1)
    elif kind == "zeros":
        y = xs[0] * 0.0
    else:
        raise ValueError(kind)
    return y, norm


# Kernel tiers (docs/deepnets.md, "Executor"): 0 compiles with `compile_options.quick()`
# (~2x faster to compile), 1 with `compile_options.optimised()` (elementwise code such as
# batch norm and parameter shaping runs ~2x faster). Decided at first compile, not import:
# importing must not start jax's backend, which jax.distributed.initialize needs to do itself.
HOT_USES = 3

# Tiered compilation: start every kernel at tier 0 and, once `HOT_USES` network forward passes
# (several uses within one pass count once) have used it, recompile it at tier 1 in a
# background thread. Off by default: a kernel's tier would then depend on thread timing and on
# the process's history, and its rounding with it, so a restarted or multi-process run would no
# longer be bit-identical to an uninterrupted one (tests/train/test_trainer.py). Set before the
# first kernel compiles, for throughput on fresh-architecture streams where that does not matter.
UPGRADES = False


def _first_tier() -> int:
    # One CPU device: optimised. Several CPU devices: unoptimised; an optimised compile in the
    # precompile thread could starve the device threads of a running all-reduce, which XLA:CPU
    # aborts after its rendezvous timeout.
    if jax.default_backend() != "cpu":
        return 1
    return 0 if (jax.local_device_count() > 1 or UPGRADES) else 1


def _upgrades() -> bool:
    return UPGRADES and jax.default_backend() == "cpu" and jax.local_device_count() == 1


def _kernel_options(tier: int):
    return compile_options.quick() if tier == 0 else compile_options.optimised()


def _kernel_programs(key, p, xs, opts):
    """Compiled (fwd, bwd, out) of one op through the kernel store (kernel_store.py):
    fwd(p, xs) -> ((output, norm), residuals); bwd(residuals, (g, g_norm)) -> (g_p, g_xs).

    On several devices the activation is kept where it must live (`batch_sharding`), so
    that every kernel sees its inputs where it was compiled for, and cotangents are placed
    like the primals."""
    out_sharding = batch_sharding(xs[0]) if xs else None
    in_shardings = shardings_of((p, xs))

    def wrap(fwd):
        if out_sharding is None:
            return fwd

        def constrained(p, xs):
            (y, norm), res = fwd(p, xs)
            return (jax.lax.with_sharding_constraint(y, out_sharding), norm), res
        return constrained
    fwd, bwd, out, _ = kernel_store.vjp_programs(("kernel", key), functools.partial(_apply, key), (p, xs), opts,
                                                 post=lambda cts: constrain_like(cts, in_shardings), fwd_wrap=wrap)
    return fwd, bwd, out


@jax.jit
def _accumulate(a, b):
    return a + b


# ------------------------------------------------------------------------------------------
# Placement: kernels are compiled for the shardings of their inputs (docs/training.md)
# ------------------------------------------------------------------------------------------

def placement(a):
    """The sharding an array (or ShapeDtypeStruct) is compiled for; None means the default
    device, so that single-device programs and signatures are the same with or without a mesh."""
    return _on_default_is_none(getattr(a, "sharding", None))


@functools.lru_cache(None)
def _default_device():
    return jax.devices()[0]


def _on_default_is_none(s):
    # Any sharding over the default device alone (the trainer's one-device mesh included) is
    # unsharded: a program compiled for the device runs such arrays as they are, and it can be
    # kept in the kernel store, which skips sharded programs.
    if isinstance(s, jax.sharding.Sharding) and s.device_set == {_default_device()}:
        return None
    return s


def put_global(x, sharding) -> jax.Array:
    """A host value that every process holds in full -> a global array with `sharding`."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def batch_sharding(x):
    """Activations stay sharded along their batch axis like the images they come from."""
    s = placement(x)
    if not isinstance(s, jax.sharding.NamedSharding):
        return None
    spec = tuple(s.spec)
    return jax.sharding.NamedSharding(s.mesh, jax.sharding.PartitionSpec(spec[0] if spec else None))


def shardings_of(tree) -> Optional[Tuple]:
    """Flat tuple of the leaves' placements, or None when everything is on the default device."""
    flat = tuple(placement(a) for a in jax.tree_util.tree_leaves(tree))
    return None if all(s is None for s in flat) else flat


def constrain_like(tree, flat_shardings):
    if flat_shardings is None:
        return tree
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    leaves = [a if s is None else jax.lax.with_sharding_constraint(a, s) for a, s in zip(leaves, flat_shardings)]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def compile_abstract(jitted, *args, compiler_options=None, **kwargs):
    """(compiled program, abstract outputs carrying the shardings it produces)."""
    lowered = jitted.lower(*args, **kwargs)
    compiled = lowered.compile(compiler_options)
    out = jax.tree_util.tree_map(
        lambda i, s: jax.ShapeDtypeStruct(i.shape, i.dtype, sharding=_on_default_is_none(s)),
        lowered.out_info, compiled.output_shardings)
    return compiled, out


@dataclasses.dataclass
class _Entry:
    vjp: Any
    ins: Tuple[int, ...]
    out: int
    name: Optional[str]       # parameter module name, or None
    raw: bool = False         # parameters built from raw blocks (their norm enters the loss)
    bwd: Any = None           # the compiled backward program


class Tape:
    """What the forward recorded: one entry per kernel call, in execution order."""

    def __init__(self):
        self.entries: List[_Entry] = []
        self.norms: List[jax.Array] = []     # per raw-parameter op: sum of its tensors' norms
        self.n_values = 0
        self.input_id: int = -1
        self.acc: Dict[int, Any] = {}        # value id -> compiled sum of two of its cotangents
        self.output_id: int = -1

    def new_value(self) -> int:
        self.n_values += 1
        return self.n_values - 1


class _V:
    """An activation on the tape: the array and its value id."""
    __slots__ = ("a", "i")

    def __init__(self, a, i):
        self.a, self.i = a, i

    @property
    def shape(self):
        return self.a.shape


class _KernelOps(Ops):
    """Every plan step is one kernel call `_call(kernel key, param module name, inputs)`."""
    params: Dict[str, Any]
    dropout_key: Any

    def key_value(self):
        return self.dropout_key

    def apply(self, name, spec: OpSpec, x):
        return self._call(("op", spec), name if name in self.params else None, (x,))

    def head(self, name, spec, x):
        xs = (x,) if self.dropout_key is None else (x, self.key_value())
        return self._call(("head", spec), name, xs)

    def add(self, a, b):
        return self._call(("add",), None, (a, b))

    def concat(self, xs):
        return self._call(("concat",), None, tuple(xs))

    def zeros_like(self, x):
        return self._call(("zeros",), None, (x,))


class _TapeOps(_KernelOps):
    def __init__(self, params: Dict[str, Any], tape: Tape, dropout_key, record: bool):
        self.params, self.tape, self.dropout_key, self.record = params, tape, dropout_key, record
        self.counted = set()          # kernels whose use this pass has counted

    def _call(self, key, name, xs):
        key, p = _with_params(key, self.params[name] if name is not None else {})
        arrays = tuple(x.a for x in xs)
        e = _kernel(key, p, arrays)
        fwd, bwd = e.fwd, e.bwd
        if e.tier == 0 and id(e) not in self.counted:
            self.counted.add(id(e))
            _used(key, p, arrays, e)
        (out, norm), vjp = fwd(p, arrays)
        pacing.step(out)
        v = _V(out, self.tape.new_value())
        if len(key) > 2:
            self.tape.norms.append(norm)
        if self.record:
            self.tape.entries.append(_Entry(vjp, tuple(x.i for x in xs), v.i, name, len(key) > 2, bwd))
            self.tape.acc[v.i] = e.acc
        return v

    def key_value(self):
        return _V(self.dropout_key, -1)           # rng keys get no cotangent (id < 0)


class _AbstractOps(_KernelOps):
    """Walks a plan on shapes only, compiling every kernel it meets (forward and backward)."""

    def __init__(self, params, dropout_key, run_new: bool = False):
        self.params, self.dropout_key, self.run_new = params, dropout_key, run_new

    def _call(self, key, name, xs):
        key, p = _with_params(key, self.params[name] if name is not None else {})
        return _kernel(key, p, tuple(xs), self.run_new).out


class _CensusOps(_KernelOps):
    """Walks a plan on shapes only, compiling nothing: every kernel signature it meets goes
    into `into` (a `census.Census`), which also gives each op's output shape."""

    def __init__(self, params, dropout_key, into):
        self.params, self.dropout_key, self.into = params, dropout_key, into

    def _call(self, key, name, xs):
        key, p = _with_params(key, self.params[name] if name is not None else {})
        return self.into.kernel(key, p, tuple(xs))


def output_shape(key, p, xs):
    """The abstract output of the kernel `key` at these (abstract) arguments, by shape
    inference alone (no lowering or compiling). The tier does not change shapes."""
    return jax.eval_shape(functools.partial(_apply, key + (False,)), p, xs)[0]


def ensure_compiled(key, p, xs) -> None:
    """Compiles (or loads from the kernel store) the programs of one kernel signature, as a
    network's forward pass would; `census.Census` replays its signatures with it."""
    _kernel(key, p, xs)


def _last_use(sig) -> int:
    e = _COMPILED.get(sig)
    return -1 if e is None else e.last


class _Programs:
    """The compiled forward and backward programs of one kernel signature.

    last: the forward-pass clock (`_CLOCK`) when a pass or a precompile last asked for them,
    for least-recently-used eviction (`Executor.maybe_evict`)."""
    __slots__ = ("fwd", "bwd", "acc", "out", "uses", "tier", "last")

    def __init__(self, fwd, bwd, out, tier):
        self.fwd, self.bwd, self.out, self.uses, self.tier = fwd, bwd, out, 0, tier
        self.acc = None           # sums two cotangents of the output (a value with several consumers)
        self.last = _CLOCK[0]


_COMPILED: Dict[Any, _Programs] = {}      # kernel signature -> its programs
_ACC: Dict[Any, Any] = {}                 # output signature -> compiled cotangent sum
_CLOCK = [0]                              # forward passes started in this process
_NEW_PROGRAMS = [0]                       # programs compiled since the last mapping count


def _compile_kernel(key, p, xs, tier: int) -> _Programs:
    with shift_add_depthwise(tier == 1):
        fwd, bwd, (out, _) = _kernel_programs(key + (tier == 1,), p, xs, _kernel_options(tier))
    return _Programs(fwd, bwd, out, tier)


def _kernel(key, p, xs, run_new: bool = False) -> _Programs:
    """The compiled forward and backward programs of one op at these shapes.

    Programs are compiled ahead of time (`lower().compile()`) and called directly: a jit
    call would trace the op again before finding the program in XLA's cache, and tracing
    is what costs time (and holds the GIL) when a precompile thread runs alongside.
    run_new: run programs new to this process once on zeros (`run_once`).
    """
    sig = (key, signature((p, xs)))
    e = _COMPILED.get(sig)
    if e is None:
        p, xs = abstract(p), abstract(xs)
        e = _compile_kernel(key, p, xs, _first_tier())
        if run_new:
            run_once(e.fwd, e.bwd, (p, xs))
        asig = signature(e.out)
        if asig not in _ACC:
            _ACC[asig] = kernel_store.compile_stored(("accumulate",), _accumulate, e.out, e.out)[0]
            _NEW_PROGRAMS[0] += 1
        e.acc = _ACC[asig]
        _COMPILED[sig] = e
        _NEW_PROGRAMS[0] += 2                       # forward, backward
    e.last = _CLOCK[0]
    return e


def run_once(fwd, bwd, args) -> bool:
    """Runs a forward/backward program pair once on zeros of `args`' shapes (abstract).

    A program's first execution in a process costs 3-5x its later ones (measured per op on
    the 2-core CPU: a network's first forward 0.29 s, later ones 0.10 s, every op slower
    in proportion to its size), and in a stream of new architectures every step runs
    programs for the first time. Running them once where they were loaded or compiled (the
    precompile thread, one step ahead) takes that cost off the training thread. The
    results are thrown away: programs are pure, so nothing of the step changes.
    Returns False where skipped: arguments on several devices, or of a dtype that cannot be
    made with numpy (typed PRNG keys)."""
    leaves = jax.tree_util.tree_leaves(args)
    if any(placement(a) is not None or not isinstance(a.dtype, np.dtype) for a in leaves):
        return False
    zeros = lambda t: jax.tree_util.tree_map(lambda a: np.zeros(a.shape, a.dtype), t)
    out, res = fwd(*zeros(args))
    jax.block_until_ready(bwd(res, zeros(out)))
    return True


def _used(sig_key, p, xs, e: _Programs):
    """Counts a forward pass using this kernel; the `HOT_USES`-th queues it for full optimisation."""
    e.uses += 1
    if e.uses == HOT_USES and e.tier == 0 and _upgrades():
        # jax's config is per thread where set by a context (enable_x64): carry it along
        _upgrader().put((sig_key, abstract(p), abstract(xs), bool(jax.config.read("jax_enable_x64"))))


class _Upgrader(threading.Thread):
    """Recompiles hot kernels with full optimisation, one at a time, in the background."""

    def __init__(self):
        super().__init__(daemon=True, name="ghn_jax-kernel-upgrade")
        self.queue = queue.Queue()

    def put(self, item):
        self.queue.put(item)

    def stop(self):
        """Drops queued upgrades and waits for the one compiling (a compile cut short by
        interpreter exit aborts the process)."""
        try:
            while True:
                self.queue.get_nowait()
                self.queue.task_done()
        except queue.Empty:
            pass
        self.queue.put(None)
        self.join(timeout=60)

    def run(self):
        while True:
            item = self.queue.get()
            if item is None:
                self.queue.task_done()
                return
            key, p, xs, x64 = item
            try:
                sig = (key, signature((p, xs)))
                if sig in _COMPILED:                   # not evicted meanwhile
                    with jax.enable_x64(x64):
                        e = _compile_kernel(key, p, xs, 1)
                    e.uses = HOT_USES
                    old = _COMPILED.get(sig)
                    e.acc = old.acc if old is not None else _accumulate
                    _COMPILED[sig] = e
            except Exception as e:                     # keep the tier-0 program; never kill training
                logging.getLogger(__name__).warning("kernel %s: optimised recompile failed, keeping the "
                                                    "unoptimised program: %r", key[:2], e)
            finally:
                self.queue.task_done()


_UPGRADER: List[_Upgrader] = []
_UPGRADER_LOCK = threading.Lock()


def _upgrader() -> _Upgrader:
    with _UPGRADER_LOCK:
        if not _UPGRADER:
            _UPGRADER.append(_Upgrader())
            _UPGRADER[0].start()
            atexit.register(_UPGRADER[0].stop)
        return _UPGRADER[0]


def wait_for_upgrades():
    """Blocks until every queued kernel upgrade has compiled (tests, benchmarks)."""
    if _UPGRADER:
        _UPGRADER[0].queue.join()


def signature(tree) -> Tuple:
    """Hashable (structure, shapes, dtypes) of a pytree of arrays or ShapeDtypeStructs."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((tuple(a.shape), str(a.dtype), placement(a)) for a in leaves)


def _with_params(key, p):
    """Raw parameters put their builder into the kernel key and pass their blocks."""
    if isinstance(p, Raw):
        return key + (p.builder,), p.blocks
    return key, p


def abstract(tree):
    """ShapeDtypeStructs of a pytree of arrays (Raw parameters keep their builder)."""
    def leaf(a):
        if isinstance(a, Raw):
            return Raw(a.builder, abstract(a.blocks))
        return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=placement(a))
    return jax.tree_util.tree_map(leaf, tree, is_leaf=lambda a: isinstance(a, Raw))


def _map_count() -> Optional[int]:
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


class Executor:
    """Runs DeepNets networks op by op with cached kernels; gradients by a reverse tape walk.

        ex = Executor()
        logits, tape = ex.forward(plan, params, images)       # params: {module name: subtree}
        grads, g_images = ex.backward(tape, g_logits)         # same structure as params
    """

    # Every XLA:CPU executable maps its code in its own pages (at least ~12 mappings, more
    # for larger kernels); a few thousand kernels exhaust the default vm.max_map_count
    # (65530) and LLVM aborts the process ("Cannot allocate memory"). Past `max_maps`
    # mappings the least recently used kernels are dropped (see `maybe_evict`).
    max_maps = 40_000
    # Reading /proc/self/maps costs ~1 ms per thousand mappings; it is only read once this
    # many programs have been compiled since the last reading (at most ~50 mappings each,
    # well within the headroom between max_maps and the kernel's limit).
    check_every = 150

    def maybe_evict(self) -> int:
        """Frees compiled programs when the process holds more than `max_maps` memory
        mappings (Linux; elsewhere never). Returns 0 (nothing done), 1 (the least recently
        used half of the kernels dropped: those of recent passes and of the precompiled next
        step stay) or 2 (every kernel and jax's own caches dropped, because the kept half
        alone fills the mappings). A dropped kernel comes back from the kernel store (or is
        compiled again) if a later network needs it; the programs a tape holds stay alive
        until its backward pass."""
        if _NEW_PROGRAMS[0] < self.check_every:
            return 0
        _NEW_PROGRAMS[0] = 0
        n = _map_count()
        if n is None or n <= self.max_maps:
            return 0
        # jax's own caches are left alone here: they hold the few small programs called
        # through jit (optimizer update, loss, block slicing), which every step needs again.
        _ACC.clear()
        # Signatures only: a list of the entries would keep the dropped programs alive
        # through the recount below, which then found the mappings unchanged and dropped
        # everything, jax's caches included (every eviction of the 200-step benchmarks
        # until 2026-12-03 did, and the loss, optimiser and PRNG programs were compiled
        # again after each). A snapshot, since the precompile thread adds kernels.
        by_age = sorted(list(_COMPILED), key=_last_use)
        for sig in by_age[: len(by_age) // 2]:
            _COMPILED.pop(sig, None)
        gc.collect()
        n = _map_count()
        if n is not None and n <= self.max_maps * 3 // 4:
            return 1
        jax.clear_caches()
        _COMPILED.clear()
        _ACC.clear()
        gc.collect()
        return 2

    def forward(self, plan: NetPlan, params: Dict[str, Any], x: jax.Array,
                dropout_key: Optional[jax.Array] = None, record: bool = True):
        """Logits (B, num_classes) float32 and the tape. x: (B, H, W, 3) NHWC images."""
        _CLOCK[0] += 1
        tape = Tape()
        v = _V(x, tape.new_value())
        tape.input_id = v.i
        out = run_plan(plan, v, _TapeOps(params, tape, dropout_key, record))
        tape.output_id = out.i
        return out.a, tape

    def precompile(self, plan: NetPlan, params: Dict[str, Any], x, dropout_key=None, run_once: bool = False,
                   census=None):
        """Compiles every kernel `forward`/`backward` will need for this network, from shapes
        alone (params, x and dropout_key may be arrays or jax.ShapeDtypeStructs); returns
        the abstract logits.

        Safe to call from a background thread one step ahead: jit's caches are shared, so
        compilation overlaps the current step's compute instead of stalling the next one.
        run_once: also run each kernel new to this process once on zeros, which takes its
        costly first execution off the step (`run_once`); off where only the store is filled.
        census: a `census.Census` to record the kernel signatures in instead of compiling
        them (one device only: the store keeps no sharded programs).
        """
        key = None if dropout_key is None else abstract(dropout_key)
        ops = (_AbstractOps(abstract(params), key, run_once) if census is None
               else _CensusOps(abstract(params), key, census))
        return run_plan(plan, abstract(x), ops)

    def backward(self, tape: Tape, g_out: jax.Array, norm_ct: float = 0.0):
        """(grads {module name: subtree, or tuple of raw block cotangents}, image cotangent).

        norm_ct: d loss / d (each raw op's parameter norm), e.g. the regulariser's lambda / m.
        """
        cots: Dict[int, Any] = {tape.output_id: g_out}
        grads: Dict[str, Any] = {}
        zero = jnp.zeros((), jnp.float32)
        nct = jnp.asarray(norm_ct, jnp.float32)
        for entry in reversed(tape.entries):
            g = cots.pop(entry.out, None)
            if g is None:
                continue                      # the value does not reach the loss
            gp, gxs = pacing.step(entry.bwd(entry.vjp, (g, nct if entry.raw else zero)))
            if entry.name is not None:
                grads[entry.name] = gp
            for i, gx in zip(entry.ins, gxs):
                if i < 0:
                    continue                  # an rng key
                cots[i] = gx if i not in cots else tape.acc.get(i, _accumulate)(cots[i], gx)
        return grads, cots.get(tape.input_id)


# ------------------------------------------------------------------------------------------
# Losses and compile accounting
# ------------------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("label_smoothing",))
def cross_entropy_and_grad(logits, labels, label_smoothing: float = 0.0):
    """Mean CE with label smoothing (torch's definition) and its gradient w.r.t. logits."""
    def ce(z):
        k = z.shape[-1]
        logp = jax.nn.log_softmax(z.astype(jnp.float32), -1)
        onehot = jax.nn.one_hot(labels, k)
        target = onehot * (1.0 - label_smoothing) + label_smoothing / k
        return -jnp.mean(jnp.sum(target * logp, -1))
    return jax.value_and_grad(ce)(logits)


class CompileCounter:
    """Counts XLA compilations and their seconds (jax.monitoring events) while active.

    `count`/`seconds` cover every thread; `stall_count`/`stall_seconds` only the thread that
    entered the context, i.e. compilations the step had to wait for.
    """

    def __init__(self, always: bool = False):
        self.count, self.seconds = 0, 0.0
        self.stall_count, self.stall_seconds = 0, 0.0
        self._on, self._always, self._owner = False, always, None
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **_):
        if (self._on or self._always) and event == "/jax/core/compile/backend_compile_duration":
            self.count += 1
            self.seconds += duration
            if threading.get_ident() == self._owner:
                self.stall_count += 1
                self.stall_seconds += duration

    def __enter__(self):
        self._on, self._owner = True, threading.get_ident()
        return self

    def __exit__(self, *exc):
        self._on = False
