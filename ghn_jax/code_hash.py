"""A hash of ghn_jax's own source, so that on-disk caches never outlive the code that made them."""
import functools
import glob
import hashlib
import os


@functools.lru_cache(maxsize=None)
def code_hash(*subpackages: str) -> str:
    """16 hex digits over the .py files of the given ghn_jax subpackages (sorted, content only)."""
    root = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    for sub in subpackages:
        for path in sorted(glob.glob(os.path.join(root, sub, "*.py"))):
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()[:16]
