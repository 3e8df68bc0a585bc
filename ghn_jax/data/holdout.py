"""The reference's held-out split: the last K images of every class of `train` (§4.4).

GHN training (ghn3 `image_loader`, K = 50 on ImageNet) trains on train minus the last 50
images of each class and keeps those 50/class as validation, "last" in torchvision
ImageFolder order: classes in sorted folder order, files sorted by name in each class.

TFDS imagenet2012 keeps that order recoverable: labels follow the sorted synset ids (the
folder names) and `file_name` is the file's name in its class folder. So for datasets with
a `file_name` feature the split is exact. Datasets without one are ordered by label, then
by TFDS record index -- an approximation of a folder order that does not exist there.

Computing the split reads every record of `train` once (images are not decoded when the
source can skip decoding). The result is cached under $GHN_JAX_CACHE/splits (default
~/.cache/ghn_jax/splits), keyed by dataset, version, split, size and data_dir.
"""
import hashlib
import os
from typing import Callable, Sequence, Tuple

import numpy as np

_CHUNK = 1024


def cache_root() -> str:
    # Same root as ghn_jax.ghn.hub.cache_dir (not imported: that pulls in the model code).
    return os.path.join(os.environ.get("GHN_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "ghn_jax")),
                        "splits")


def folder_order(labels: np.ndarray, names: Sequence) -> np.ndarray:
    """int64 (N,) record indices in ImageFolder order: by label, then name (or index if names is None)."""
    labels = np.asarray(labels, np.int64)
    if names is None:
        return np.lexsort((np.arange(len(labels)), labels)).astype(np.int64)
    keys = np.asarray(names, dtype=object).astype(str)
    return np.lexsort((keys, labels)).astype(np.int64)


def split_last_k(labels: np.ndarray, order: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """(kept, held_out) int64 record indices, both in folder order; held_out = last k per class."""
    lab = np.asarray(labels, np.int64)[order]
    # Rank from the end of each class run: the run is contiguous because order sorts by label.
    n = len(lab)
    run_end = np.r_[np.flatnonzero(lab[1:] != lab[:-1]), n - 1]
    end_of = np.repeat(run_end, np.diff(np.r_[-1, run_end]))
    held = (end_of - np.arange(n)) < k
    return order[~held], order[held]


def _read_labels_and_names(open_source: Callable, n: int):
    """Reads label (and file_name if present) of every record of a TFDS data source."""
    src = open_source(skip_image=True)
    try:
        first = src[0]
    except Exception:
        # Mocked sources (tfds.testing) cannot skip decoding without TensorFlow.
        src = open_source(skip_image=False)
        first = src[0]
    has_names = "file_name" in first
    labels = np.empty(n, np.int64)
    names = [] if has_names else None
    batched = True
    for start in range(0, n, _CHUNK):
        keys = list(range(start, min(n, start + _CHUNK)))
        exs = None
        if batched:
            try:
                exs = src.__getitems__(keys)   # one batched read: far fewer round trips on GCS
            except (AttributeError, TypeError):
                batched = False                # (mocked sources have no working batched read)
        if exs is None:
            exs = [src[i] for i in keys]
        labels[start:start + len(keys)] = [int(e["label"]) for e in exs]
        if has_names:
            names.extend(e["file_name"].decode() if isinstance(e["file_name"], bytes) else str(e["file_name"])
                         for e in exs)
    return labels, names


def holdout_indices(open_source: Callable, key: str, n: int, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """(kept, held_out) indices of the base split; cached.

    open_source(skip_image: bool) opens the base split; key identifies it for the cache.
    """
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    path = os.path.join(cache_root(), f"{digest}-n{n}-last{k}.npz")
    if os.path.exists(path):
        with np.load(path) as f:
            return f["kept"], f["held_out"]
    labels, names = _read_labels_and_names(open_source, n)
    kept, held = split_last_k(labels, folder_order(labels, names), k)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, kept=kept, held_out=held, key=np.asarray(key))
    os.replace(tmp, path)   # atomic: concurrent processes write identical files
    return kept, held
