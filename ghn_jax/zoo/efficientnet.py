"""EfficientNet B0-B7 and EfficientNetV2 S/M/L (torchvision.models.efficientnet)."""
import math
from typing import Tuple

import jax
import flax.linen as nn

from ghn_jax.zoo.layers import Conv2dNormActivation, SqueezeExcitation, StochasticDepth, global_avg_pool
from ghn_jax.zoo.layers import make_divisible
from ghn_jax.zoo.mobilenet import DropoutLinear
from ghn_jax.zoo.registry import register

# torchvision's _efficientnet_conf, one row per stage:
# (block 'mb' (MBConv) / 'fused' (FusedMBConv), expand_ratio, kernel, stride, in, out, layers).
_B_STAGES = (("mb", 1, 3, 1, 32, 16, 1), ("mb", 6, 3, 2, 16, 24, 2), ("mb", 6, 5, 2, 24, 40, 2),
             ("mb", 6, 3, 2, 40, 80, 3), ("mb", 6, 5, 1, 80, 112, 3), ("mb", 6, 5, 2, 112, 192, 4),
             ("mb", 6, 3, 1, 192, 320, 1))
_V2_STAGES = {
    "s": (("fused", 1, 3, 1, 24, 24, 2), ("fused", 4, 3, 2, 24, 48, 4), ("fused", 4, 3, 2, 48, 64, 4),
          ("mb", 4, 3, 2, 64, 128, 6), ("mb", 6, 3, 1, 128, 160, 9), ("mb", 6, 3, 2, 160, 256, 15)),
    "m": (("fused", 1, 3, 1, 24, 24, 3), ("fused", 4, 3, 2, 24, 48, 5), ("fused", 4, 3, 2, 48, 80, 5),
          ("mb", 4, 3, 2, 80, 160, 7), ("mb", 6, 3, 1, 160, 176, 14), ("mb", 6, 3, 2, 176, 304, 18),
          ("mb", 6, 3, 1, 304, 512, 5)),
    "l": (("fused", 1, 3, 1, 32, 32, 4), ("fused", 4, 3, 2, 32, 64, 7), ("fused", 4, 3, 2, 64, 96, 7),
          ("mb", 4, 3, 2, 96, 192, 10), ("mb", 6, 3, 1, 192, 224, 19), ("mb", 6, 3, 2, 224, 384, 25),
          ("mb", 6, 3, 1, 384, 640, 7)),
}


def _b_stages(width_mult: float, depth_mult: float) -> Tuple:
    """MBConvConfig's scaling: channels by make_divisible(c * width), layers by ceil(n * depth)."""
    return tuple((kind, e, k, s, make_divisible(i * width_mult, 8), make_divisible(o * width_mult, 8),
                  int(math.ceil(n * depth_mult)))
                 for kind, e, k, s, i, o, n in _B_STAGES)


class _MBConvBody(nn.Module):
    """torch MBConv.block: [expand CNA 1x1,] depthwise CNA, SE (SiLU / sigmoid), project CN."""
    expand_ratio: float
    kernel: int
    stride: int
    inp: int
    out: int
    bn: dict

    @nn.compact
    def __call__(self, x, train: bool = False):
        exp = make_divisible(self.inp * self.expand_ratio, 8)
        i = 0
        if exp != self.inp:
            x = Conv2dNormActivation(exp, 1, activation=jax.nn.silu, name="0", **self.bn)(x, train)
            i = 1
        x = Conv2dNormActivation(exp, self.kernel, self.stride, groups=exp, activation=jax.nn.silu,
                                 name=str(i), **self.bn)(x, train)
        # The squeeze width follows the block's input channels, not the expanded ones.
        x = SqueezeExcitation(exp, max(1, self.inp // 4), activation=jax.nn.silu, name=str(i + 1))(x)
        return Conv2dNormActivation(self.out, 1, activation=None, name=str(i + 2), **self.bn)(x, train)


class _FusedMBConvBody(nn.Module):
    """torch FusedMBConv.block: full kxk expand CNA + project CN, or one kxk CNA if not expanding."""
    expand_ratio: float
    kernel: int
    stride: int
    inp: int
    out: int
    bn: dict

    @nn.compact
    def __call__(self, x, train: bool = False):
        exp = make_divisible(self.inp * self.expand_ratio, 8)
        if exp == self.inp:
            return Conv2dNormActivation(self.out, self.kernel, self.stride, activation=jax.nn.silu,
                                        name="0", **self.bn)(x, train)
        x = Conv2dNormActivation(exp, self.kernel, self.stride, activation=jax.nn.silu,
                                 name="0", **self.bn)(x, train)
        return Conv2dNormActivation(self.out, 1, activation=None, name="1", **self.bn)(x, train)


class MBConv(nn.Module):
    """MBConv or FusedMBConv: body 'block', residual through row stochastic depth."""
    kind: str          # 'mb' or 'fused'
    expand_ratio: float
    kernel: int
    stride: int
    inp: int
    out: int
    sd_prob: float
    bn: dict

    @nn.compact
    def __call__(self, x, train: bool = False):
        body = _FusedMBConvBody if self.kind == "fused" else _MBConvBody
        y = body(self.expand_ratio, self.kernel, self.stride, self.inp, self.out, self.bn,
                 name="block")(x, train)
        if self.stride == 1 and self.inp == self.out:
            y = StochasticDepth(self.sd_prob, "row", name="stochastic_depth")(y, train) + x
        return y


class _Features(nn.Module):
    """torch features: stem CNA '0', one Sequential per stage '1'..'S', head CNA 'S+1'."""
    stages: Tuple
    last_channel: int
    stochastic_depth_prob: float
    bn: dict

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = Conv2dNormActivation(self.stages[0][4], 3, 2, activation=jax.nn.silu, name="0",
                                 **self.bn)(x, train)
        total = sum(stage[6] for stage in self.stages)
        block_id = 0
        for si, (kind, e, k, s, inp, out, n) in enumerate(self.stages):
            x = _Stage(kind, e, k, s, inp, out, n, block_id, total, self.stochastic_depth_prob,
                       self.bn, name=str(si + 1))(x, train)
            block_id += n
        return Conv2dNormActivation(self.last_channel, 1, activation=jax.nn.silu,
                                    name=str(len(self.stages) + 1), **self.bn)(x, train)


class _Stage(nn.Module):
    """torch: Sequential of blocks '0', '1', ...; only the first one strides / changes width."""
    kind: str
    expand_ratio: float
    kernel: int
    stride: int
    inp: int
    out: int
    layers: int
    first_block_id: int
    total_blocks: int
    stochastic_depth_prob: float
    bn: dict

    @nn.compact
    def __call__(self, x, train: bool = False):
        for j in range(self.layers):
            # torchvision's schedule: linear in the block's index over the whole network.
            sd_prob = self.stochastic_depth_prob * float(self.first_block_id + j) / self.total_blocks
            x = MBConv(self.kind, self.expand_ratio, self.kernel, self.stride if j == 0 else 1,
                       self.inp if j == 0 else self.out, self.out, sd_prob, self.bn, name=str(j))(x, train)
        return x


class EfficientNet(nn.Module):
    stages: Tuple               # rows as in _B_STAGES, channels and layers already scaled
    last_channel: int
    num_classes: int = 1000
    dropout: float = 0.2
    stochastic_depth_prob: float = 0.2
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1

    @nn.compact
    def __call__(self, x, train: bool = False):
        bn = dict(bn_eps=self.bn_eps, bn_momentum=self.bn_momentum)
        x = _Features(self.stages, self.last_channel, self.stochastic_depth_prob, bn,
                      name="features")(x, train)
        x = global_avg_pool(x)
        return DropoutLinear(self.num_classes, self.dropout, name="classifier")(x, train)


def _register_b(idx: int, width_mult: float, depth_mult: float, dropout: float, bn_eps: float = 1e-5,
                bn_momentum: float = 0.1):
    name = f"efficientnet_b{idx}"

    @register(name, family="efficientnet")
    def build(num_classes: int = 1000) -> nn.Module:
        stages = _b_stages(width_mult, depth_mult)
        return EfficientNet(stages, 4 * stages[-1][5], num_classes, dropout, 0.2, bn_eps, bn_momentum)
    build.__name__ = name
    return build


efficientnet_b0 = _register_b(0, 1.0, 1.0, 0.2)
efficientnet_b1 = _register_b(1, 1.0, 1.1, 0.2)
efficientnet_b2 = _register_b(2, 1.1, 1.2, 0.3)
efficientnet_b3 = _register_b(3, 1.2, 1.4, 0.3)
efficientnet_b4 = _register_b(4, 1.4, 1.8, 0.4)
# B5-B7 use BatchNorm2d(eps=0.001, momentum=0.01) in torchvision.
efficientnet_b5 = _register_b(5, 1.6, 2.2, 0.4, 1e-3, 0.01)
efficientnet_b6 = _register_b(6, 1.8, 2.6, 0.5, 1e-3, 0.01)
efficientnet_b7 = _register_b(7, 2.0, 3.1, 0.5, 1e-3, 0.01)


def _register_v2(size: str, dropout: float):
    name = f"efficientnet_v2_{size}"

    @register(name, family="efficientnet")
    def build(num_classes: int = 1000) -> nn.Module:
        # V2: fixed last_channel 1280, BatchNorm2d(eps=1e-3) with torch's default momentum.
        return EfficientNet(_V2_STAGES[size], 1280, num_classes, dropout, 0.2, 1e-3, 0.1)
    build.__name__ = name
    return build


efficientnet_v2_s = _register_v2("s", 0.2)
efficientnet_v2_m = _register_v2("m", 0.3)
efficientnet_v2_l = _register_v2("l", 0.4)
