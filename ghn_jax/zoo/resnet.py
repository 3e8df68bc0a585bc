"""ResNet, ResNeXt and Wide ResNet (torchvision.models.resnet)."""
from typing import Sequence

import jax
import flax.linen as nn

from ghn_jax.zoo.layers import BatchNorm2d, Conv2d, Linear, global_avg_pool, max_pool2d
from ghn_jax.zoo.registry import register


class Downsample(nn.Module):
    """torch: Sequential(conv1x1 '0', bn '1')."""
    out_channels: int
    stride: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = Conv2d(self.out_channels, 1, self.stride, bias=False, name="0")(x)
        return BatchNorm2d(train, name="1")(x)


class BasicBlock(nn.Module):
    planes: int
    stride: int = 1
    downsample: bool = False
    groups: int = 1
    base_width: int = 64
    expansion = 1

    @nn.compact
    def __call__(self, x, train: bool = False):
        identity = x
        out = Conv2d(self.planes, 3, self.stride, 1, bias=False, name="conv1")(x)
        out = jax.nn.relu(BatchNorm2d(train, name="bn1")(out))
        out = Conv2d(self.planes, 3, 1, 1, bias=False, name="conv2")(out)
        out = BatchNorm2d(train, name="bn2")(out)
        if self.downsample:
            identity = Downsample(self.planes, self.stride, name="downsample")(x, train)
        return jax.nn.relu(out + identity)


class Bottleneck(nn.Module):
    planes: int
    stride: int = 1
    downsample: bool = False
    groups: int = 1
    base_width: int = 64
    expansion = 4

    @nn.compact
    def __call__(self, x, train: bool = False):
        width = int(self.planes * (self.base_width / 64.0)) * self.groups
        identity = x
        out = Conv2d(width, 1, bias=False, name="conv1")(x)
        out = jax.nn.relu(BatchNorm2d(train, name="bn1")(out))
        out = Conv2d(width, 3, self.stride, 1, groups=self.groups, bias=False, name="conv2")(out)
        out = jax.nn.relu(BatchNorm2d(train, name="bn2")(out))
        out = Conv2d(self.planes * 4, 1, bias=False, name="conv3")(out)
        out = BatchNorm2d(train, name="bn3")(out)
        if self.downsample:
            identity = Downsample(self.planes * 4, self.stride, name="downsample")(x, train)
        return jax.nn.relu(out + identity)


class ResLayer(nn.Module):
    """torch: layerN = Sequential of blocks named '0', '1', ..."""
    block: type
    planes: int
    blocks: int
    stride: int
    in_planes: int
    groups: int
    base_width: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        out_planes = self.planes * self.block.expansion
        down = self.stride != 1 or self.in_planes != out_planes
        for i in range(self.blocks):
            x = self.block(self.planes, self.stride if i == 0 else 1, down and i == 0,
                           self.groups, self.base_width, name=str(i))(x, train)
        return x


class ResNet(nn.Module):
    block: type
    layers: Sequence[int]
    num_classes: int = 1000
    groups: int = 1
    width_per_group: int = 64

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = Conv2d(64, 7, 2, 3, bias=False, name="conv1")(x)
        x = jax.nn.relu(BatchNorm2d(train, name="bn1")(x))
        x = max_pool2d(x, 3, 2, 1)
        in_planes = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), self.layers)):
            x = ResLayer(self.block, planes, n, 1 if i == 0 else 2, in_planes, self.groups,
                         self.width_per_group, name=f"layer{i + 1}")(x, train)
            in_planes = planes * self.block.expansion
        x = global_avg_pool(x)
        return Linear(self.num_classes, name="fc")(x)


def _reg(name, block, layers, groups=1, width=64):
    @register(name, family="resnet")
    def build(num_classes: int = 1000):
        return ResNet(block, tuple(layers), num_classes, groups, width)
    build.__name__ = name
    return build


resnet18 = _reg("resnet18", BasicBlock, [2, 2, 2, 2])
resnet34 = _reg("resnet34", BasicBlock, [3, 4, 6, 3])
resnet50 = _reg("resnet50", Bottleneck, [3, 4, 6, 3])
resnet101 = _reg("resnet101", Bottleneck, [3, 4, 23, 3])
resnet152 = _reg("resnet152", Bottleneck, [3, 8, 36, 3])
resnext50_32x4d = _reg("resnext50_32x4d", Bottleneck, [3, 4, 6, 3], 32, 4)
resnext101_32x8d = _reg("resnext101_32x8d", Bottleneck, [3, 4, 23, 3], 32, 8)
resnext101_64x4d = _reg("resnext101_64x4d", Bottleneck, [3, 4, 23, 3], 64, 4)
wide_resnet50_2 = _reg("wide_resnet50_2", Bottleneck, [3, 4, 6, 3], 1, 128)
wide_resnet101_2 = _reg("wide_resnet101_2", Bottleneck, [3, 4, 23, 3], 1, 128)
