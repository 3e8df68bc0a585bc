"""Shared plumbing of the command-line entry points."""
import contextlib
import os
import sys
import tempfile

from ghn_jax.errors import GhnError


def run_cli(main, argv=None) -> int:
    """Runs `main`; a GhnError (bad input) becomes one line on stderr and exit code 2."""
    try:
        return main(argv)
    except GhnError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def atomic_write(path: str):
    """Yields a temporary path next to `path`; renamed onto `path` only on success.

    A failed or interrupted write leaves no partial file behind.
    """
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise GhnError(f"cannot write '{path}': folder '{folder}' does not exist")
    if not os.access(folder, os.W_OK):
        raise GhnError(f"cannot write '{path}': folder '{folder}' is not writable")
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def enable_compilation_cache(path: str = None) -> str:
    """Turns on JAX's persistent compilation cache (GHN_JAX_CACHE/jax by default).

    A fresh process then reuses the compiled GHN programs of earlier runs instead of
    compiling again.
    """
    import jax
    from ghn_jax.ghn.hub import cache_dir
    path = path or os.path.join(cache_dir(), "jax")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
