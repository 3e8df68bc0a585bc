"""Shape encoding indices of GHN-3 (design/ghn3-reference.md §2.2), computed on the host.

Each node's target shape (out, in, h, w) becomes four table indices: two into the channel
table, two into the spatial table. Nodes without a shape (input, sum, concat, msa, cse,
glob_avg) use the extra last row of each table.
"""
import functools
from typing import Tuple

import numpy as np

from ghn_jax.graph.primitives import PARAM_PRIMITIVES, POOL_PRIMITIVES, PRIMITIVES


@functools.lru_cache(maxsize=None)
def channel_values(num_classes: int = 1000) -> Tuple[int, ...]:
    vals = {1, 3, num_classes}
    vals.update(range(8, 64, 8))
    vals.update(range(64, 4096, 16))
    vals.update(range(4096, 8192 + 1, 32))
    return tuple(sorted(vals))


@functools.lru_cache(maxsize=None)
def spatial_values(max_spatial: int = 16) -> Tuple[int, ...]:
    return tuple(sorted(set(range(1, max(12, max_spatial), 2)) | {14, 16}))


def _nearest(values: np.ndarray, v: int) -> int:
    # ties go to the smaller value: argmin returns the first minimum.
    return int(np.argmin(np.abs(values - v)))


@functools.lru_cache(maxsize=None)
def _channel_lut(num_classes: int, upto: int = 8193) -> np.ndarray:
    vals = np.array(channel_values(num_classes))
    pos = {v: i for i, v in enumerate(vals)}
    lut = np.full(upto + 1, len(vals) - 1, np.int32)    # 0 and > 8192 -> last (8192)
    for c in range(1, 8192):
        if c in pos:
            lut[c] = pos[c]
        elif 4 <= c <= 7:
            lut[c] = pos[8]
        else:
            lut[c] = _nearest(vals, c)
    lut[8192] = pos[8192]
    return lut


@functools.lru_cache(maxsize=None)
def _spatial_lut(max_spatial: int, upto: int = 64) -> np.ndarray:
    vals = np.array(spatial_values(max_spatial))
    pos = {v: i for i, v in enumerate(vals)}
    lut = np.full(upto + 1, len(vals) - 1, np.int32)    # 0 and >= 17 -> last (16)
    for v in range(1, 17):
        if v in pos:
            lut[v] = pos[v]
        elif v == 2:
            lut[v] = pos[3]
        else:
            lut[v] = _nearest(vals, v)
    return lut


def channel_index(c: np.ndarray, num_classes: int = 1000) -> np.ndarray:
    lut = _channel_lut(num_classes)
    c = np.asarray(c, np.int64)
    return lut[np.clip(c, 0, len(lut) - 1)]


def spatial_index(v: np.ndarray, max_spatial: int = 16) -> np.ndarray:
    lut = _spatial_lut(max_spatial)
    v = np.asarray(v, np.int64)
    return lut[np.clip(v, 0, len(lut) - 1)]


def table_sizes(num_classes: int = 1000, max_spatial: int = 16) -> Tuple[int, int]:
    """Rows of the channel and spatial embedding tables (values + the dummy row)."""
    return len(channel_values(num_classes)) + 1, len(spatial_values(max_spatial)) + 1


_HAS_SHAPE = np.array([p in PARAM_PRIMITIVES or p in POOL_PRIMITIVES for p in PRIMITIVES])


def shape_indices(node_types: np.ndarray, shapes: np.ndarray, num_classes: int = 1000,
                  max_spatial: int = 16) -> np.ndarray:
    """(..., 4) int32 table indices (out, in, h, w) from graph shapes (..., 4), -1 padded.

    Parameter and pooling nodes use their shape made 4-D ((a,) -> (a,1,1,1), (a,b) ->
    (a,b,1,1)); every other node (and padding) the dummy rows.
    """
    shapes = np.asarray(shapes)
    s4 = np.where(shapes < 0, 1, shapes)
    n_ch, n_s = table_sizes(num_classes, max_spatial)
    out = np.empty(shapes.shape, np.int32)
    out[..., 0] = channel_index(s4[..., 0], num_classes)
    out[..., 1] = channel_index(s4[..., 1], num_classes)
    out[..., 2] = spatial_index(s4[..., 2], max_spatial)
    out[..., 3] = spatial_index(s4[..., 3], max_spatial)
    has = _HAS_SHAPE[np.asarray(node_types)] & (shapes[..., 0] > 0)
    dummy = np.array([n_ch - 1, n_ch - 1, n_s - 1, n_s - 1], np.int32)
    return np.where(has[..., None], out, dummy).astype(np.int32)
