"""MNASNet 0.5 / 0.75 / 1.0 / 1.3 (torchvision.models.mnasnet, B1 variant)."""
from typing import Tuple

import jax
import flax.linen as nn

from ghn_jax.zoo.layers import BatchNorm2d, Conv2d, Dropout, Linear, global_avg_pool
from ghn_jax.zoo.registry import register

_BN_MOMENTUM = 1 - 0.9997


def _bn(train, name):
    return BatchNorm2d(train, momentum=_BN_MOMENTUM, name=name)


def round_to_multiple_of(val: float, divisor: int, round_up_bias: float = 0.9) -> int:
    new_val = max(divisor, int(val + divisor / 2) // divisor * divisor)
    return new_val if new_val >= round_up_bias * val else new_val + divisor


def depths(alpha: float):
    return [round_to_multiple_of(d * alpha, 8) for d in (32, 16, 24, 40, 80, 96, 192, 320)]


class _IRLayers(nn.Module):
    mid: int
    out: int
    k: int
    stride: int

    @nn.compact
    def __call__(self, x, train):
        x = jax.nn.relu(_bn(train, "1")(Conv2d(self.mid, 1, bias=False, name="0")(x)))
        x = Conv2d(self.mid, self.k, self.stride, self.k // 2, groups=self.mid, bias=False, name="3")(x)
        x = jax.nn.relu(_bn(train, "4")(x))
        return _bn(train, "7")(Conv2d(self.out, 1, bias=False, name="6")(x))


class InvertedResidual(nn.Module):
    inp: int
    out: int
    k: int
    stride: int
    expansion: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = _IRLayers(self.inp * self.expansion, self.out, self.k, self.stride, name="layers")(x, train)
        return y + x if self.inp == self.out and self.stride == 1 else y


class _Stack(nn.Module):
    inp: int
    out: int
    k: int
    stride: int
    expansion: int
    repeats: int

    @nn.compact
    def __call__(self, x, train):
        x = InvertedResidual(self.inp, self.out, self.k, self.stride, self.expansion, name="0")(x, train)
        for i in range(1, self.repeats):
            x = InvertedResidual(self.out, self.out, self.k, 1, self.expansion, name=str(i))(x, train)
        return x


class _Layers(nn.Module):
    d: Tuple[int, ...]

    @nn.compact
    def __call__(self, x, train):
        d = self.d
        x = jax.nn.relu(_bn(train, "1")(Conv2d(d[0], 3, 2, 1, bias=False, name="0")(x)))
        x = Conv2d(d[0], 3, 1, 1, groups=d[0], bias=False, name="3")(x)
        x = jax.nn.relu(_bn(train, "4")(x))
        x = _bn(train, "7")(Conv2d(d[1], 1, bias=False, name="6")(x))
        stacks = [(d[1], d[2], 3, 2, 3, 3), (d[2], d[3], 5, 2, 3, 3), (d[3], d[4], 5, 2, 6, 3),
                  (d[4], d[5], 3, 1, 6, 2), (d[5], d[6], 5, 2, 6, 4), (d[6], d[7], 3, 1, 6, 1)]
        for i, s in enumerate(stacks):
            x = _Stack(*s, name=str(8 + i))(x, train)
        return jax.nn.relu(_bn(train, "15")(Conv2d(1280, 1, bias=False, name="14")(x)))


class _Classifier(nn.Module):
    num_classes: int
    dropout: float

    @nn.compact
    def __call__(self, x, train):
        return Linear(self.num_classes, name="1")(Dropout(self.dropout)(x, train))


class MNASNet(nn.Module):
    alpha: float
    num_classes: int = 1000
    dropout: float = 0.2

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = global_avg_pool(_Layers(tuple(depths(self.alpha)), name="layers")(x, train))
        return _Classifier(self.num_classes, self.dropout, name="classifier")(x, train)


def _register(suffix, alpha):
    name = f"mnasnet{suffix}"

    @register(name, family="mnasnet")
    def build(num_classes: int = 1000):
        return MNASNet(alpha, num_classes)
    build.__name__ = name
    return build


mnasnet0_5 = _register("0_5", 0.5)
mnasnet0_75 = _register("0_75", 0.75)
mnasnet1_0 = _register("1_0", 1.0)
mnasnet1_3 = _register("1_3", 1.3)
