"""grain pipelines: an infinite, checkpointable training iterator and finite eval batches.

Training stream (global, the same for every process count):
    position p = 0, 1, 2, ... -> epoch e = p // N, record = shuffle(seed, e)[p % N]
    image = train_transform(record, rng(seed, p))          # a pure function of (seed, p)
    global batch s = positions [s*B, (s+1)*B)               # batches run across epoch ends
Process i of P yields, as its batch s, positions [s*B + i*B/P, s*B + (i+1)*B/P): the
concatenation over processes of batch s is global batch s whatever P, the number of
worker processes, or the number of threads.

data_cfg (ml_collections.ConfigDict; extra fields are ignored):
    name, data_dir (None), train_split, eval_split, image_size, batch_size (global),
    colour_jitter (bool), num_workers (0 = in-process), prefetch (batches buffered, 0 = none);
    optional: transform ('imagenet' | 'cifar', default per dataset), num_threads
    (threads per process, default = prefetch).
"""
import math
from typing import Any, Dict, Optional

import grain
import numpy as np

from ghn_jax.data import sources
from ghn_jax.data import transforms as T
from ghn_jax.errors import GhnError

Batch = Dict[str, np.ndarray]


def local_batch_size(global_batch: int, process_count: int) -> int:
    """B_local = B // P; every process must carry the same share of every batch."""
    if process_count < 1 or global_batch % process_count:
        raise GhnError(f"batch_size {global_batch} is not divisible by the number of processes "
                       f"{process_count}; choose a multiple of {process_count}")
    return global_batch // process_count


def steps_per_epoch(data_cfg) -> int:
    """ceil(N_train / B), the reference's count (an epoch ends with a partial batch there).

    The stream here never has partial batches: it continues into the next epoch, so the data
    epoch boundary drifts by B - N % B examples per epoch (65 of 1.23M on ImageNet).
    """
    n = sources.num_examples(data_cfg.name, data_cfg.train_split, data_cfg.get("data_dir"))
    return math.ceil(n / data_cfg.batch_size)


def train_iter(data_cfg, seed: int, process_index: int = 0, process_count: int = 1) -> grain.DatasetIterator:
    """Infinite iterator of {'image': float32 (B_local, S, S, 3), 'label': int32 (B_local,)}.

    Reshuffled every epoch. `it.get_state()` is a JSON-serialisable dict and
    `it.set_state(state)` resumes at the same batch (on a new iterator too, built with the
    same data_cfg: the state's layout depends on num_workers). With num_workers > 0, call
    `it.close()` when done to stop the worker processes.
    """
    if not 0 <= process_index < process_count:
        raise GhnError(f"process_index {process_index} is not in [0, {process_count})")
    b_local = local_batch_size(int(data_cfg.batch_size), process_count)
    transform = _train_transform(data_cfg)
    src = sources.source(data_cfg.name, data_cfg.train_split, data_cfg.get("data_dir"))
    if len(src) == 0:
        raise GhnError(f"split {data_cfg.train_split!r} of {data_cfg.name!r} is empty")
    shuffle_seed, augment_seed = _seeds(seed)
    ds = grain.MapDataset.source(src).shuffle(seed=shuffle_seed).repeat()
    ds = ds.random_map(_TrainElement(transform), seed=augment_seed)
    ds = ds.batch(b_local, drop_remainder=True)
    ds = ds[process_index::process_count]
    return iter(_to_iter(ds, data_cfg))


def eval_batches(data_cfg, split: Optional[str] = None, batch_size: Optional[int] = None,
                 process_index: int = 0, process_count: int = 1, shuffle_seed: Optional[int] = None,
                 pad_last: bool = False) -> grain.IterDataset:
    """Finite batches {'image': float32 (b, S, S, 3), 'label': int32 (b,), 'mask': bool (b,)}.

    Iterate it (each iter() starts over). The order is the split's, or a permutation seeded
    by shuffle_seed (the reference evaluates on a seeded shuffled loader, §4.7; torch's
    permutation itself is not reproduced). Every batch but the last has b = batch_size / P.
    The last global batch keeps its r real examples and is not padded to batch_size --
    with batch-statistics BatchNorm (the reference's GHN evaluation) padding would change
    the statistics -- only up to a multiple of P so that processes agree on the shape; so
    it has b = ceil(r / P) with mask False on the padding. pad_last=True pads it to
    batch_size instead (one compiled shape). Padding is zeros with label 0.
    """
    split = split or data_cfg.eval_split
    batch_size = int(batch_size or data_cfg.batch_size)
    if not 0 <= process_index < process_count:
        raise GhnError(f"process_index {process_index} is not in [0, {process_count})")
    local_batch_size(batch_size, process_count)
    transform = _eval_transform(data_cfg)
    elems = grain.MapDataset.source(sources.source(data_cfg.name, split, data_cfg.get("data_dir")))
    if shuffle_seed is not None:
        elems = elems.shuffle(seed=_seeds(shuffle_seed)[0])
    elems = elems.map(_EvalElement(transform))
    n = len(elems)
    batches = grain.MapDataset.range(math.ceil(n / batch_size)).map(
        _EvalBatch(elems, n, batch_size, process_index, process_count, pad_last, transform.output_size))
    return _to_iter(batches, data_cfg)


# ---------------------------------------------------------------------------- internals

def _seeds(seed: int):
    # Independent 32-bit seeds for the shuffle and the augmentation; grain needs < 2**32.
    s = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, 0x6768_6E64]).generate_state(2)
    return int(s[0]), int(s[1])


def _kind_and_size(data_cfg):
    d = sources.defaults(data_cfg.name)
    return data_cfg.get("transform", None) or d.kind, int(data_cfg.get("image_size", None) or d.image_size)


def _train_transform(data_cfg) -> T.TrainTransform:
    kind, size = _kind_and_size(data_cfg)
    return T.train_transform(kind, size, bool(data_cfg.get("colour_jitter", False)))


def _eval_transform(data_cfg) -> T.EvalTransform:
    kind, size = _kind_and_size(data_cfg)
    return T.eval_transform(kind, size)


def _to_iter(ds: grain.MapDataset, data_cfg) -> grain.IterDataset:
    prefetch = int(data_cfg.get("prefetch", 2) or 0)
    threads = int(data_cfg.get("num_threads", None) or prefetch)
    # Elements are whole batches (tens of MB on ImageNet): grain's default buffer of 500
    # elements would hold tens of GB.
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=max(prefetch, threads)))
    workers = int(data_cfg.get("num_workers", 0) or 0)
    if workers > 0:
        _absl_flags_parsed()
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers,
                                                         per_worker_buffer_size=max(1, prefetch)))
    return it


def _absl_flags_parsed() -> None:
    # grain 0.2.18's mp_prefetch reads an absl flag and fails with UnparsedFlagAccessError
    # in programs that do not run absl.app (google/grain#1355); defaults are what we want.
    from absl import flags
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


class _TrainElement:
    """(record, rng) -> {'image': float32 (S, S, 3), 'label': int32 ()}; picklable for workers."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, ex: Dict[str, Any], rng: np.random.Generator) -> Dict[str, Any]:
        return {"image": self.transform(ex["image"], rng), "label": np.int32(ex["label"])}


class _EvalElement:
    def __init__(self, transform):
        self.transform = transform

    def __call__(self, ex: Dict[str, Any]) -> Dict[str, Any]:
        return {"image": self.transform(ex["image"]), "label": np.int32(ex["label"])}


class _EvalBatch:
    """Global batch index s -> this process's share of it (see eval_batches)."""

    def __init__(self, elems, n, batch_size, process_index, process_count, pad_last, image_size):
        self.elems, self.n, self.batch_size = elems, n, batch_size
        self.p, self.P, self.pad_last, self.image_size = process_index, process_count, pad_last, image_size

    def __call__(self, s: int) -> Batch:
        start = s * self.batch_size
        real = min(self.batch_size, self.n - start)
        size = self.batch_size if self.pad_last else math.ceil(real / self.P) * self.P
        local = size // self.P
        pos = start + self.p * local + np.arange(local)
        mask = pos < start + real
        image = np.zeros((local, self.image_size, self.image_size, 3), np.float32)
        label = np.zeros((local,), np.int32)
        for j in np.flatnonzero(mask):
            ex = self.elems[int(pos[j])]
            image[j], label[j] = ex["image"], ex["label"]
        return {"image": image, "label": label, "mask": mask}
