"""Top-k accuracy as the reference counts it (ppuda `accuracy` + `AvgrageMeter`).

A sample is correct at k when its label is among the k largest logits. Batch accuracies
are averaged weighted by batch size, i.e. correct / total over the whole split.
"""
from typing import Dict, Optional, Sequence

import numpy as np
import jax
import jax.numpy as jnp


def topk_correct(logits: jnp.ndarray, labels: jnp.ndarray, ks: Sequence[int] = (1, 5),
                 mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
    """Number of correct samples at each k (float32, shape (len(ks),)); rows with mask False
    do not count. k is capped at the number of classes."""
    num_classes = logits.shape[-1]
    kmax = min(max(ks), num_classes)
    _, top = jax.lax.top_k(logits.astype(jnp.float32), kmax)          # (B, kmax), best first
    hit = top == labels[:, None].astype(top.dtype)
    valid = jnp.ones(labels.shape, bool) if mask is None else mask.astype(bool)
    return jnp.stack([jnp.sum(jnp.any(hit[:, :min(k, num_classes)], axis=1) & valid) for k in ks]).astype(jnp.float32)


class Accuracy:
    """Running top-k counts; `result()` -> {'top1': %, 'top5': %, 'n_images': n}."""

    def __init__(self, ks: Sequence[int] = (1, 5)):
        self.ks = tuple(ks)
        self.correct = np.zeros(len(self.ks), np.float64)
        self.count = 0

    def update(self, correct, count: int) -> None:
        self.correct += np.asarray(correct, np.float64)
        self.count += int(count)

    def result(self) -> Dict[str, float]:
        out = {f"top{k}": (100.0 * c / self.count if self.count else float("nan"))
               for k, c in zip(self.ks, self.correct)}
        out["n_images"] = self.count
        return out


def mean_std(values: Sequence[float]):
    """Mean and (population) std, as the reference's AvgrageMeter('std') reports over models."""
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std())
