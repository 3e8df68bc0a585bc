"""EfficientNet B0-B7 and V2 S/M/L (torchvision.models.efficientnet)."""
import math
from typing import Tuple

import jax
import flax.linen as nn

from ghn_jax.zoo.layers import (Conv2dNormActivation, Dropout, Linear, SqueezeExcitation, StochasticDepth,
                                global_avg_pool)
from ghn_jax.zoo.mobilenet import make_divisible
from ghn_jax.zoo.registry import register

# (kind 'mb' / 'fused', expand_ratio, kernel, stride, in, out, layers)
_B = [("mb", 1, 3, 1, 32, 16, 1), ("mb", 6, 3, 2, 16, 24, 2), ("mb", 6, 5, 2, 24, 40, 2),
      ("mb", 6, 3, 2, 40, 80, 3), ("mb", 6, 5, 1, 80, 112, 3), ("mb", 6, 5, 2, 112, 192, 4),
      ("mb", 6, 3, 1, 192, 320, 1)]
_V2 = {
    "s": [("fused", 1, 3, 1, 24, 24, 2), ("fused", 4, 3, 2, 24, 48, 4), ("fused", 4, 3, 2, 48, 64, 4),
          ("mb", 4, 3, 2, 64, 128, 6), ("mb", 6, 3, 1, 128, 160, 9), ("mb", 6, 3, 2, 160, 256, 15)],
    "m": [("fused", 1, 3, 1, 24, 24, 3), ("fused", 4, 3, 2, 24, 48, 5), ("fused", 4, 3, 2, 48, 80, 5),
          ("mb", 4, 3, 2, 80, 160, 7), ("mb", 6, 3, 1, 160, 176, 14), ("mb", 6, 3, 2, 176, 304, 18),
          ("mb", 6, 3, 1, 304, 512, 5)],
    "l": [("fused", 1, 3, 1, 32, 32, 4), ("fused", 4, 3, 2, 32, 64, 7), ("fused", 4, 3, 2, 64, 96, 7),
          ("mb", 4, 3, 2, 96, 192, 10), ("mb", 6, 3, 1, 192, 224, 19), ("mb", 6, 3, 2, 224, 384, 25),
          ("mb", 6, 3, 1, 384, 640, 7)],
}


class _BlockBody(nn.Module):
    """torch: MBConv.block / FusedMBConv.block (a Sequential of Conv2dNormActivation / SE)."""
    kind: str
    expand_ratio: float
    kernel: int
    stride: int
    inp: int
    out: int
    bn: Tuple[float, float]

    @nn.compact
    def __call__(self, x, train):
        bn = dict(bn_eps=self.bn[0], bn_momentum=self.bn[1])
        exp = make_divisible(self.inp * self.expand_ratio, 8)
        silu = jax.nn.silu
        if self.kind == "fused":
            if exp != self.inp:
                x = Conv2dNormActivation(exp, self.kernel, self.stride, activation=silu, name="0", **bn)(x, train)
                return Conv2dNormActivation(self.out, 1, activation=None, name="1", **bn)(x, train)
            return Conv2dNormActivation(self.out, self.kernel, self.stride, activation=silu, name="0", **bn)(x, train)
        i = 0
        if exp != self.inp:
            x = Conv2dNormActivation(exp, 1, activation=silu, name="0", **bn)(x, train)
            i = 1
        x = Conv2dNormActivation(exp, self.kernel, self.stride, groups=exp, activation=silu, name=str(i), **bn)(x, train)
        x = SqueezeExcitation(exp, max(1, self.inp // 4), activation=silu, name=str(i + 1))(x)
        return Conv2dNormActivation(self.out, 1, activation=None, name=str(i + 2), **bn)(x, train)


class MBConv(nn.Module):
    """MBConv / FusedMBConv with row stochastic depth on the residual branch."""
    kind: str
    expand_ratio: float
    kernel: int
    stride: int
    inp: int
    out: int
    sd_prob: float
    bn: Tuple[float, float]

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = _BlockBody(self.kind, self.expand_ratio, self.kernel, self.stride, self.inp, self.out, self.bn,
                       name="block")(x, train)
        if self.stride == 1 and self.inp == self.out:
            y = StochasticDepth(self.sd_prob, "row")(y, train) + x
        return y


class _Stage(nn.Module):
    blocks: Tuple

    @nn.compact
    def __call__(self, x, train):
        for i, b in enumerate(self.blocks):
            x = MBConv(*b, name=str(i))(x, train)
        return x


class EfficientNet(nn.Module):
    setting: Tuple             # per stage: (kind, expand, kernel, stride, in, out, layers), channels final
    last_channel: int
    num_classes: int = 1000
    dropout: float = 0.2
    stochastic_depth_prob: float = 0.2
    bn: Tuple[float, float] = (1e-5, 0.1)

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _Features(self.setting, self.last_channel, self.stochastic_depth_prob, self.bn, name="features")(x, train)
        x = global_avg_pool(x)
        return _Head(self.num_classes, self.dropout, name="classifier")(x, train)


class _Features(nn.Module):
    setting: Tuple
    last_channel: int
    sd_prob: float
    bn: Tuple[float, float]

    @nn.compact
    def __call__(self, x, train):
        bn = dict(bn_eps=self.bn[0], bn_momentum=self.bn[1])
        x = Conv2dNormActivation(self.setting[0][4], 3, 2, activation=jax.nn.silu, name="0", **bn)(x, train)
        total = sum(s[6] for s in self.setting)
        block_id = 0
        for si, (kind, e, k, s, inp, out, n) in enumerate(self.setting):
            blocks = []
            for j in range(n):
                prob = self.sd_prob * float(block_id) / total
                blocks.append((kind, e, k, s if j == 0 else 1, inp if j == 0 else out, out, prob, self.bn))
                block_id += 1
            x = _Stage(tuple(blocks), name=str(si + 1))(x, train)
        return Conv2dNormActivation(self.last_channel, 1, activation=jax.nn.silu,
                                    name=str(len(self.setting) + 1), **bn)(x, train)


class _Head(nn.Module):
    num_classes: int
    dropout: float

    @nn.compact
    def __call__(self, x, train):
        return Linear(self.num_classes, name="1")(Dropout(self.dropout)(x, train))


def _b_setting(width: float, depth: float):
    adj = lambda c: make_divisible(c * width, 8)
    return tuple((k, e, kk, s, adj(i), adj(o), int(math.ceil(n * depth))) for k, e, kk, s, i, o, n in _B)


def _register_b(idx, width, depth, dropout, bn):
    name = f"efficientnet_b{idx}"

    @register(name, family="efficientnet")
    def build(num_classes: int = 1000):
        setting = _b_setting(width, depth)
        return EfficientNet(setting, 4 * setting[-1][5], num_classes, dropout, 0.2, bn)
    build.__name__ = name
    return build


_BN_DEFAULT, _BN_B5 = (1e-5, 0.1), (1e-3, 0.01)
efficientnet_b0 = _register_b(0, 1.0, 1.0, 0.2, _BN_DEFAULT)
efficientnet_b1 = _register_b(1, 1.0, 1.1, 0.2, _BN_DEFAULT)
efficientnet_b2 = _register_b(2, 1.1, 1.2, 0.3, _BN_DEFAULT)
efficientnet_b3 = _register_b(3, 1.2, 1.4, 0.3, _BN_DEFAULT)
efficientnet_b4 = _register_b(4, 1.4, 1.8, 0.4, _BN_DEFAULT)
efficientnet_b5 = _register_b(5, 1.6, 2.2, 0.4, _BN_B5)
efficientnet_b6 = _register_b(6, 1.8, 2.6, 0.5, _BN_B5)
efficientnet_b7 = _register_b(7, 2.0, 3.1, 0.5, _BN_B5)


def _register_v2(size, dropout):
    name = f"efficientnet_v2_{size}"

    @register(name, family="efficientnet")
    def build(num_classes: int = 1000):
        return EfficientNet(tuple(_V2[size]), 1280, num_classes, dropout, 0.2, (1e-3, 0.1))
    build.__name__ = name
    return build


efficientnet_v2_s = _register_v2("s", 0.2)
efficientnet_v2_m = _register_v2("m", 0.3)
efficientnet_v2_l = _register_v2("l", 0.4)
