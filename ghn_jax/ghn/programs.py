"""Serialised GHN programs: a fresh process skips tracing and lowering.

A cold predict spends most of its time making programs: tracing the GHN (Flax modules)
and lowering it to StableHLO, then compiling. JAX's persistent compilation cache
(`ghn_jax.cli.enable_compilation_cache`) only removes the compile: its key is computed from
the lowered program, so every process still traces and lowers. Here each program is kept
as a `jax.export` artifact under `$GHN_JAX_CACHE/programs`, keyed by everything that
determines it (the kind of program, shapes and dtypes of its arguments, static settings,
backend, the jax version and a hash of ghn_jax's GHN code); a later process deserialises
it (milliseconds) and calls it.

Every call of a program goes through its exported form, also in the process that made it,
so a given input gives the same numbers whether the artifact was just made or read back.
Weights are arguments, never constants: one artifact serves every GHN of a configuration.
A damaged or incompatible artifact is rebuilt; the cache is an optimisation only, and a
folder that cannot be written only costs the saving.
"""
import contextlib
import hashlib
import json
import os
import threading
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import jax
import numpy as np

_MEMORY: Dict[str, Callable] = {}
_LOCK = threading.Lock()


def code_hash() -> str:
    """Hash of the code a program is built from (ghn, graph and zoo packages)."""
    from ghn_jax.code_hash import code_hash as source_hash
    return source_hash("ghn", "graph", "zoo")


def directory() -> Optional[str]:
    """$GHN_JAX_CACHE/programs; None when GHN_JAX_PROGRAM_CACHE=0 turns the disk cache off."""
    if os.environ.get("GHN_JAX_PROGRAM_CACHE", "1") in ("0", "false", "False"):
        return None
    from ghn_jax.ghn.hub import cache_dir
    return os.path.join(cache_dir(), "programs")


def _avals(args) -> list:
    leaves, tree = jax.tree_util.tree_flatten(args)
    return [str(tree)] + [[list(np.shape(x)), str(getattr(x, "dtype", np.asarray(x).dtype))] for x in leaves]


def program_key(kind: str, args: Sequence[Any], static: Any) -> str:
    """A file-name-safe key: kind + hash of (argument avals, static settings, backend, versions)."""
    spec = {"kind": kind, "args": _avals(tuple(args)), "static": static, "backend": jax.default_backend(),
            "jax": jax.__version__, "code": code_hash()}
    return f"{kind}-{hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:24]}"


def _load(path: str):
    from jax import export
    try:
        with open(path, "rb") as f:
            blob = f.read()
        return export.deserialize(bytearray(blob)), blob
    except Exception:          # damaged, truncated or from an incompatible jax: rebuilt
        return None, None


def _save(path: str, blob: bytes) -> None:
    from ghn_jax.cli import atomic_write
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_write(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(blob)
    except Exception:          # an unwritable cache costs the saving, nothing else
        pass


@contextlib.contextmanager
def _no_lapack_setup():
    """Lowering an exported call on CPU first sets up jaxlib's LAPACK kernels, which imports
    scipy.linalg (~0.3 s, more than the rest of a cached predict). A program without custom
    calls never reaches LAPACK, so that step is skipped for it. Private jax API: if it
    moves, nothing is skipped."""
    try:
        from jax._src.export import _export
        original = _export._ensure_backends_initialized
    except (ImportError, AttributeError):
        yield
        return
    _export._ensure_backends_initialized = lambda platforms: None
    try:
        yield
    finally:
        _export._ensure_backends_initialized = original


def _callable(exported, blob: Optional[bytes], compiler_options) -> Callable:
    fn = jax.jit(exported.call, compiler_options=compiler_options)
    if jax.default_backend() != "cpu" or blob is None or b"custom_call" in blob:
        return fn
    lowered = []

    def call(*args):
        if lowered:            # lowered once per program: its argument shapes are fixed
            return fn(*args)
        with _no_lapack_setup():
            out = fn(*args)
        lowered.append(True)
        return out
    return call


def get(key: str, build: Callable[[], Tuple[Callable, Tuple[Any, ...]]],
        compiler_options: Optional[Dict[str, Any]] = None) -> Callable:
    """The jitted callable of program `key`.

    `build()` is called only when neither memory nor disk has it, and returns
    (jitted function, example arguments): the function is exported for those argument
    shapes (tracing and lowering once), saved, and called through its exported form.
    """
    fn = _MEMORY.get(key)
    if fn is not None:
        return fn
    with _LOCK:
        fn = _MEMORY.get(key)
        if fn is not None:
            return fn
        from jax import export
        folder = directory()
        path = os.path.join(folder, key + ".jaxexport") if folder else None
        exported, blob = _load(path) if path and os.path.exists(path) else (None, None)
        if exported is None:
            jitted, example = build()
            exported = export.export(jitted, platforms=[jax.default_backend()])(*example)
            try:
                blob = bytes(exported.serialize())
            except ImportError:           # no flatbuffers: programs are not kept, still correct
                blob = None
            if path and blob is not None:
                _save(path, blob)
        fn = _callable(exported, blob, compiler_options)
        _MEMORY[key] = fn
        return fn
