"""MNASNet 0.5 / 0.75 / 1.0 / 1.3 (torchvision.models.mnasnet, the B1 variant).

torchvision writes the whole body as one flat Sequential `layers` (conv, bn, relu, ...),
so the parameterised indices skip the ReLUs: 0, 1, 3, 4, 6, 7, stacks 8-13, 14, 15.
"""
from typing import Tuple

import jax
import flax.linen as nn

from ghn_jax.zoo.layers import BatchNorm2d, Conv2d, global_avg_pool
from ghn_jax.zoo.mobilenet import DropoutLinear
from ghn_jax.zoo.registry import register

# torch momentum of every MNASNet BatchNorm (TensorFlow's decay 0.9997).
_BN_MOMENTUM = 1 - 0.9997


def _bn(train: bool, name: str) -> nn.BatchNorm:
    return BatchNorm2d(train, momentum=_BN_MOMENTUM, name=name)


def round_to_multiple_of(val: float, divisor: int, round_up_bias: float = 0.9) -> int:
    """torchvision's _round_to_multiple_of: rounds up unless within 10% above a multiple."""
    new_val = max(divisor, int(val + divisor / 2) // divisor * divisor)
    return new_val if new_val >= round_up_bias * val else new_val + divisor


def get_depths(alpha: float) -> Tuple[int, ...]:
    return tuple(round_to_multiple_of(d * alpha, 8) for d in (32, 16, 24, 40, 80, 96, 192, 320))


class _IRLayers(nn.Module):
    """torch _InvertedResidual.layers: conv 0, bn 1, relu, dwconv 3, bn 4, relu, conv 6, bn 7."""
    mid: int
    out: int
    kernel: int
    stride: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = jax.nn.relu(_bn(train, "1")(Conv2d(self.mid, 1, bias=False, name="0")(x)))
        x = Conv2d(self.mid, self.kernel, self.stride, self.kernel // 2, groups=self.mid, bias=False,
                   name="3")(x)
        x = jax.nn.relu(_bn(train, "4")(x))
        x = Conv2d(self.out, 1, bias=False, name="6")(x)
        return _bn(train, "7")(x)


class InvertedResidual(nn.Module):
    inp: int
    out: int
    kernel: int
    stride: int
    expansion: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = _IRLayers(self.inp * self.expansion, self.out, self.kernel, self.stride,
                      name="layers")(x, train)
        return y + x if self.inp == self.out and self.stride == 1 else y


class _Stack(nn.Module):
    """torch _stack: Sequential of `repeats` blocks; only the first strides / changes width."""
    inp: int
    out: int
    kernel: int
    stride: int
    expansion: int
    repeats: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i in range(self.repeats):
            x = InvertedResidual(self.inp if i == 0 else self.out, self.out, self.kernel,
                                 self.stride if i == 0 else 1, self.expansion, name=str(i))(x, train)
        return x


class _Layers(nn.Module):
    depths: Tuple[int, ...]

    @nn.compact
    def __call__(self, x, train: bool = False):
        d = self.depths
        x = jax.nn.relu(_bn(train, "1")(Conv2d(d[0], 3, 2, 1, bias=False, name="0")(x)))
        x = Conv2d(d[0], 3, 1, 1, groups=d[0], bias=False, name="3")(x)
        x = jax.nn.relu(_bn(train, "4")(x))
        x = _bn(train, "7")(Conv2d(d[1], 1, bias=False, name="6")(x))
        # (in, out, kernel, stride, expansion, repeats) of torchvision's six _stack calls.
        stacks = ((d[1], d[2], 3, 2, 3, 3), (d[2], d[3], 5, 2, 3, 3), (d[3], d[4], 5, 2, 6, 3),
                  (d[4], d[5], 3, 1, 6, 2), (d[5], d[6], 5, 2, 6, 4), (d[6], d[7], 3, 1, 6, 1))
        for i, stack in enumerate(stacks):
            x = _Stack(*stack, name=str(8 + i))(x, train)
        x = Conv2d(1280, 1, bias=False, name="14")(x)
        return jax.nn.relu(_bn(train, "15")(x))


class MNASNet(nn.Module):
    alpha: float
    num_classes: int = 1000
    dropout: float = 0.2

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _Layers(get_depths(self.alpha), name="layers")(x, train)
        x = global_avg_pool(x)    # torch: x.mean([2, 3])
        return DropoutLinear(self.num_classes, self.dropout, name="classifier")(x, train)


def _register(suffix: str, alpha: float):
    name = f"mnasnet{suffix}"

    @register(name, family="mnasnet")
    def build(num_classes: int = 1000) -> nn.Module:
        return MNASNet(alpha, num_classes)
    build.__name__ = name
    return build


mnasnet0_5 = _register("0_5", 0.5)
mnasnet0_75 = _register("0_75", 0.75)
mnasnet1_0 = _register("1_0", 1.0)
mnasnet1_3 = _register("1_3", 1.3)
