"""The DeepNets-1M op modules in Flax (design/ghn3-reference.md §4.1, "Network construction").

Every op is described by a hashable `OpSpec` and built by `make_op(spec)`, so the plain
`Network` and the training executor run exactly the same modules: the Network inside
one Flax program, the executor as one small jitted kernel per (spec, input shape).

Layout is NHWC. Module and parameter names follow the reference's torch modules
(`op/1` is `op.1`, ...), so the generic Flax <-> torch naming rule gives the reference
parameter names. Batch norms always use batch statistics: the reference trains GHNs on
`NetworkLight` (BatchNorm2d with track_running_stats=False) and evaluates predicted
parameters the same way (§4.7).
"""
import contextlib
import dataclasses
import functools
import threading
from typing import Optional

import jax
import jax.numpy as jnp
import flax.linen as nn
from jax import lax

from ghn_jax.errors import GhnError
from ghn_jax.zoo.layers import Conv2d, Linear, LayerNorm, avg_pool2d, gelu, max_pool2d


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """One parameterised (or pooling) op of a DeepNets network.

    kind: conv | conv2 | sep_conv | dil_conv | fact_reduce | relu_conv_bn | avg_pool |
    max_pool | msa | cse | stride | stem_vit | stem_simple | stem_imnet0 | stem_imnet1 |
    pos_enc | classifier.
    """
    kind: str
    c_in: int = 0
    c_out: int = 0
    ks: int = 0
    stride: int = 1
    norm: bool = True              # BatchNorm after convs ('bnorm') or none (BN-free nets)
    pad: int = 0                   # stems: conv padding
    pool: bool = False             # simple stem: max pool after the BN
    size: int = 0                  # pos_enc: side of the (1, C, s, s) table
    hidden: int = 0                # classifier: fc_dim when two layers
    flatten_nchw: bool = False     # classifier: flatten (C, H, W) like torch (no global pool)


class BatchNormB(nn.BatchNorm):
    """BatchNorm2d(track_running_stats=False): batch statistics, affine, no running stats."""

    @nn.compact
    def __call__(self, x, use_running_average=None, *, mask=None):
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axes)
        var = jnp.mean(jnp.square(x - mean), axes)        # biased, as torch normalises
        return (x - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias


_SHIFT_ADD = threading.local()


@contextlib.contextmanager
def shift_add_depthwise(on: bool = True):
    """Within this context (per thread, at trace time) depthwise convolutions are traced as
    k*k shifted multiply-adds instead of a grouped convolution.

    XLA:CPU runs grouped convolutions through a generic loop, 2-8x slower than the fused
    multiply-adds once LLVM optimises them (docs/deepnets.md, "Executor"); without backend
    optimisation both run alike and the grouped form compiles twice as fast. Values are
    the same up to float rounding (the sum runs in another order)."""
    old = getattr(_SHIFT_ADD, "on", False)
    _SHIFT_ADD.on = on
    try:
        yield
    finally:
        _SHIFT_ADD.on = old


def _depthwise(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
               feature_group_count=1, precision=None, **kw):
    """lax.conv_general_dilated for nn.Conv (NHWC, HWIO); depthwise ones optionally by shifts."""
    c = lhs.shape[-1]
    plain = (not getattr(_SHIFT_ADD, "on", False) or feature_group_count != c or rhs.shape[2] != 1
             or rhs.shape[3] != c or lhs.ndim != 4 or any(d != 1 for d in (lhs_dilation or (1, 1)))
             or isinstance(padding, str))
    if plain:
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                        feature_group_count=feature_group_count, precision=precision, **kw)
    return _shift_add(lhs, rhs, tuple(map(tuple, padding)), tuple(window_strides), tuple(rhs_dilation or (1, 1)))


def _taps(x, kh: int, kw: int, strides, dilation):
    """The k*k strided windows of padded x (B, Hp, Wp, C), each (B, Ho, Wo, C)."""
    (sh, sw), (dh, dw) = strides, dilation
    b, hp, wp, c = x.shape
    ho, wo = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    return [[lax.slice(x, (0, i * dh, j * dw, 0), (b, i * dh + (ho - 1) * sh + 1, j * dw + (wo - 1) * sw + 1, c),
                               (1, sh, sw, 1)) for j in range(kw)] for i in range(kh)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _shift_add(lhs, rhs, padding, strides, dilation):
    """Depthwise conv (NHWC, HWIO with I = 1) as k*k shifted multiply-adds."""
    kh, kw = rhs.shape[:2]
    x = jnp.pad(lhs, ((0, 0), padding[0], padding[1], (0, 0)))
    taps = _taps(x, kh, kw, strides, dilation)
    out = None
    for i in range(kh):
        for j in range(kw):
            tap = taps[i][j] * rhs[i, j, 0]
            out = tap if out is None else out + tap
    return out


def _shift_add_fwd(lhs, rhs, padding, strides, dilation):
    # Residuals are the inputs alone: autodiff of the sum above would keep every shifted
    # product (k*k activation-sized arrays per conv) for the weight gradient.
    return _shift_add(lhs, rhs, padding, strides, dilation), (lhs, rhs)


def _shift_add_bwd(padding, strides, dilation, res, g):
    """Input gradient by autodiff (shifts of g, cheap); weight gradient as one batched
    matmul per kernel row: for row i, M[c, wo, v] = sum_{b, ho} g[b, ho, wo, c] *
    x_i[b, ho, v, c] (x_i: padded input rows of tap row i), then dW[i, j, c] = sum_wo
    M[c, wo, wo*sw + j*dw]. On XLA:CPU this is 2-3x faster than k*k separate reductions over
    the batch and both spatial axes (channels are the minor axis there)."""
    lhs, rhs = res
    kh, kw = rhs.shape[:2]
    (sh, sw), (dh, dw) = strides, dilation
    _, vjp_x = jax.vjp(lambda a: _shift_add.fun(a, rhs, padding, strides, dilation), lhs)
    (g_lhs,) = vjp_x(g)
    x = jnp.pad(lhs, ((0, 0), padding[0], padding[1], (0, 0)))
    b, _, wp, c = x.shape
    ho, wo = g.shape[1:3]
    gt = jnp.transpose(g, (3, 0, 1, 2)).reshape(c, b * ho, wo)                    # (C, B*Ho, Wo)
    xt = jnp.transpose(x, (3, 0, 1, 2))                                           # (C, B, Hp, Wp)
    rows = []
    for i in range(kh):
        xi = lax.slice(xt, (0, 0, i * dh, 0), (c, b, i * dh + (ho - 1) * sh + 1, wp), (1, 1, sh, 1))
        m = jnp.einsum("cnw,cnv->cwv", gt, xi.reshape(c, b * ho, wp), precision=lax.Precision.HIGHEST)
        rows.append(jnp.stack([jnp.trace(lax.slice(m, (0, 0, j * dw), (c, wo, j * dw + (wo - 1) * sw + 1),
                                                   (1, 1, sw)), axis1=1, axis2=2) for j in range(kw)], 0))
    g_rhs = jnp.stack(rows, 0)[:, :, None, :].astype(rhs.dtype)                 # (kh, kw, 1, C)
    return g_lhs, g_rhs


_shift_add.defvjp(_shift_add_fwd, _shift_add_bwd)


def _dw_conv(c: int, ks: int, stride: int, padding: int, dilation: int = 1, name: str = None) -> nn.Conv:
    """torch Conv2d(c, c, ks, groups=c, bias=False) whose convolution may be traced as shifts."""
    return nn.Conv(c, (ks, ks), strides=(stride, stride), padding=((padding, padding), (padding, padding)),
                   kernel_dilation=(dilation, dilation), feature_group_count=c, use_bias=False, name=name,
                   conv_general_dilated=_depthwise)


def _bn(norm: bool, name: str):
    return BatchNormB(epsilon=1e-5, name=name) if norm else (lambda x: x)


class _ReLUConvBNSeq(nn.Module):
    s: OpSpec

    @nn.compact
    def __call__(self, x):
        s = self.s
        x = jax.nn.relu(x)
        if s.kind == "conv2":        # conv_7x1_1x7: (1, k) then (k, 1)
            x = Conv2d(s.c_in, (1, s.ks), (1, s.stride), (0, s.ks // 2), bias=False, name="1")(x)
            x = Conv2d(s.c_out, (s.ks, 1), (s.stride, 1), (s.ks // 2, 0), bias=False, name="2")(x)
            return _bn(s.norm, "3")(x)
        x = Conv2d(s.c_out, s.ks, s.stride, s.ks // 2, bias=False, name="1")(x)
        return _bn(s.norm, "2")(x)


class _SepConvSeq(nn.Module):
    s: OpSpec

    @nn.compact
    def __call__(self, x):
        s, c = self.s, self.s.c_in
        x = jax.nn.relu(x)
        x = _dw_conv(c, s.ks, s.stride, s.ks // 2, name="1")(x)
        x = Conv2d(c, 1, bias=False, name="2")(x)
        x = jax.nn.relu(_bn(s.norm, "3")(x))
        x = _dw_conv(c, s.ks, 1, s.ks // 2, name="5")(x)
        x = Conv2d(s.c_out, 1, bias=False, name="6")(x)
        return _bn(s.norm, "7")(x)


class _DilConvSeq(nn.Module):
    s: OpSpec

    @nn.compact
    def __call__(self, x):
        s, c = self.s, self.s.c_in
        x = jax.nn.relu(x)
        x = _dw_conv(c, s.ks, s.stride, s.ks - s.ks % 2, dilation=2, name="1")(x)
        x = Conv2d(s.c_out, 1, bias=False, name="2")(x)
        return _bn(s.norm, "3")(x)


class _Seq(nn.Module):
    """A torch op whose layers live in `self.op` (ReLUConvBN, SepConv, DilConv)."""
    s: OpSpec

    @nn.compact
    def __call__(self, x):
        inner = {"conv": _ReLUConvBNSeq, "conv2": _ReLUConvBNSeq, "relu_conv_bn": _ReLUConvBNSeq,
                 "sep_conv": _SepConvSeq, "dil_conv": _DilConvSeq}[self.s.kind]
        return inner(self.s, name="op")(x)


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convs (the second on the input shifted by one pixel), concat, BN."""
    s: OpSpec

    @nn.compact
    def __call__(self, x):
        s = self.s
        x = jax.nn.relu(x)
        a = Conv2d(s.c_out // 2, 1, s.stride, bias=False, name="conv_1")(x)
        b = Conv2d(s.c_out // 2, 1, s.stride, bias=False, name="conv_2")(x[:, 1:, 1:] if s.stride > 1 else x)
        return _bn(s.norm, "bn")(jnp.concatenate([a, b], -1))


class _Attention(nn.Module):
    dim: int
    heads: int = 8

    @nn.compact
    def __call__(self, x):
        b, n, c = x.shape
        h, dh = self.heads, c // self.heads
        qkv = Linear(3 * c, bias=False, name="to_qkv")(x).reshape(b, n, 3, h, dh)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        attn = jax.nn.softmax(jnp.einsum("bihd,bjhd->bhij", q, k) * dh ** -0.5, axis=-1)
        o = jnp.einsum("bhij,bjhd->bihd", attn, v).reshape(b, n, c)
        return _ToOut(c, name="to_out")(o)


class _ToOut(nn.Module):
    dim: int

    @nn.compact
    def __call__(self, x):
        return Linear(self.dim, name="0")(x)


class _FeedForward(nn.Module):
    dim: int

    @nn.compact
    def __call__(self, x):
        return _FFNet(self.dim, name="net")(x)


class _FFNet(nn.Module):
    dim: int

    @nn.compact
    def __call__(self, x):
        return Linear(self.dim, name="3")(gelu(Linear(self.dim, name="0")(x)))


class TransformerLayer(nn.Module):
    """ghn3 TransformerLayer(C, heads 8, mlp_ratio 1): pre-LN attention and MLP over the H*W tokens."""
    s: OpSpec

    @nn.compact
    def __call__(self, x):
        b, hh, ww, c = x.shape
        t = x.reshape(b, hh * ww, c)                 # token order h*W + w, as torch's reshape
        t = t + _Attention(c, name="attn")(LayerNorm(name="ln1")(t))
        t = t + _FeedForward(c, name="ff")(LayerNorm(name="ln2")(t))
        y = t.reshape(b, hh, ww, c)
        return y[:, ::self.s.stride, ::self.s.stride] if self.s.stride > 1 else y


class ChannelSE(nn.Module):
    """Channel squeeze-excitation with a hard-swish gate (reduction 2), then optional striding."""
    s: OpSpec

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        m = jnp.mean(x, axis=(1, 2))
        g = jax.nn.hard_swish(Linear(c, name="fc2")(jax.nn.relu(Linear(c // 2, name="fc1")(m))))
        y = x * g[:, None, None, :]
        return y[:, ::self.s.stride, ::self.s.stride] if self.s.stride > 1 else y


class Pool(nn.Module):
    s: OpSpec

    @nn.compact
    def __call__(self, x):
        s = self.s
        if s.kind == "max_pool":
            return max_pool2d(x, s.ks, s.stride, s.ks // 2)
        return avg_pool2d(x, s.ks, s.stride, s.ks // 2, count_include_pad=False)


class StrideOp(nn.Module):
    s: OpSpec

    def __call__(self, x):
        return x[:, ::self.s.stride, ::self.s.stride]


class _StemSimpleSeq(nn.Module):
    s: OpSpec

    @nn.compact
    def __call__(self, x):
        s = self.s
        x = _bn(s.norm, "1")(Conv2d(s.c_out, s.ks, s.stride, s.ks // 2, bias=False, name="0")(x))
        return max_pool2d(x, 3, 2, 1) if s.pool else x


class _StemImNet0Seq(nn.Module):
    s: OpSpec

    @nn.compact
    def __call__(self, x):
        s = self.s
        x = Conv2d(s.c_out // 2, s.ks, s.stride, s.ks // 2, bias=False, name="0")(x)
        x = jax.nn.relu(_bn(s.norm, "1")(x))
        x = Conv2d(s.c_out, 3, s.stride, 1, bias=False, name="3")(x)
        return _bn(s.norm, "4")(x)


class _StemImNet1Seq(nn.Module):
    s: OpSpec

    @nn.compact
    def __call__(self, x):
        s = self.s
        x = Conv2d(s.c_out, 3, 2, 1, bias=False, name="1")(jax.nn.relu(x))
        return _bn(s.norm, "2")(x)


class PosEnc(nn.Module):
    """x + weight, weight (1, C, s, s) in torch layout (torch.randn init)."""
    s: OpSpec

    @nn.compact
    def __call__(self, x):
        s = self.s
        w = self.param("weight", nn.initializers.normal(1.0), (1, s.c_out, s.size, s.size), jnp.float32)
        return x + jnp.transpose(w, (0, 2, 3, 1))


class Classifier(nn.Module):
    """Global pool or NCHW flatten, then Linear [+ ReLU, Dropout(0.5), Linear], in float32.

    Named 'classifier' in the network: its layers are classifier/0 and classifier/3.
    """
    s: OpSpec

    @nn.compact
    def __call__(self, x, dropout_key: Optional[jax.Array] = None):
        s = self.s
        x = x.astype(jnp.float32)
        if s.flatten_nchw:
            x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
        else:
            x = jnp.mean(x, axis=(1, 2))
        if not s.hidden:
            return Linear(s.c_out, name="0")(x)
        x = jax.nn.relu(Linear(s.hidden, name="0")(x))
        if dropout_key is not None:
            keep = jax.random.bernoulli(dropout_key, 0.5, x.shape)
            x = jnp.where(keep, x * 2.0, 0.0)
        return Linear(s.c_out, name="3")(x)


def _stem_vit(s: OpSpec, name=None):
    return Conv2d(s.c_out, s.ks, s.ks, s.pad, bias=False, name=name)


_MODULES = {
    "conv": _Seq, "conv2": _Seq, "relu_conv_bn": _Seq, "sep_conv": _Seq, "dil_conv": _Seq,
    "fact_reduce": FactorizedReduce, "msa": TransformerLayer, "cse": ChannelSE,
    "avg_pool": Pool, "max_pool": Pool, "stride": StrideOp, "stem_vit": _stem_vit,
    "stem_simple": _StemSimpleSeq, "stem_imnet0": _StemImNet0Seq, "stem_imnet1": _StemImNet1Seq,
    "pos_enc": PosEnc,
    "classifier": Classifier,
}


def make_op(spec: OpSpec, name: Optional[str] = None) -> nn.Module:
    """The Flax module of an op. The network names it after the op's torch module path
    (`cells/0/_ops/1`, `stem`, `classifier`), so its parameter subtree is the op's alone."""
    return _MODULES[spec.kind](spec, name=name)


def cell_op(kind: str, ks: int, c_in: int, c_out: int, stride: int, norm: bool) -> Optional[OpSpec]:
    """The OpSpec of a genotype op (None for 'none' and identity skips)."""
    if kind == "none":
        return None
    if kind == "skip_connect":
        return None if stride == 1 else OpSpec("fact_reduce", c_in, c_out, 1, stride, norm)
    if kind in ("avg_pool", "max_pool"):
        return OpSpec(kind, c_in, c_in, ks, stride)
    if kind in ("msa", "cse"):
        return OpSpec(kind, c_in, c_in, 0, stride)
    if kind in ("conv", "conv2", "sep_conv", "dil_conv"):
        return OpSpec(kind, c_in, c_out, ks, stride, norm)
    raise GhnError(f"unknown DeepNets op '{kind}' (known: none, skip_connect, avg_pool, max_pool, conv, "
                   f"conv2, sep_conv, dil_conv, msa, cse)")
