"""GoogLeNet (torchvision.models.googlenet), auxiliary heads in train mode."""
import jax
import jax.numpy as jnp
import flax.linen as nn

from ghn_jax.zoo.layers import (BatchNorm2d, Conv2d, Dropout, Linear, adaptive_avg_pool2d, global_avg_pool,
                                max_pool2d)
from ghn_jax.zoo.registry import register
from ghn_jax.zoo.vgg import flatten_nchw


class BasicConv2d(nn.Module):
    """conv (no bias) -> BN (eps 1e-3) -> ReLU; shared by GoogLeNet and Inception-v3."""
    out_channels: int
    kernel_size: object
    stride: int = 1
    padding: object = 0

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = Conv2d(self.out_channels, self.kernel_size, self.stride, self.padding, bias=False, name="conv")(x)
        return jax.nn.relu(BatchNorm2d(train, eps=1e-3, name="bn")(x))


class _Seq2(nn.Module):
    """Sequential of two BasicConv2d ('0', '1')."""
    ch: tuple

    @nn.compact
    def __call__(self, x, train):
        x = BasicConv2d(self.ch[0], 1, name="0")(x, train)
        return BasicConv2d(self.ch[1], 3, padding=1, name="1")(x, train)


class _PoolProj(nn.Module):
    """Sequential(MaxPool(3, 1, 1, ceil_mode), BasicConv2d '1')."""
    ch: int

    @nn.compact
    def __call__(self, x, train):
        return BasicConv2d(self.ch, 1, name="1")(max_pool2d(x, 3, 1, 1, ceil_mode=True), train)


class Inception(nn.Module):
    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        b1 = BasicConv2d(self.ch1x1, 1, name="branch1")(x, train)
        b2 = _Seq2((self.ch3x3red, self.ch3x3), name="branch2")(x, train)
        b3 = _Seq2((self.ch5x5red, self.ch5x5), name="branch3")(x, train)
        b4 = _PoolProj(self.pool_proj, name="branch4")(x, train)
        return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class InceptionAux(nn.Module):
    num_classes: int
    dropout: float = 0.7

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = BasicConv2d(128, 1, name="conv")(adaptive_avg_pool2d(x, 4), train)
        x = jax.nn.relu(Linear(1024, name="fc1")(flatten_nchw(x)))
        return Linear(self.num_classes, name="fc2")(Dropout(self.dropout)(x, train))


class GoogLeNet(nn.Module):
    num_classes: int = 1000
    dropout: float = 0.2
    dropout_aux: float = 0.7

    @nn.compact
    def __call__(self, x, train: bool = False):
        # Aux heads run in train mode (as torch's) and at init, so their params always exist.
        aux = train or self.is_initializing()
        x = BasicConv2d(64, 7, 2, 3, name="conv1")(x, train)
        x = max_pool2d(x, 3, 2, ceil_mode=True)
        x = BasicConv2d(64, 1, name="conv2")(x, train)
        x = BasicConv2d(192, 3, padding=1, name="conv3")(x, train)
        x = max_pool2d(x, 3, 2, ceil_mode=True)
        x = Inception(64, 96, 128, 16, 32, 32, name="inception3a")(x, train)
        x = Inception(128, 128, 192, 32, 96, 64, name="inception3b")(x, train)
        x = max_pool2d(x, 3, 2, ceil_mode=True)
        x = Inception(192, 96, 208, 16, 48, 64, name="inception4a")(x, train)
        aux1 = InceptionAux(self.num_classes, self.dropout_aux, name="aux1")(x, train) if aux else None
        x = Inception(160, 112, 224, 24, 64, 64, name="inception4b")(x, train)
        x = Inception(128, 128, 256, 24, 64, 64, name="inception4c")(x, train)
        x = Inception(112, 144, 288, 32, 64, 64, name="inception4d")(x, train)
        aux2 = InceptionAux(self.num_classes, self.dropout_aux, name="aux2")(x, train) if aux else None
        x = Inception(256, 160, 320, 32, 128, 128, name="inception4e")(x, train)
        x = max_pool2d(x, 2, 2, ceil_mode=True)
        x = Inception(256, 160, 320, 32, 128, 128, name="inception5a")(x, train)
        x = Inception(384, 192, 384, 48, 128, 128, name="inception5b")(x, train)
        x = Dropout(self.dropout)(global_avg_pool(x), train)
        x = Linear(self.num_classes, name="fc")(x)
        return (x, aux2, aux1) if train else x


@register("googlenet", family="googlenet")
def googlenet(num_classes: int = 1000) -> nn.Module:
    return GoogLeNet(num_classes)
