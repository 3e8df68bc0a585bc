"""torch-faithful building blocks for the zoo twins (NHWC, torchvision's numbers).

Parameterised layers are *stock* Flax layers (nn.Conv, nn.Dense, nn.BatchNorm,
nn.LayerNorm) created with torch's hyper-parameters, so the graph tracer and the
torch converter only need rules for stock layers. Module names follow torchvision's
module paths ('features', '0', 'conv1', ...), which is what makes the conversion
to torch keys a generic rule (see ghn_jax/export/torch_params.py).

Every model's `__call__(x, train=False)` takes NHWC float32 images. `train=True` means
torch's train mode: batch statistics (mutable 'batch_stats'), dropout and stochastic
depth (rng 'dropout'), auxiliary heads.
"""
import functools
import math
from typing import Callable, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
from jax import lax

IntPair = Union[int, Tuple[int, int]]


def _pair(v: IntPair) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def make_divisible(v: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """torchvision's _make_divisible: the nearest multiple of `divisor`, never below 90% of v."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# ----------------------------------------------------------------------------------------
# Parameterised layers (factories returning stock Flax modules)
# ----------------------------------------------------------------------------------------

def Conv2d(out_channels: int, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0,
           dilation: IntPair = 1, groups: int = 1, bias: bool = True, name: str = None) -> nn.Conv:
    """torch.nn.Conv2d (zero padding) as nn.Conv; kernel (kh, kw, in/groups, out)."""
    ph, pw = _pair(padding)
    return nn.Conv(out_channels, _pair(kernel_size), strides=_pair(stride),
                   padding=((ph, ph), (pw, pw)), kernel_dilation=_pair(dilation),
                   feature_group_count=groups, use_bias=bias, name=name)


def Linear(out_features: int, bias: bool = True, name: str = None) -> nn.Dense:
    """torch.nn.Linear as nn.Dense; kernel (in, out)."""
    return nn.Dense(out_features, use_bias=bias, name=name)


class TorchBatchNorm(nn.BatchNorm):
    """nn.BatchNorm whose running variance follows torch: updated with the *unbiased* batch
    variance (Flax uses the biased one). Outputs are unchanged."""

    @nn.compact
    def __call__(self, x, use_running_average=None, *, mask=None):
        y = super().__call__(x, use_running_average, mask=mask)
        frozen = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
        if not frozen and not self.is_initializing() and mask is None:
            axes = tuple(range(x.ndim - 1))
            n = int(np.prod([x.shape[a] for a in axes]))
            if n > 1:
                # unbiased = biased * n / (n - 1) = biased + biased / (n - 1)
                biased = jnp.var(x.astype(jnp.float32), axis=axes)
                var = self.get_variable("batch_stats", "var")
                self.put_variable("batch_stats", "var", var + (1.0 - self.momentum) * biased / (n - 1))
        return y


def BatchNorm2d(train: bool, eps: float = 1e-5, momentum: float = 0.1, name: str = None) -> nn.BatchNorm:
    """torch.nn.BatchNorm2d (running variance as torch). torch's momentum m is Flax's 1 - m."""
    return TorchBatchNorm(use_running_average=not train, momentum=1.0 - momentum, epsilon=eps, name=name)


def LayerNorm(eps: float = 1e-5, name: str = None) -> nn.LayerNorm:
    """torch.nn.LayerNorm over the last axis (also torchvision's LayerNorm2d in NHWC)."""
    return nn.LayerNorm(epsilon=eps, name=name)


# ----------------------------------------------------------------------------------------
# Pooling (functional; pooling has no parameters)
# ----------------------------------------------------------------------------------------

def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    eff = d * (k - 1) + 1
    if ceil_mode:
        out = -(-(size + 2 * p - eff) // s) + 1
        if (out - 1) * s >= size + p:  # torch: the last window must start inside the input
            out -= 1
    else:
        out = (size + 2 * p - eff) // s + 1
    return out


def _pool_pads(x_hw, k, s, p, d, ceil_mode):
    pads = []
    for size, kk, ss, pp, dd in zip(x_hw, k, s, p, d):
        out = _pool_out(size, kk, ss, pp, dd, ceil_mode)
        right = (out - 1) * ss + dd * (kk - 1) + 1 - size - pp
        pads.append((pp, max(right, 0)))
    return pads


def max_pool2d(x: jnp.ndarray, kernel_size: IntPair, stride: Optional[IntPair] = None,
               padding: IntPair = 0, dilation: IntPair = 1, ceil_mode: bool = False) -> jnp.ndarray:
    """torch.nn.functional.max_pool2d on NHWC."""
    k, d, p = _pair(kernel_size), _pair(dilation), _pair(padding)
    s = _pair(stride) if stride is not None else k
    pads = _pool_pads(x.shape[1:3], k, s, p, d, ceil_mode)
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, *k, 1), (1, *s, 1),
                             [(0, 0), *pads, (0, 0)], window_dilation=(1, *d, 1))


def avg_pool2d(x: jnp.ndarray, kernel_size: IntPair, stride: Optional[IntPair] = None,
               padding: IntPair = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> jnp.ndarray:
    """torch.nn.functional.avg_pool2d on NHWC (torch's divisor rules, ceil_mode included)."""
    k, p = _pair(kernel_size), _pair(padding)
    s = _pair(stride) if stride is not None else k
    h, w = x.shape[1:3]
    pads = _pool_pads((h, w), k, s, p, (1, 1), ceil_mode)
    win, strides = (1, *k, 1), (1, *s, 1)
    total = lax.reduce_window(x, 0.0, lax.add, win, strides, [(0, 0), *pads, (0, 0)])
    # The divisor is a constant of the shapes: computed in numpy, it never enters the graph.
    if count_include_pad:
        # torch counts the zero padding but not the extra ceil_mode overhang.
        ones = np.ones((1, h + 2 * p[0], w + 2 * p[1], 1), np.float32)
        extra = [(0, pads[0][1] - p[0]), (0, pads[1][1] - p[1])]
    else:
        ones = np.ones((1, h, w, 1), np.float32)
        extra = pads
    ones = np.pad(ones, [(0, 0), *extra, (0, 0)])
    count = _np_window_sum(ones, k, s)
    return total / count


def _np_window_sum(a: np.ndarray, k, s) -> np.ndarray:
    n, hh, ww, c = a.shape
    oh, ow = (hh - k[0]) // s[0] + 1, (ww - k[1]) // s[1] + 1
    out = np.zeros((n, oh, ow, c), np.float32)
    for i in range(k[0]):
        for j in range(k[1]):
            out += a[:, i:i + s[0] * (oh - 1) + 1:s[0], j:j + s[1] * (ow - 1) + 1:s[1], :]
    return out


def global_avg_pool(x: jnp.ndarray, keepdims: bool = False) -> jnp.ndarray:
    """AdaptiveAvgPool2d(1) (+ flatten unless keepdims): mean over H, W of NHWC."""
    return jnp.mean(x, axis=(1, 2), keepdims=keepdims)


def adaptive_avg_pool2d(x: jnp.ndarray, output_size: IntPair) -> jnp.ndarray:
    """torch.nn.functional.adaptive_avg_pool2d on NHWC, any input size.

    Bin i of n over length L spans [floor(i L / n), ceil((i + 1) L / n)). The bins are
    gathered into a zero-padded (B, oh, kh, ow, kw, C) tensor and averaged in one
    reduction, so a tracer sees a single global-pooling op, as in the reference.
    """
    oh, ow = _pair(output_size)
    b, h, w, c = x.shape
    sel_h, cnt_h = _bin_selector(h, oh)   # (oh, kh, h), (oh,)
    sel_w, cnt_w = _bin_selector(w, ow)
    if sel_h.shape[1] * oh == h and sel_w.shape[1] * ow == w and cnt_h.min() == cnt_h.max() \
            and cnt_w.min() == cnt_w.max():
        xb = x.reshape(b, oh, h // oh, ow, w // ow, c)   # divisible: plain reshape
    else:
        xb = jnp.einsum("pkh,qlw,bhwc->bpkqlc", sel_h, sel_w, x)
    total = jnp.sum(xb, axis=(2, 4))
    return total / (cnt_h[:, None] * cnt_w[None, :])[None, :, :, None]


def _bin_selector(length: int, n: int):
    starts = [(i * length) // n for i in range(n)]
    ends = [-(-((i + 1) * length) // n) for i in range(n)]
    kmax = max(e - s for s, e in zip(starts, ends))
    sel = np.zeros((n, kmax, length), np.float32)
    for i, (s, e) in enumerate(zip(starts, ends)):
        for j in range(e - s):
            sel[i, j, s + j] = 1.0
    return sel, np.array([e - s for s, e in zip(starts, ends)], np.float32)


# ----------------------------------------------------------------------------------------
# Regularisers active in train mode
# ----------------------------------------------------------------------------------------

class Dropout(nn.Module):
    """torch.nn.Dropout: active only in train mode (rng 'dropout')."""
    rate: float

    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dropout(self.rate, deterministic=not train)(x)


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth: drop whole rows ('row') or the batch ('batch')."""
    p: float
    mode: str = "row"

    @nn.compact
    def __call__(self, x, train: bool = False):
        if not train or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1) if self.mode == "row" else (1,) * x.ndim
        keep = jax.random.bernoulli(self.make_rng("dropout"), survival, shape)
        return x * (keep.astype(x.dtype) / survival if survival > 0 else keep.astype(x.dtype))


# ----------------------------------------------------------------------------------------
# Composite blocks shared by several families
# ----------------------------------------------------------------------------------------

class Conv2dNormActivation(nn.Module):
    """torchvision.ops.Conv2dNormActivation: Sequential(conv '0', norm '1', activation).

    padding=None means torch's default `(k - 1) // 2 * dilation`.
    """
    out_channels: int
    kernel_size: IntPair = 3
    stride: IntPair = 1
    padding: Optional[IntPair] = None
    groups: int = 1
    dilation: IntPair = 1
    norm: bool = True
    activation: Optional[Callable] = jax.nn.relu
    bias: Optional[bool] = None
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1

    @nn.compact
    def __call__(self, x, train: bool = False):
        k, d = _pair(self.kernel_size), _pair(self.dilation)
        pad = self.padding if self.padding is not None else tuple(
            (kk - 1) // 2 * dd for kk, dd in zip(k, d))
        bias = self.bias if self.bias is not None else not self.norm
        x = Conv2d(self.out_channels, k, self.stride, pad, d, self.groups, bias, name="0")(x)
        if self.norm:
            x = BatchNorm2d(train, self.bn_eps, self.bn_momentum, name="1")(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation: mean -> fc1 -> act -> fc2 -> gate -> x * gate."""
    input_channels: int
    squeeze_channels: int
    activation: Callable = jax.nn.relu
    scale_activation: Callable = jax.nn.sigmoid

    @nn.compact
    def __call__(self, x):
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        s = self.activation(Conv2d(self.squeeze_channels, 1, name="fc1")(s))
        s = self.scale_activation(Conv2d(self.input_channels, 1, name="fc2")(s))
        return x * s


@jax.jit
def scaled_dot_product_attention(q, k, v):
    """Fused attention, the twin of torch's F.scaled_dot_product_attention.

    q, k, v: (B, T, heads, d) -> (B, T, heads, d). It is a jitted function with this
    name on purpose: the graph tracer treats it as one fused op without an `msa` node,
    as the reference's autograd graph does for torch's fused SDPA (torch >= 2 on CPU
    records no softmax), while an explicit softmax yields an `msa` node.
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    logits = jnp.einsum("bqhd,bkhd->bhqk", q * scale, k)
    return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)


class MultiheadAttention(nn.Module):
    """torch.nn.MultiheadAttention (batch_first self-attention, need_weights=False).

    The packed q/k/v projection is a Dense named 'in_proj' (torch: in_proj_weight
    (3E, E) / in_proj_bias), the output projection a Dense named 'out_proj'.
    """
    embed_dim: int
    num_heads: int
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        b, t, e = x.shape
        h = self.num_heads
        qkv = Linear(3 * e, name="in_proj")(x)
        q, k, v = (qkv[..., i * e:(i + 1) * e].reshape(b, t, h, e // h) for i in range(3))
        if self.dropout > 0 and train:
            raise NotImplementedError("attention dropout in train mode")
        o = scaled_dot_product_attention(q, k, v).reshape(b, t, e)
        return Linear(e, name="out_proj")(o)


class MLP(nn.Module):
    """torchvision.ops.MLP: (Linear, act, Dropout) * (n-1), Linear, Dropout; names 0,3,6..."""
    hidden_channels: Sequence[int]
    activation: Callable = functools.partial(jax.nn.gelu, approximate=False)
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        idx = 0
        for i, ch in enumerate(self.hidden_channels):
            x = Linear(ch, name=str(idx))(x)
            if i < len(self.hidden_channels) - 1:
                x = self.activation(x)
                x = Dropout(self.dropout)(x, train)
                idx += 3
            else:
                x = Dropout(self.dropout)(x, train)
        return x


gelu = functools.partial(jax.nn.gelu, approximate=False)   # torch.nn.GELU() default (erf)
hardswish = jax.nn.hard_swish
hardsigmoid = jax.nn.hard_sigmoid
relu6 = jax.nn.relu6
