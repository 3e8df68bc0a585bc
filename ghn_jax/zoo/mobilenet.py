"""MobileNetV2 and MobileNetV3 small/large (torchvision.models.mobilenetv2 / mobilenetv3)."""
from typing import Callable, Tuple

import jax
import flax.linen as nn

from ghn_jax.zoo.layers import (BatchNorm2d, Conv2d, Conv2dNormActivation, Dropout, Linear, make_divisible,
                                SqueezeExcitation, global_avg_pool)
from ghn_jax.zoo.registry import register


class DropoutLinear(nn.Module):
    """torch classifier Sequential(Dropout, Linear '1') (MobileNetV2, MNASNet, EfficientNet)."""
    num_classes: int
    dropout: float

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = Dropout(self.dropout)(x, train)
        return Linear(self.num_classes, name="1")(x)


# ------------------------------------------------------------------------------------------
# MobileNetV2
# ------------------------------------------------------------------------------------------

# (expand ratio t, channels c, repeats n, first stride s), torchvision's default setting.
_V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
               (6, 160, 3, 2), (6, 320, 1, 1))


class _V2Conv(nn.Module):
    """torch InvertedResidual.conv: Sequential([expand CNA,] depthwise CNA, conv, bn)."""
    hidden: int
    out: int
    stride: int
    expand: bool

    @nn.compact
    def __call__(self, x, train: bool = False):
        i = 0
        if self.expand:
            x = Conv2dNormActivation(self.hidden, 1, activation=jax.nn.relu6, name="0")(x, train)
            i = 1
        x = Conv2dNormActivation(self.hidden, 3, self.stride, groups=self.hidden,
                                 activation=jax.nn.relu6, name=str(i))(x, train)
        x = Conv2d(self.out, 1, bias=False, name=str(i + 1))(x)
        return BatchNorm2d(train, name=str(i + 2))(x)


class InvertedResidualV2(nn.Module):
    inp: int
    out: int
    stride: int
    expand_ratio: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        hidden = int(round(self.inp * self.expand_ratio))
        y = _V2Conv(hidden, self.out, self.stride, self.expand_ratio != 1, name="conv")(x, train)
        return x + y if self.stride == 1 and self.inp == self.out else y


class _V2Features(nn.Module):
    width_mult: float

    @nn.compact
    def __call__(self, x, train: bool = False):
        inp = make_divisible(32 * self.width_mult, 8)
        last = make_divisible(1280 * max(1.0, self.width_mult), 8)
        x = Conv2dNormActivation(inp, 3, 2, activation=jax.nn.relu6, name="0")(x, train)
        idx = 1
        for t, c, n, s in _V2_SETTING:
            out = make_divisible(c * self.width_mult, 8)
            for i in range(n):
                x = InvertedResidualV2(inp, out, s if i == 0 else 1, t, name=str(idx))(x, train)
                inp, idx = out, idx + 1
        return Conv2dNormActivation(last, 1, activation=jax.nn.relu6, name=str(idx))(x, train)


class MobileNetV2(nn.Module):
    num_classes: int = 1000
    width_mult: float = 1.0
    dropout: float = 0.2

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _V2Features(self.width_mult, name="features")(x, train)
        x = global_avg_pool(x)
        return DropoutLinear(self.num_classes, self.dropout, name="classifier")(x, train)


@register("mobilenet_v2", family="mobilenet")
def mobilenet_v2(num_classes: int = 1000) -> nn.Module:
    return MobileNetV2(num_classes)


# ------------------------------------------------------------------------------------------
# MobileNetV3
# ------------------------------------------------------------------------------------------

# torchvision's bneck_conf rows: (input, kernel, expanded, out, use_se, activation, stride,
# dilation); channels go through make_divisible(c * width_mult) with width_mult = 1.
_V3_LARGE = ((16, 3, 16, 16, False, "RE", 1, 1), (16, 3, 64, 24, False, "RE", 2, 1),
             (24, 3, 72, 24, False, "RE", 1, 1), (24, 5, 72, 40, True, "RE", 2, 1),
             (40, 5, 120, 40, True, "RE", 1, 1), (40, 5, 120, 40, True, "RE", 1, 1),
             (40, 3, 240, 80, False, "HS", 2, 1), (80, 3, 200, 80, False, "HS", 1, 1),
             (80, 3, 184, 80, False, "HS", 1, 1), (80, 3, 184, 80, False, "HS", 1, 1),
             (80, 3, 480, 112, True, "HS", 1, 1), (112, 3, 672, 112, True, "HS", 1, 1),
             (112, 5, 672, 160, True, "HS", 2, 1), (160, 5, 960, 160, True, "HS", 1, 1),
             (160, 5, 960, 160, True, "HS", 1, 1))
_V3_SMALL = ((16, 3, 16, 16, True, "RE", 2, 1), (16, 3, 72, 24, False, "RE", 2, 1),
             (24, 3, 88, 24, False, "RE", 1, 1), (24, 5, 96, 40, True, "HS", 2, 1),
             (40, 5, 240, 40, True, "HS", 1, 1), (40, 5, 240, 40, True, "HS", 1, 1),
             (40, 5, 120, 48, True, "HS", 1, 1), (48, 5, 144, 48, True, "HS", 1, 1),
             (48, 5, 288, 96, True, "HS", 2, 1), (96, 5, 576, 96, True, "HS", 1, 1),
             (96, 5, 576, 96, True, "HS", 1, 1))

# MobileNetV3's norm_layer: BatchNorm2d(eps=0.001, momentum=0.01).
_V3_BN = dict(bn_eps=0.001, bn_momentum=0.01)


class _V3Block(nn.Module):
    """torch InvertedResidual.block: [expand CNA,] depthwise CNA, [SE,] project CN."""
    inp: int
    kernel: int
    exp: int
    out: int
    use_se: bool
    activation: Callable
    stride: int
    dilation: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        act, i = self.activation, 0
        if self.exp != self.inp:
            x = Conv2dNormActivation(self.exp, 1, activation=act, name="0", **_V3_BN)(x, train)
            i = 1
        # torchvision trades stride for dilation in the dilated variant.
        stride = 1 if self.dilation > 1 else self.stride
        x = Conv2dNormActivation(self.exp, self.kernel, stride, groups=self.exp, dilation=self.dilation,
                                 activation=act, name=str(i), **_V3_BN)(x, train)
        i += 1
        if self.use_se:
            x = SqueezeExcitation(self.exp, make_divisible(self.exp // 4, 8),
                                  scale_activation=jax.nn.hard_sigmoid, name=str(i))(x)
            i += 1
        return Conv2dNormActivation(self.out, 1, activation=None, name=str(i), **_V3_BN)(x, train)


class InvertedResidualV3(nn.Module):
    cnf: Tuple   # one bneck_conf row (raw channels)

    @nn.compact
    def __call__(self, x, train: bool = False):
        inp, k, exp, out, use_se, act, stride, dilation = self.cnf
        inp, exp, out = make_divisible(inp), make_divisible(exp), make_divisible(out)
        act = jax.nn.hard_swish if act == "HS" else jax.nn.relu
        y = _V3Block(inp, k, exp, out, use_se, act, stride, dilation, name="block")(x, train)
        return y + x if stride == 1 and inp == out else y


class _V3Features(nn.Module):
    setting: Tuple

    @nn.compact
    def __call__(self, x, train: bool = False):
        first = make_divisible(self.setting[0][0])
        x = Conv2dNormActivation(first, 3, 2, activation=jax.nn.hard_swish, name="0", **_V3_BN)(x, train)
        for i, cnf in enumerate(self.setting):
            x = InvertedResidualV3(cnf, name=str(i + 1))(x, train)
        last_in = make_divisible(self.setting[-1][3])
        return Conv2dNormActivation(6 * last_in, 1, activation=jax.nn.hard_swish,
                                    name=str(len(self.setting) + 1), **_V3_BN)(x, train)


class _V3Classifier(nn.Module):
    """torch: Sequential(Linear '0', Hardswish, Dropout, Linear '3')."""
    last_channel: int
    num_classes: int
    dropout: float

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = jax.nn.hard_swish(Linear(self.last_channel, name="0")(x))
        x = Dropout(self.dropout)(x, train)
        return Linear(self.num_classes, name="3")(x)


class MobileNetV3(nn.Module):
    setting: Tuple
    last_channel: int
    num_classes: int = 1000
    dropout: float = 0.2

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _V3Features(self.setting, name="features")(x, train)
        x = global_avg_pool(x)
        return _V3Classifier(self.last_channel, self.num_classes, self.dropout,
                             name="classifier")(x, train)


@register("mobilenet_v3_large", family="mobilenet")
def mobilenet_v3_large(num_classes: int = 1000) -> nn.Module:
    return MobileNetV3(_V3_LARGE, make_divisible(1280), num_classes)


@register("mobilenet_v3_small", family="mobilenet")
def mobilenet_v3_small(num_classes: int = 1000) -> nn.Module:
    return MobileNetV3(_V3_SMALL, make_divisible(1024), num_classes)
