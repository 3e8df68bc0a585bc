"""From node embeddings to target parameters: decode, tile, normalise (§2.5-§2.10).

Everything here works in torch layout ((out, in, kh, kw) / (out, in)), the layout the
GHN was trained in; the tensors are converted to Flax layout only when written.
"""
import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import jax
import jax.numpy as jnp

Shape = Tuple[int, ...]


# ------------------------------------------------------------------------------------------
# Per-node decoding plan
# ------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class NodeTask:
    node: int
    kind: str                 # 'conv' | 'class' | '1d' | 'class_bias'
    target: Shape             # torch-layout target shape
    window: Tuple[Tuple[int, int], Tuple[int, int]] = ((0, 0), (0, 0))   # conv rows, cols
    key_in: int = 0           # in-channels kept from the decoder output (the key's 2nd entry)
    key_out: int = 0          # out-channels kept (the key's 1st entry)
    row: int = 1              # 1-D: decoder row (0 = norm weight, 1 = bias)
    norm_weight: bool = False


def min_sz(n: int, max_n: int) -> int:
    """The reference's key rounding of a channel count (§1.7)."""
    n = min(n, max_n)
    if n % 3 == 0:
        n = (n // 3) * 4
    if n >= max_n / 2:
        n = max_n
    return n


def window(k: int, s: int) -> Tuple[int, int]:
    """Rows of the S x S decoder map used for a kernel side k (GHN-3 centre window)."""
    off = s // 2
    return max(0, off - k // 2), min(s, off + -(-k // 2))


def plan(graph, max_shape: Sequence[int]) -> List[NodeTask]:
    """One task per node that predicts a parameter."""
    co, ci, s, _ = max_shape
    n = graph.n_nodes
    tasks = []
    for i, (name, prim, t) in enumerate(zip(graph.param_names, graph.primitives, graph.target_shapes)):
        if not name:
            continue
        t = tuple(int(x) for x in t)
        last_w = graph.last_weight and i == n - 2
        last_b = graph.last_bias and i == n - 1
        if len(t) == 1:
            if last_b:
                tasks.append(NodeTask(i, "class_bias", t))
            else:
                norm_w = prim in ("bn", "ln")
                tasks.append(NodeTask(i, "1d", t, row=0 if norm_w else 1, norm_weight=norm_w))
        elif last_w:
            tasks.append(NodeTask(i, "class", t, key_in=min_sz(t[1], ci)))
        elif len(t) == 2:
            c = (s // 2, s // 2 + 1)
            tasks.append(NodeTask(i, "conv", t, (c, c), min_sz(t[1], ci), min_sz(t[0], co)))
        elif len(t) == 3 and t[0] == 1 and min(t[1:]) > 1:
            side = int(math.floor(math.sqrt(t[1])))
            w = window(side, s)
            tasks.append(NodeTask(i, "conv", (1, t[2], side, side), (w, w), t[2], 1))
            tasks[-1] = dataclasses.replace(tasks[-1], target=t)
        elif len(t) == 4:
            tasks.append(NodeTask(i, "conv", t, (window(t[2], s), window(t[3], s)),
                                  min_sz(t[1], ci), min_sz(t[0], co)))
        else:
            raise NotImplementedError(f"parameter '{name}' of shape {t}: no GHN decoder for it")
    return tasks


# ------------------------------------------------------------------------------------------
# Tiling and normalisation (torch layout)
# ------------------------------------------------------------------------------------------

def _tile_axis(w, axis: int, size: int):
    cur = w.shape[axis]
    if size <= cur:
        return jax.lax.slice_in_dim(w, 0, size, axis=axis)
    reps = -(-size // cur)
    w = jnp.concatenate([w] * reps, axis=axis)
    return jax.lax.slice_in_dim(w, 0, size, axis=axis)


def tile_conv(pred, t: Shape, kernel: Tuple[int, int]):
    """(Co', Ci', h, w) decoder output -> target (t0, t1, kh, kw): periodic in channels.

    The spatial window already has the kernel's size (or was resized to it).
    """
    w = pred[: min(t[0], pred.shape[0]), : min(t[1], pred.shape[1])]
    w = _tile_axis(w, 0, t[0])
    return _tile_axis(w, 1, t[1])


def tile_2d(pred, t: Shape):
    w = pred[: min(t[0], pred.shape[0]), : min(t[1], pred.shape[1])]
    return _tile_axis(_tile_axis(w, 0, t[0]), 1, t[1])


def tile_1d(pred, t0: int):
    return _tile_axis(pred[: min(t0, pred.shape[0])], 0, t0)


def tile_pos(pred, t: Shape, key, std: float = 0.02):
    """(1, C', s, s) -> (1, T, C): tokens in row-major grid order after a random class row."""
    c, s1, s2 = pred.shape[1:]
    tok = jnp.transpose(pred.reshape(pred.shape[0], c, s1 * s2), (0, 2, 1))   # (1, s*s, C')
    tok = tok[: min(t[0], tok.shape[0]), : min(t[1], tok.shape[1]), : min(t[2], tok.shape[2])]
    cls = std * jax.random.normal(key, (tok.shape[0], 1, tok.shape[2]), tok.dtype)
    w = jnp.concatenate([cls, tok], axis=1)
    w = _tile_axis(w, 0, t[0])
    if t[1] > w.shape[1]:
        return _tile_axis(_tile_axis(w, 1, t[1]), 2, t[2])[:, : t[1]]
    return _tile_axis(w[:, : t[1]], 2, t[2])


def normalise(p, t: Shape, norm_weight: bool = False):
    """Fan-in scaling of weights; sigmoid / tanh maps of norm weights / biases (§2.9)."""
    if p.ndim == 1:
        return 2.0 * jax.nn.sigmoid(0.5 * p) if norm_weight else jnp.tanh(0.2 * p)
    if p.ndim > 2 and t[2] >= 11 and t[0] == 1:
        return p                   # positional encodings are used as predicted
    beta = 1.0 if p.ndim > 2 and (t[1] == 1 or t[2] < t[3]) else 2.0
    fan_in = int(np.prod(t[1:]))
    return p * math.sqrt(beta / fan_in)


def resize_bilinear(x, size: Tuple[int, int]):
    """torch's F.interpolate(bilinear, align_corners=False) on the last two axes (upsampling)."""
    return jax.image.resize(x, x.shape[:-2] + tuple(size), method="bilinear", antialias=False)
