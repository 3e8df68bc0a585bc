"""ShuffleNetV2 x0.5 / x1.0 / x1.5 / x2.0 (torchvision.models.shufflenetv2)."""
from typing import Tuple

import jax
import jax.numpy as jnp
import flax.linen as nn

from ghn_jax.zoo.layers import BatchNorm2d, Conv2d, Linear, global_avg_pool, max_pool2d
from ghn_jax.zoo.registry import register


def channel_shuffle(x, groups: int):
    """torch's channel_shuffle (NCHW view/transpose) expressed on NHWC."""
    n, h, w, c = x.shape
    return x.reshape(n, h, w, groups, c // groups).swapaxes(3, 4).reshape(n, h, w, c)


class _Branch1(nn.Module):
    inp: int
    out: int
    stride: int

    @nn.compact
    def __call__(self, x, train):
        x = Conv2d(self.inp, 3, self.stride, 1, groups=self.inp, bias=False, name="0")(x)
        x = BatchNorm2d(train, name="1")(x)
        x = Conv2d(self.out, 1, bias=False, name="2")(x)
        return jax.nn.relu(BatchNorm2d(train, name="3")(x))


class _Branch2(nn.Module):
    out: int
    stride: int

    @nn.compact
    def __call__(self, x, train):
        x = jax.nn.relu(BatchNorm2d(train, name="1")(Conv2d(self.out, 1, bias=False, name="0")(x)))
        x = Conv2d(self.out, 3, self.stride, 1, groups=self.out, bias=False, name="3")(x)
        x = BatchNorm2d(train, name="4")(x)
        x = Conv2d(self.out, 1, bias=False, name="5")(x)
        return jax.nn.relu(BatchNorm2d(train, name="6")(x))


class InvertedResidual(nn.Module):
    inp: int
    oup: int
    stride: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        bf = self.oup // 2
        if self.stride == 1:
            x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
            out = jnp.concatenate([x1, _Branch2(bf, 1, name="branch2")(x2, train)], axis=-1)
        else:
            out = jnp.concatenate([_Branch1(self.inp, bf, self.stride, name="branch1")(x, train),
                                   _Branch2(bf, self.stride, name="branch2")(x, train)], axis=-1)
        return channel_shuffle(out, 2)


class _Stage(nn.Module):
    inp: int
    out: int
    repeats: int

    @nn.compact
    def __call__(self, x, train):
        x = InvertedResidual(self.inp, self.out, 2, name="0")(x, train)
        for i in range(1, self.repeats):
            x = InvertedResidual(self.out, self.out, 1, name=str(i))(x, train)
        return x


class _ConvBN(nn.Module):
    out: int
    k: int
    stride: int
    pad: int

    @nn.compact
    def __call__(self, x, train):
        x = Conv2d(self.out, self.k, self.stride, self.pad, bias=False, name="0")(x)
        return jax.nn.relu(BatchNorm2d(train, name="1")(x))


class ShuffleNetV2(nn.Module):
    repeats: Tuple[int, int, int]
    channels: Tuple[int, int, int, int, int]
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _ConvBN(self.channels[0], 3, 2, 1, name="conv1")(x, train)
        x = max_pool2d(x, 3, 2, 1)
        inp = self.channels[0]
        for i, (r, out) in enumerate(zip(self.repeats, self.channels[1:4])):
            x = _Stage(inp, out, r, name=f"stage{i + 2}")(x, train)
            inp = out
        x = _ConvBN(self.channels[4], 1, 1, 0, name="conv5")(x, train)
        return Linear(self.num_classes, name="fc")(global_avg_pool(x))


def _register(suffix, channels):
    name = f"shufflenet_v2_{suffix}"

    @register(name, family="shufflenet")
    def build(num_classes: int = 1000):
        return ShuffleNetV2((4, 8, 4), channels, num_classes)
    build.__name__ = name
    return build


shufflenet_v2_x0_5 = _register("x0_5", (24, 48, 96, 192, 1024))
shufflenet_v2_x1_0 = _register("x1_0", (24, 116, 232, 464, 1024))
shufflenet_v2_x1_5 = _register("x1_5", (24, 176, 352, 704, 1024))
shufflenet_v2_x2_0 = _register("x2_0", (24, 244, 488, 976, 2048))
