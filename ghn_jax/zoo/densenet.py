"""DenseNet-121/161/169/201 (torchvision.models.densenet)."""
from typing import Tuple

import jax
import jax.numpy as jnp
import flax.linen as nn

from ghn_jax.zoo.layers import BatchNorm2d, Conv2d, Linear, avg_pool2d, global_avg_pool, max_pool2d
from ghn_jax.zoo.registry import register


class DenseLayer(nn.Module):
    growth_rate: int
    bn_size: int

    @nn.compact
    def __call__(self, features, train: bool = False):
        x = jnp.concatenate(features, axis=-1) if len(features) > 1 else features[0]
        x = Conv2d(self.bn_size * self.growth_rate, 1, bias=False, name="conv1")(
            jax.nn.relu(BatchNorm2d(train, name="norm1")(x)))
        return Conv2d(self.growth_rate, 3, padding=1, bias=False, name="conv2")(
            jax.nn.relu(BatchNorm2d(train, name="norm2")(x)))


class DenseBlock(nn.Module):
    num_layers: int
    growth_rate: int
    bn_size: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        features = [x]
        for i in range(self.num_layers):
            layer = DenseLayer(self.growth_rate, self.bn_size, name=f"denselayer{i + 1}")
            features.append(layer(features, train))
        return jnp.concatenate(features, axis=-1)


class Transition(nn.Module):
    out_features: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = jax.nn.relu(BatchNorm2d(train, name="norm")(x))
        x = Conv2d(self.out_features, 1, bias=False, name="conv")(x)
        return avg_pool2d(x, 2, 2)


class _Features(nn.Module):
    growth_rate: int
    block_config: Tuple[int, ...]
    num_init_features: int
    bn_size: int

    @nn.compact
    def __call__(self, x, train):
        x = Conv2d(self.num_init_features, 7, 2, 3, bias=False, name="conv0")(x)
        x = jax.nn.relu(BatchNorm2d(train, name="norm0")(x))
        x = max_pool2d(x, 3, 2, 1)
        n = self.num_init_features
        for i, layers in enumerate(self.block_config):
            x = DenseBlock(layers, self.growth_rate, self.bn_size, name=f"denseblock{i + 1}")(x, train)
            n += layers * self.growth_rate
            if i != len(self.block_config) - 1:
                x = Transition(n // 2, name=f"transition{i + 1}")(x, train)
                n //= 2
        return BatchNorm2d(train, name="norm5")(x)


class DenseNet(nn.Module):
    growth_rate: int = 32
    block_config: Tuple[int, ...] = (6, 12, 24, 16)
    num_init_features: int = 64
    bn_size: int = 4
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _Features(self.growth_rate, self.block_config, self.num_init_features, self.bn_size,
                      name="features")(x, train)
        x = global_avg_pool(jax.nn.relu(x))
        return Linear(self.num_classes, name="classifier")(x)


def _register(depth, growth, blocks, init):
    name = f"densenet{depth}"

    @register(name, family="densenet")
    def build(num_classes: int = 1000):
        return DenseNet(growth, blocks, init, 4, num_classes)
    build.__name__ = name
    return build


densenet121 = _register(121, 32, (6, 12, 24, 16), 64)
densenet161 = _register(161, 48, (6, 12, 36, 24), 96)
densenet169 = _register(169, 32, (6, 12, 32, 32), 64)
densenet201 = _register(201, 32, (6, 12, 48, 32), 64)
