"""Swin Transformers T/S/B, v1 (torchvision.models.swin_transformer)."""
from typing import Tuple

import numpy as np
import jax
import jax.numpy as jnp
import flax.linen as nn

from ghn_jax.zoo.layers import Conv2d, LayerNorm, Linear, MLP, StochasticDepth
from ghn_jax.zoo.registry import register


def relative_position_index(window: Tuple[int, int]) -> np.ndarray:
    """(N*N,) index into the (2Wh-1)(2Ww-1) bias table for every pair of window positions."""
    coords = np.stack(np.meshgrid(np.arange(window[0]), np.arange(window[1]), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0)
    rel[:, :, 0] += window[0] - 1
    rel[:, :, 1] += window[1] - 1
    rel[:, :, 0] *= 2 * window[1] - 1
    return rel.sum(-1).reshape(-1)


def shift_mask(pad_h: int, pad_w: int, window: Tuple[int, int], shift: Tuple[int, int]) -> np.ndarray:
    """(num_windows, N, N) additive mask (0 / -100) that keeps shifted windows apart."""
    img = np.zeros((pad_h, pad_w), np.float32)
    count = 0
    for h in ((0, -window[0]), (-window[0], -shift[0]), (-shift[0], None)):
        for w in ((0, -window[1]), (-window[1], -shift[1]), (-shift[1], None)):
            img[h[0]:h[1], w[0]:w[1]] = count
            count += 1
    m = img.reshape(pad_h // window[0], window[0], pad_w // window[1], window[1]).transpose(0, 2, 1, 3)
    m = m.reshape(-1, window[0] * window[1])
    d = m[:, None, :] - m[:, :, None]
    return np.where(d != 0, -100.0, 0.0).astype(np.float32)


class ShiftedWindowAttention(nn.Module):
    """torchvision's shifted_window_attention (v1), (B, H, W, C) -> (B, H, W, C)."""
    dim: int
    window: Tuple[int, int]
    shift: Tuple[int, int]
    num_heads: int

    @nn.compact
    def __call__(self, x):
        wh, ww = self.window
        heads = self.num_heads
        table = self.param("relative_position_bias_table", nn.initializers.truncated_normal(0.02),
                           ((2 * wh - 1) * (2 * ww - 1), heads))
        n = wh * ww
        bias = table[relative_position_index(self.window)].reshape(n, n, heads).transpose(2, 0, 1)
        b, h, w, c = x.shape
        pad_r, pad_b = (ww - w % ww) % ww, (wh - h % wh) % wh
        x = jnp.pad(x, ((0, 0), (0, pad_b), (0, pad_r), (0, 0)))
        ph, pw = h + pad_b, w + pad_r
        # torchvision never shrinks the window: a map smaller than it is padded up to one
        # window, and only the shift is dropped (per axis) when one window covers the map.
        shift = (0 if wh >= ph else self.shift[0], 0 if ww >= pw else self.shift[1])
        if sum(shift) > 0:
            x = jnp.roll(x, (-shift[0], -shift[1]), axis=(1, 2))
        nw = (ph // wh) * (pw // ww)
        x = x.reshape(b, ph // wh, wh, pw // ww, ww, c).transpose(0, 1, 3, 2, 4, 5).reshape(b * nw, n, c)
        qkv = Linear(3 * c, name="qkv")(x).reshape(b * nw, n, 3, heads, c // heads).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (c // heads) ** -0.5, qkv[1], qkv[2]
        attn = q @ jnp.swapaxes(k, -2, -1) + bias[None]
        if sum(shift) > 0:
            mask = shift_mask(ph, pw, self.window, shift)
            attn = (attn.reshape(b, nw, heads, n, n) + mask[None, :, None]).reshape(-1, heads, n, n)
        attn = jax.nn.softmax(attn, axis=-1)                  # explicit: the graph's msa node
        x = (attn @ v).transpose(0, 2, 1, 3).reshape(b * nw, n, c)
        x = Linear(c, name="proj")(x)
        x = x.reshape(b, ph // wh, pw // ww, wh, ww, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, ph, pw, c)
        if sum(shift) > 0:
            x = jnp.roll(x, shift, axis=(1, 2))
        return x[:, :h, :w]


class SwinTransformerBlock(nn.Module):
    dim: int
    num_heads: int
    window: Tuple[int, int]
    shift: Tuple[int, int]
    sd_prob: float

    @nn.compact
    def __call__(self, x, train: bool = False):
        sd = StochasticDepth(self.sd_prob, "row")
        y = ShiftedWindowAttention(self.dim, self.window, self.shift, self.num_heads, name="attn")(
            LayerNorm(1e-5, name="norm1")(x))
        x = x + sd(y, train)
        y = MLP((4 * self.dim, self.dim), name="mlp")(LayerNorm(1e-5, name="norm2")(x), train)
        return x + sd(y, train)


class PatchMerging(nn.Module):
    """(B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C); odd sides are zero-padded first."""
    dim: int

    @nn.compact
    def __call__(self, x):
        h, w = x.shape[1:3]
        x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
        x = jnp.concatenate([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1)
        x = LayerNorm(1e-5, name="norm")(x)
        return Linear(2 * self.dim, bias=False, name="reduction")(x)


class _Stage(nn.Module):
    dim: int
    num_heads: int
    window: Tuple[int, int]
    probs: Tuple[float, ...]

    @nn.compact
    def __call__(self, x, train):
        for i, p in enumerate(self.probs):
            shift = (0, 0) if i % 2 == 0 else (self.window[0] // 2, self.window[1] // 2)
            x = SwinTransformerBlock(self.dim, self.num_heads, self.window, shift, p, name=str(i))(x, train)
        return x


class _PatchEmbed(nn.Module):
    dim: int
    patch: int

    @nn.compact
    def __call__(self, x):
        x = Conv2d(self.dim, self.patch, self.patch, name="0")(x)
        return LayerNorm(1e-5, name="2")(x)


class _Features(nn.Module):
    embed_dim: int
    depths: Tuple[int, ...]
    num_heads: Tuple[int, ...]
    window: Tuple[int, int]
    sd_prob: float

    @nn.compact
    def __call__(self, x, train):
        x = _PatchEmbed(self.embed_dim, 4, name="0")(x)
        total, block_id, idx = sum(self.depths), 0, 1
        for i, (d, heads) in enumerate(zip(self.depths, self.num_heads)):
            dim = self.embed_dim * 2 ** i
            probs = tuple(self.sd_prob * float(block_id + j) / (total - 1) for j in range(d))
            x = _Stage(dim, heads, self.window, probs, name=str(idx))(x, train)
            block_id += d
            idx += 1
            if i < len(self.depths) - 1:
                x = PatchMerging(dim, name=str(idx))(x)
                idx += 1
        return x


class SwinTransformer(nn.Module):
    embed_dim: int
    depths: Tuple[int, ...]
    num_heads: Tuple[int, ...]
    sd_prob: float
    window: Tuple[int, int] = (7, 7)
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _Features(self.embed_dim, self.depths, self.num_heads, self.window, self.sd_prob, name="features")(x, train)
        x = LayerNorm(1e-5, name="norm")(x)
        x = jnp.mean(x, axis=(1, 2))
        return Linear(self.num_classes, name="head")(x)


def _register(name, dim, depths, heads, sd):
    @register(name, family="swin")
    def build(num_classes: int = 1000):
        return SwinTransformer(dim, depths, heads, sd, num_classes=num_classes)
    build.__name__ = name
    return build


swin_t = _register("swin_t", 96, (2, 2, 6, 2), (3, 6, 12, 24), 0.2)
swin_s = _register("swin_s", 96, (2, 2, 18, 2), (3, 6, 12, 24), 0.3)
swin_b = _register("swin_b", 128, (2, 2, 18, 2), (4, 8, 16, 32), 0.5)
