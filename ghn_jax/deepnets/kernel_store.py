"""Compiled training programs kept on disk, keyed by the executor's own signatures.

The executor compiles one forward and one backward program per kernel signature (op,
parameter shaping, shapes), and the meta-step one pair per GHN padding bucket
(docs/deepnets.md, "Executor"). The signature universe of a DeepNets split is finite (about
2,400 kernel signatures for 4,000 train-split networks at 32 px, 0.17 new per network by
then), but reaching it costs ~0.1-0.4 s of tracing, lowering and compiling per signature,
in every process. JAX's persistent compilation cache removes only the compile: its key is a
hash of the lowered program, so each process still traces and lowers every kernel.

Here a compiled program is serialised (`jax.experimental.serialize_executable`) under a key
computed from what determines it *before* tracing: the caller's signature (a repr without
memory addresses), the compile options, the backend and device kind, the CPU's instruction
set, the jax/jaxlib versions and a hash of ghn_jax's deepnets, ghn and graph code. A later process,
a restarted run or a run that a warm-up filled (`benchmarks/train_step.py --warm-nets`)
loads it in ~2 ms. The loaded program is the same binary, so results are bit-identical to
compiling it afresh.

Location: `$GHN_JAX_KERNEL_CACHE` if set (a directory; "0" turns the store off), else
`$GHN_JAX_CACHE/kernels`. Only programs whose arguments all live on the default device are
stored (sharded programs depend on the mesh). A damaged, truncated or incompatible entry is
compiled again and rewritten; a folder that cannot be written only costs the saving.
Entries are grouped by environment (jax version, code hash, ...): folders of environments
no longer in use can be deleted whole; nothing is deleted automatically.
"""
import contextlib
import functools
import hashlib
import logging
import os
import pickle
import threading
from typing import Any, Callable, Optional, Sequence, Tuple

import jax
import numpy as np

_LOG = logging.getLogger(__name__)
_FORMAT = 3
_OVERRIDE: list = []          # set_directory(): [path or None]
_STATS = {"loaded": 0, "saved": 0, "compiled": 0, "rebuilt": 0}
_LOCK = threading.Lock()


def directory() -> Optional[str]:
    """The store's folder, or None when it is off."""
    if _OVERRIDE:
        return _OVERRIDE[0]
    env = os.environ.get("GHN_JAX_KERNEL_CACHE")
    if env is not None:
        return None if env in ("", "0", "false", "False") else env
    from ghn_jax.ghn.hub import cache_dir
    return os.path.join(cache_dir(), "kernels")


def set_directory(path: Optional[str]) -> None:
    """Overrides the environment for this process (None: off). `reset_directory()` undoes it."""
    _OVERRIDE[:] = [path]


def reset_directory() -> None:
    _OVERRIDE[:] = []


def stats() -> dict:
    """Counts since start: programs loaded, saved, compiled (stored or not), rebuilt (bad entry)."""
    return dict(_STATS)


@functools.lru_cache(None)
def _environment() -> str:
    """Everything outside the signature that changes the binary."""
    from ghn_jax.code_hash import code_hash
    import jaxlib
    dev = jax.devices()[0]
    flags = ""
    if jax.default_backend() == "cpu":
        # XLA:CPU compiles for the host's instruction set: an executable from another CPU
        # model could use instructions this one lacks.
        try:
            with open("/proc/cpuinfo") as f:
                flags = next((l for l in f if l.startswith("flags")), "")
        except OSError:
            import platform
            flags = platform.processor()
    # The runtime's device count too: programs for one device of an 8-device host runtime and of
    # a one-device runtime are kept apart.
    topology = (jax.process_count(), jax.process_index(), jax.device_count(), jax.local_device_count())
    return repr((_FORMAT, jax.__version__, jaxlib.__version__, jax.default_backend(), dev.device_kind,
                 hashlib.sha256(flags.encode()).hexdigest()[:16], code_hash("deepnets", "ghn", "graph"), topology))


def store_key(parts: Any, compiler_options) -> Optional[str]:
    """File-name-safe key for a program, or None when `parts` has no stable text form (a
    repr with a memory address would never match in another process)."""
    text = repr((parts, sorted((compiler_options or {}).items()), bool(jax.config.read("jax_enable_x64"))))
    if " at 0x" in text:
        return None
    return hashlib.sha256((text + _environment()).encode()).hexdigest()[:32]


def _path(key: str) -> Optional[str]:
    """<store>/<environment hash>/<2 hex>/<key>.xla: a jax upgrade or a code change starts a
    new environment folder, and the stale ones can be deleted whole."""
    folder = directory()
    if folder is None:
        return None
    env = hashlib.sha256(_environment().encode()).hexdigest()[:16]
    return os.path.join(folder, env, key[:2], key + ".xla")


def _load(path: str):
    from jax.experimental import serialize_executable as se
    with open(path, "rb") as f:
        fmt, blob, in_tree, out_tree, out_avals = pickle.load(f)
    if fmt != _FORMAT:
        raise ValueError(f"format {fmt}")
    compiled = se.deserialize_and_load(blob, in_tree, out_tree)
    out = jax.tree_util.tree_unflatten(out_tree, [jax.ShapeDtypeStruct(s, d) for s, d in out_avals])
    return compiled, out


def _save(path: str, compiled, out) -> None:
    from jax.experimental import serialize_executable as se
    from ghn_jax.cli import atomic_write
    try:
        blob, in_tree, out_tree = se.serialize(compiled)
        out_avals = [(tuple(a.shape), np.dtype(a.dtype)) for a in jax.tree_util.tree_leaves(out)]   # float0 has no name
        data = pickle.dumps((_FORMAT, blob, in_tree, out_tree, out_avals), protocol=pickle.HIGHEST_PROTOCOL)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_write(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
        with _LOCK:
            _STATS["saved"] += 1
    except Exception as e:        # an unwritable folder, or a program that cannot be serialised
        _LOG.debug("kernel store: not saved (%r)", e)


_BYPASS = threading.local()       # .on: this thread's compiles skip jax's persistent cache


def _install_bypass() -> bool:
    """Wraps jax's `is_cache_used` so that a thread can compile past the persistent cache.
    jax decides once per process whether the cache is in use, so its own (thread-local)
    `enable_compilation_cache` setting no longer applies after the first compile."""
    try:
        from jax._src import compilation_cache as cc
        original = cc.is_cache_used
    except (ImportError, AttributeError):
        return False
    if not getattr(original, "_ghn_jax_bypass", False):
        def is_cache_used(backend):
            return False if getattr(_BYPASS, "on", False) else original(backend)
        is_cache_used._ghn_jax_bypass = True
        cc.is_cache_used = is_cache_used
    return True


@contextlib.contextmanager
def _fresh_compile():
    """jax's persistent compilation cache off for this thread's compiles. An XLA:CPU
    executable that jax loaded from that cache serialises without its object code: stored,
    it loads but fails at its first call ("Function ... not found")."""
    from jax._src import config as jax_config
    old = getattr(_BYPASS, "on", False)
    _BYPASS.on = True
    try:
        with jax_config.enable_compilation_cache(False):
            yield
    finally:
        _BYPASS.on = old


def compile_stored(parts: Any, jitted: Callable, *args, compiler_options=None, **kwargs) -> Tuple[Any, Any]:
    """(compiled program, abstract outputs) like `executor.compile_abstract`, through the store.

    parts: a hashable description of everything that determines the program besides the
    shapes of `args` (which are added here), e.g. ("kernel", op key, tier).
    """
    from ghn_jax.deepnets.executor import compile_abstract, shardings_of, signature
    key = path = None
    # Sharded programs depend on the mesh. Multi-process runtimes are left out altogether: a
    # program deserialised there failed at its first call, even one compiled in the same kind
    # of runtime ("CopyArrays only supports destination device list of the same size").
    if directory() is not None and jax.process_count() == 1 and shardings_of(args) is None:
        key = store_key((parts, signature(args)), compiler_options)
        path = None if key is None else _path(key)
    if path is not None and not _install_bypass() and jax.config.jax_compilation_cache_dir:
        path = None               # cannot compile past jax's cache here: such programs are not kept
    if path is not None and os.path.exists(path):
        try:
            out = _load(path)
            with _LOCK:
                _STATS["loaded"] += 1
            return out
        except Exception as e:     # damaged, truncated or written by an incompatible jax: rebuilt
            _LOG.warning("kernel store: %s unreadable (%r); compiling it again", path, e)
            with _LOCK:
                _STATS["rebuilt"] += 1
    with _fresh_compile() if path is not None else contextlib.nullcontext():
        compiled, out = compile_abstract(jitted, *args, compiler_options=compiler_options, **kwargs)
    with _LOCK:
        _STATS["compiled"] += 1
    if path is not None:
        _save(path, compiled, out)
    return compiled, out


# ------------------------------------------------------------------------------------------
# Forward / backward pairs whose residuals are plain arrays (so that both programs serialise)
# ------------------------------------------------------------------------------------------

def split_vjp(fn: Callable, trees: list, n_diff: Optional[int] = None) -> Callable:
    """fn(*args) -> out  =>  fwd(*args) -> (out, residual leaves), differentiating the first
    n_diff args (all when None). The residuals' structure (a static VJP closure) is appended
    to `trees` while tracing."""
    def fwd(*args):
        k = len(args) if n_diff is None else n_diff
        out, vjp = jax.vjp(lambda *d: fn(*d, *args[k:]), *args[:k])
        leaves, tree = jax.tree_util.tree_flatten(vjp)
        trees.append(tree)
        return out, leaves
    return fwd


def apply_vjp(tree, post: Callable = lambda cts: cts) -> Callable:
    """bwd(residual leaves, output cotangent) -> post(cotangents of fn's arguments)."""
    def bwd(leaves, ct):
        return post(jax.tree_util.tree_unflatten(tree, leaves)(ct))
    return bwd


def vjp_programs(parts: Any, fn: Callable, args: Sequence[Any], compiler_options=None,
                 post: Callable = lambda cts: cts, fwd_wrap: Callable = lambda f: f, n_diff: Optional[int] = None):
    """(fwd, bwd, out, residuals): compiled fwd(*args) -> (out, residual leaves) and
    bwd(residual leaves, out cotangent) -> post(cotangents of the first n_diff args, all by
    default), through the store. args are abstract (ShapeDtypeStructs); fwd_wrap(f) may
    constrain the forward's outputs."""
    from ghn_jax.deepnets.executor import signature
    trees: list = []
    fwd = fwd_wrap(split_vjp(fn, trees, n_diff))
    fwd_c, (out, res) = compile_stored(("fwd", parts), jax.jit(fwd), *args, compiler_options=compiler_options)

    def bwd(leaves, ct):
        if not trees:         # the forward came from the store: trace it (no compile) for the structure
            jax.eval_shape(fwd, *args)
        return apply_vjp(trees[0], post)(leaves, ct)
    # The backward depends on the forward's arguments, not only on what it receives: the
    # VJP closure's static part (e.g. the spatial size a global pooling averaged over).
    bwd_c, _ = compile_stored(("bwd", parts, signature(tuple(args))), jax.jit(bwd), res, out,
                              compiler_options=compiler_options)
    return fwd_c, bwd_c, out, res

