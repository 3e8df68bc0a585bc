"""From node embeddings to target parameters: decode, tile, normalise (§2.5-§2.10).

Everything here works in torch layout ((out, in, kh, kw) / (out, in)), the layout the
GHN was trained in; the tensors are converted to Flax layout only when written.
"""
import dataclasses
import math
from typing import List, Sequence, Tuple

import numpy as np

from ghn_jax.export.torch_params import _KERNEL_TO_FLAX

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


def window(k: int, s: int, centre: bool = True) -> Tuple[int, int]:
    """Rows of the S x S decoder map used for a kernel side k: GHN-3 centres the
    window, GHN-2 (centre=False) takes it from the top-left corner."""
    if not centre:
        return 0, min(k, s)
    off = s // 2
    return max(0, off - k // 2), min(s, off + -(-k // 2))


def pixel_box(tasks, s: int, centre: bool = True) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """The square window of the S x S decoder map that holds every conv task's window.

    Windows of one GHN nest (centred, or all from the top-left corner), so this is the
    window of the largest kernel side; squaring it keeps the number of distinct boxes, and
    so of compiled GHN programs, small. The decoder's first layer is evaluated on it only.
    """
    k = max([max(r1 - r0, c1 - c0) for t in tasks if t.kind == "conv"
             for (r0, r1), (c0, c1) in [t.window]] or [1])
    w = window(k, s, centre)
    return w, w


def plan(graph, max_shape: Sequence[int], centre: bool = True) -> List[NodeTask]:
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
            c = window(1, s, centre)
            tasks.append(NodeTask(i, "conv", t, (c, c), min_sz(t[1], ci), min_sz(t[0], co)))
        elif len(t) == 3 and t[0] == 1 and min(t[1:]) > 1:
            side = int(math.floor(math.sqrt(t[1])))
            w = window(side, s, centre)
            tasks.append(NodeTask(i, "conv", (1, t[2], side, side), (w, w), t[2], 1))
            tasks[-1] = dataclasses.replace(tasks[-1], target=t)
        elif len(t) == 4:
            tasks.append(NodeTask(i, "conv", t, (window(t[2], s, centre), window(t[3], s, centre)),
                                  min_sz(t[1], ci), min_sz(t[0], co)))
        else:
            raise NotImplementedError(f"parameter '{name}' of shape {t}: no GHN decoder for it")
    return tasks


# ------------------------------------------------------------------------------------------
# Tiling and normalisation (torch layout). numpy at inference; `xp=jnp` where gradients flow.
# ------------------------------------------------------------------------------------------

def periodic(block, shape: Shape, xp=np):
    """Slices `block` to `shape` where it is larger and repeats it periodically where it is
    smaller (W[o, i] = w[o mod a, i mod b]): the reference's tiling, in one pass."""
    block = block[tuple(slice(0, min(b, s)) for b, s in zip(block.shape, shape))]
    reps = tuple(-(-s // b) for b, s in zip(block.shape, shape))
    if all(r == 1 for r in reps):
        return np.ascontiguousarray(block) if xp is np else block
    out = xp.tile(block, reps)
    if out.shape != tuple(shape):
        out = out[tuple(slice(0, s) for s in shape)]
        out = np.ascontiguousarray(out) if xp is np else out
    return out


def to_leaf(block, target: Shape, leaf_shape: Shape, is_kernel: bool, xp=np):
    """A normalised torch-layout block -> a Flax leaf of `leaf_shape`, tiled in the leaf's layout.

    Conv / Dense kernels are transposed to Flax's layout first; a DenseGeneral kernel (more
    axes than its torch weight) is tiled in torch layout, transposed and reshaped.
    """
    if is_kernel and len(leaf_shape) == len(target) and block.ndim in _KERNEL_TO_FLAX:
        return periodic(xp.transpose(block, _KERNEL_TO_FLAX[block.ndim]), leaf_shape, xp)
    if is_kernel:
        return periodic(block, target, xp).T.reshape(leaf_shape)
    return periodic(block, leaf_shape, xp)


def tile_pos(pred, t: Shape, cls_row, xp=np):
    """(1, C', s, s) -> (1, T, C): grid tokens in row-major order after the class row.

    cls_row (1, 1, C') is the class-token position, which the reference draws from
    N(0, 0.02) at every prediction.
    """
    c, s1, s2 = pred.shape[1:]
    tok = xp.transpose(pred.reshape(pred.shape[0], c, s1 * s2), (0, 2, 1))   # (1, s*s, C')
    tok = tok[: min(t[0], tok.shape[0]), : min(t[1], tok.shape[1]), : min(t[2], tok.shape[2])]
    w = xp.concatenate([cls_row[:, :, : tok.shape[2]].astype(tok.dtype), tok], axis=1)
    return periodic(w, t, xp)


def normalise(p, t: Shape, norm_weight: bool = False, xp=np):
    """Fan-in scaling of weights; sigmoid / tanh maps of norm weights / biases (§2.9)."""
    if p.ndim == 1:
        return 2.0 / (1.0 + xp.exp(-0.5 * p)) if norm_weight else xp.tanh(0.2 * p)
    if p.ndim > 2 and t[2] >= 11 and t[0] == 1:
        return p                   # positional encodings are used as predicted
    beta = 1.0 if p.ndim > 2 and (t[1] == 1 or t[2] < t[3]) else 2.0
    fan_in = int(np.prod(t[1:]))
    return p * np.float32(math.sqrt(beta / fan_in))


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in): torch's bilinear interpolation, align_corners=False, as a matrix."""
    m = np.zeros((n_out, n_in), np.float64)
    scale = n_in / n_out
    for i in range(n_out):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(np.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        lam = src - i0
        m[i, i0] += 1.0 - lam
        m[i, i1] += lam
    return m.astype(np.float32)


def resize_bilinear(x, size: Tuple[int, int], xp=np):
    """torch's F.interpolate(mode='bilinear', align_corners=False) on the last two axes."""
    rh = bilinear_matrix(x.shape[-2], size[0])
    rw = bilinear_matrix(x.shape[-1], size[1])
    return xp.einsum("ih,...hw,jw->...ij", rh, x, rw)
