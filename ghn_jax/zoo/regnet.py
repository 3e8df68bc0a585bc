"""RegNetX and RegNetY (torchvision.models.regnet)."""
import math
from typing import Optional, Tuple

import numpy as np
import jax
import flax.linen as nn

from ghn_jax.zoo.layers import Conv2dNormActivation, Linear, SqueezeExcitation, global_avg_pool
from ghn_jax.zoo.layers import make_divisible
from ghn_jax.zoo.registry import register


def block_params(depth: int, w_0: int, w_a: float, w_m: float, group_width: int, bottleneck: float = 1.0):
    """torchvision's BlockParams.from_init_params: per stage (width, depth, group_width).

    torch computes the quantisation in float32; so does this, to land on the same widths.
    """
    f32 = np.float32
    widths_cont = np.arange(depth).astype(f32) * f32(w_a) + f32(w_0)
    capacity = np.round(np.log(widths_cont / f32(w_0)) / f32(math.log(w_m))).astype(f32)
    widths = (np.round((f32(w_0) * np.power(f32(w_m), capacity)) / f32(8)) * 8).astype(np.int64).tolist()
    splits = [w != wp or r != rp for w, wp, r, rp in zip(widths + [0], [0] + widths, widths + [0], [0] + widths)]
    stage_widths = [w for w, t in zip(widths, splits[:-1]) if t]
    stage_depths = np.diff([d for d, t in enumerate(splits) if t]).astype(int).tolist()
    # width / group compatibility with the bottleneck ratio
    w_bot = [int(w * bottleneck) for w in stage_widths]
    groups = [min(group_width, w) for w in w_bot]
    w_bot = [make_divisible(w, g) for w, g in zip(w_bot, groups)]
    stage_widths = [int(w / bottleneck) for w in w_bot]
    return tuple(zip(stage_widths, stage_depths, groups))


class _Transform(nn.Module):
    """torch BottleneckTransform: a (1x1), b (3x3 grouped), [se], c (1x1)."""
    w_in: int
    w_out: int
    stride: int
    group_width: int
    se_ratio: Optional[float]

    @nn.compact
    def __call__(self, x, train):
        w_b = int(round(self.w_out * 1.0))
        g = w_b // self.group_width
        x = Conv2dNormActivation(w_b, 1, name="a")(x, train)
        x = Conv2dNormActivation(w_b, 3, self.stride, groups=g, name="b")(x, train)
        if self.se_ratio:
            x = SqueezeExcitation(w_b, int(round(self.se_ratio * self.w_in)), name="se")(x)
        return Conv2dNormActivation(self.w_out, 1, activation=None, name="c")(x, train)


class ResBottleneckBlock(nn.Module):
    w_in: int
    w_out: int
    stride: int
    group_width: int
    se_ratio: Optional[float]

    @nn.compact
    def __call__(self, x, train: bool = False):
        f = _Transform(self.w_in, self.w_out, self.stride, self.group_width, self.se_ratio, name="f")(x, train)
        if self.w_in != self.w_out or self.stride != 1:
            x = Conv2dNormActivation(self.w_out, 1, self.stride, activation=None, name="proj")(x, train)
        return jax.nn.relu(x + f)


class _Stage(nn.Module):
    index: int
    w_in: int
    w_out: int
    depth: int
    group_width: int
    se_ratio: Optional[float]

    @nn.compact
    def __call__(self, x, train):
        for i in range(self.depth):
            x = ResBottleneckBlock(self.w_in if i == 0 else self.w_out, self.w_out, 2 if i == 0 else 1,
                                   self.group_width, self.se_ratio, name=f"block{self.index}-{i}")(x, train)
        return x


class _Trunk(nn.Module):
    stages: Tuple
    se_ratio: Optional[float]

    @nn.compact
    def __call__(self, x, train):
        w_in = 32
        for i, (w, d, g) in enumerate(self.stages):
            x = _Stage(i + 1, w_in, w, d, g, self.se_ratio, name=f"block{i + 1}")(x, train)
            w_in = w
        return x


class RegNet(nn.Module):
    stages: Tuple          # (width, depth, group_width) per stage
    se_ratio: Optional[float] = None
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = Conv2dNormActivation(32, 3, 2, name="stem")(x, train)
        x = _Trunk(self.stages, self.se_ratio, name="trunk_output")(x, train)
        return Linear(self.num_classes, name="fc")(global_avg_pool(x))


_CONFIGS = {
    "regnet_y_400mf": dict(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8, se=0.25),
    "regnet_y_800mf": dict(depth=14, w_0=56, w_a=38.84, w_m=2.4, group_width=16, se=0.25),
    "regnet_y_1_6gf": dict(depth=27, w_0=48, w_a=20.71, w_m=2.65, group_width=24, se=0.25),
    "regnet_y_3_2gf": dict(depth=21, w_0=80, w_a=42.63, w_m=2.66, group_width=24, se=0.25),
    "regnet_y_8gf": dict(depth=17, w_0=192, w_a=76.82, w_m=2.19, group_width=56, se=0.25),
    "regnet_y_16gf": dict(depth=18, w_0=200, w_a=106.23, w_m=2.48, group_width=112, se=0.25),
    "regnet_y_32gf": dict(depth=20, w_0=232, w_a=115.89, w_m=2.53, group_width=232, se=0.25),
    "regnet_x_400mf": dict(depth=22, w_0=24, w_a=24.48, w_m=2.54, group_width=16, se=None),
    "regnet_x_800mf": dict(depth=16, w_0=56, w_a=35.73, w_m=2.28, group_width=16, se=None),
    "regnet_x_1_6gf": dict(depth=18, w_0=80, w_a=34.01, w_m=2.25, group_width=24, se=None),
    "regnet_x_3_2gf": dict(depth=25, w_0=88, w_a=26.31, w_m=2.25, group_width=48, se=None),
    "regnet_x_8gf": dict(depth=23, w_0=80, w_a=49.56, w_m=2.88, group_width=120, se=None),
    "regnet_x_16gf": dict(depth=22, w_0=216, w_a=55.59, w_m=2.1, group_width=128, se=None),
    "regnet_x_32gf": dict(depth=23, w_0=320, w_a=69.86, w_m=2.0, group_width=168, se=None),
}


def _register(name, cfg):
    @register(name, family="regnet")
    def build(num_classes: int = 1000):
        stages = block_params(cfg["depth"], cfg["w_0"], cfg["w_a"], cfg["w_m"], cfg["group_width"])
        return RegNet(stages, cfg["se"], num_classes)
    build.__name__ = name
    return build


for _name, _cfg in _CONFIGS.items():
    globals()[_name] = _register(_name, _cfg)
