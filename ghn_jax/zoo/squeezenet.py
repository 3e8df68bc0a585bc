"""SqueezeNet 1.0 and 1.1 (torchvision.models.squeezenet)."""
import jax
import jax.numpy as jnp
import flax.linen as nn

from ghn_jax.zoo.layers import Conv2d, Dropout, global_avg_pool, max_pool2d
from ghn_jax.zoo.registry import register


class Fire(nn.Module):
    squeeze: int
    expand1x1: int
    expand3x3: int

    @nn.compact
    def __call__(self, x):
        x = jax.nn.relu(Conv2d(self.squeeze, 1, name="squeeze")(x))
        e1 = jax.nn.relu(Conv2d(self.expand1x1, 1, name="expand1x1")(x))
        e3 = jax.nn.relu(Conv2d(self.expand3x3, 3, padding=1, name="expand3x3")(x))
        return jnp.concatenate([e1, e3], axis=-1)


# Sequential layout of `features`: (index, layer) with 'M' = MaxPool(3, 2, ceil_mode=True)
_V10 = ((0, ("conv", 96, 7)), (2, "M"), (3, (16, 64, 64)), (4, (16, 64, 64)), (5, (32, 128, 128)), (6, "M"),
        (7, (32, 128, 128)), (8, (48, 192, 192)), (9, (48, 192, 192)), (10, (64, 256, 256)), (11, "M"),
        (12, (64, 256, 256)))
_V11 = ((0, ("conv", 64, 3)), (2, "M"), (3, (16, 64, 64)), (4, (16, 64, 64)), (5, "M"), (6, (32, 128, 128)),
        (7, (32, 128, 128)), (8, "M"), (9, (48, 192, 192)), (10, (48, 192, 192)), (11, (64, 256, 256)),
        (12, (64, 256, 256)))


class _Features(nn.Module):
    layout: tuple

    @nn.compact
    def __call__(self, x):
        for idx, layer in self.layout:
            if layer == "M":
                x = max_pool2d(x, 3, 2, ceil_mode=True)
            elif layer[0] == "conv":
                x = jax.nn.relu(Conv2d(layer[1], layer[2], 2, name=str(idx))(x))
            else:
                x = Fire(*layer, name=str(idx))(x)
        return x


class _Classifier(nn.Module):
    num_classes: int
    dropout: float

    @nn.compact
    def __call__(self, x, train):
        x = Dropout(self.dropout)(x, train)
        return jax.nn.relu(Conv2d(self.num_classes, 1, name="1")(x))


class SqueezeNet(nn.Module):
    layout: tuple
    num_classes: int = 1000
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _Features(self.layout, name="features")(x)
        # The 1x1-conv classifier comes before the global pooling, as in torchvision.
        return global_avg_pool(_Classifier(self.num_classes, self.dropout, name="classifier")(x, train))


@register("squeezenet1_0", family="squeezenet")
def squeezenet1_0(num_classes: int = 1000) -> nn.Module:
    return SqueezeNet(_V10, num_classes)


@register("squeezenet1_1", family="squeezenet")
def squeezenet1_1(num_classes: int = 1000) -> nn.Module:
    return SqueezeNet(_V11, num_classes)
