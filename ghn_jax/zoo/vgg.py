"""AlexNet and VGG-11/13/16/19 with and without BatchNorm (torchvision.models.alexnet / vgg)."""
from typing import Tuple, Union

import jax
import flax.linen as nn

from ghn_jax.zoo.layers import (BatchNorm2d, Conv2d, Dropout, Linear, adaptive_avg_pool2d, max_pool2d)
from ghn_jax.zoo.registry import register


def flatten_nchw(x):
    """torch.flatten(x, 1) of the NCHW tensor: channel-major, so torch's Linear weights fit as is."""
    return x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)


class _Dense3(nn.Module):
    """The 3-layer classifier; `names` are torchvision's Sequential indices of the Linears."""
    names: Tuple[str, str, str]
    num_classes: int
    dropout: float
    dropout_first: bool

    @nn.compact
    def __call__(self, x, train):
        if self.dropout_first:
            # AlexNet: Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear
            x = Dropout(self.dropout)(x, train)
            x = jax.nn.relu(Linear(4096, name=self.names[0])(x))
            x = Dropout(self.dropout)(x, train)
            x = jax.nn.relu(Linear(4096, name=self.names[1])(x))
        else:
            # VGG: Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear
            x = Dropout(self.dropout)(jax.nn.relu(Linear(4096, name=self.names[0])(x)), train)
            x = Dropout(self.dropout)(jax.nn.relu(Linear(4096, name=self.names[1])(x)), train)
        return Linear(self.num_classes, name=self.names[2])(x)


class _AlexFeatures(nn.Module):
    small: bool = False         # small images: first conv stride 1, first max-pool removed

    @nn.compact
    def __call__(self, x):
        x = jax.nn.relu(Conv2d(64, 11, 1 if self.small else 4, 2, name="0")(x))
        if not self.small:
            x = max_pool2d(x, 3, 2)
        x = max_pool2d(jax.nn.relu(Conv2d(192, 5, 1, 2, name="3")(x)), 3, 2)
        x = jax.nn.relu(Conv2d(384, 3, 1, 1, name="6")(x))
        x = jax.nn.relu(Conv2d(256, 3, 1, 1, name="8")(x))
        x = jax.nn.relu(Conv2d(256, 3, 1, 1, name="10")(x))
        return max_pool2d(x, 3, 2)


class AlexNet(nn.Module):
    num_classes: int = 1000
    dropout: float = 0.5
    small: bool = False         # True on small images (ppuda adjust_net, ghn_jax.eval.small)

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = flatten_nchw(adaptive_avg_pool2d(_AlexFeatures(self.small, name="features")(x), 6))
        return _Dense3(("1", "4", "6"), self.num_classes, self.dropout, True, name="classifier")(x, train)


class _VGGFeatures(nn.Module):
    cfg: Tuple[Union[int, str], ...]
    batch_norm: bool
    first_pool: int = 0         # max-pools at torch indices below this are left out

    @nn.compact
    def __call__(self, x, train):
        i = 0
        for v in self.cfg:
            if v == "M":
                if i >= self.first_pool:
                    x = max_pool2d(x, 2, 2)
                i += 1
                continue
            x = Conv2d(v, 3, padding=1, name=str(i))(x)
            if self.batch_norm:
                x = BatchNorm2d(train, name=str(i + 1))(x)
                i += 1
            x = jax.nn.relu(x)
            i += 2
        return x


class VGG(nn.Module):
    cfg: Tuple[Union[int, str], ...]
    batch_norm: bool = False
    num_classes: int = 1000
    dropout: float = 0.5
    first_pool: int = 0         # 10 on small images (ppuda adjust_net, ghn_jax.eval.small)

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _VGGFeatures(self.cfg, self.batch_norm, self.first_pool, name="features")(x, train)
        x = flatten_nchw(adaptive_avg_pool2d(x, 7))
        return _Dense3(("0", "3", "6"), self.num_classes, self.dropout, False, name="classifier")(x, train)


_CFGS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),
}


@register("alexnet", family="alexnet")
def alexnet(num_classes: int = 1000) -> nn.Module:
    return AlexNet(num_classes)


def _register(depth, bn):
    name = f"vgg{depth}{'_bn' if bn else ''}"

    @register(name, family="vgg")
    def build(num_classes: int = 1000):
        return VGG(_CFGS[depth], bn, num_classes)
    build.__name__ = name
    return build


for _d in _CFGS:
    for _bn in (False, True):
        globals()[f"vgg{_d}{'_bn' if _bn else ''}"] = _register(_d, _bn)
