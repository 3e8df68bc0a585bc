"""Inception-v3 (torchvision.models.inception_v3), 299 px, auxiliary head in train mode."""
import jax.numpy as jnp
import flax.linen as nn

from ghn_jax.zoo.googlenet import BasicConv2d
from ghn_jax.zoo.layers import Dropout, Linear, avg_pool2d, global_avg_pool, max_pool2d
from ghn_jax.zoo.registry import register


def _pool(x):
    return avg_pool2d(x, 3, 1, 1)        # F.avg_pool2d(3, stride 1, padding 1), count_include_pad=True


class InceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        c = lambda ch, k, name, **kw: BasicConv2d(ch, k, name=name, **kw)
        b1 = c(64, 1, "branch1x1")(x, train)
        b5 = c(64, 5, "branch5x5_2", padding=2)(c(48, 1, "branch5x5_1")(x, train), train)
        b3 = c(64, 1, "branch3x3dbl_1")(x, train)
        b3 = c(96, 3, "branch3x3dbl_3", padding=1)(c(96, 3, "branch3x3dbl_2", padding=1)(b3, train), train)
        bp = c(self.pool_features, 1, "branch_pool")(_pool(x), train)
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        b3 = BasicConv2d(384, 3, 2, name="branch3x3")(x, train)
        d = BasicConv2d(64, 1, name="branch3x3dbl_1")(x, train)
        d = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(d, train)
        d = BasicConv2d(96, 3, 2, name="branch3x3dbl_3")(d, train)
        return jnp.concatenate([b3, d, max_pool2d(x, 3, 2)], axis=-1)


class InceptionC(nn.Module):
    c7: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        c7 = self.c7
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))      # (kernel, padding)
        b1 = BasicConv2d(192, 1, name="branch1x1")(x, train)
        b7 = BasicConv2d(c7, 1, name="branch7x7_1")(x, train)
        b7 = BasicConv2d(c7, *row[:1], padding=row[1], name="branch7x7_2")(b7, train)
        b7 = BasicConv2d(192, *col[:1], padding=col[1], name="branch7x7_3")(b7, train)
        d = BasicConv2d(c7, 1, name="branch7x7dbl_1")(x, train)
        for i, (ch, (k, p)) in enumerate([(c7, col), (c7, row), (c7, col), (192, row)]):
            d = BasicConv2d(ch, k, padding=p, name=f"branch7x7dbl_{i + 2}")(d, train)
        bp = BasicConv2d(192, 1, name="branch_pool")(_pool(x), train)
        return jnp.concatenate([b1, b7, d, bp], axis=-1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        b3 = BasicConv2d(192, 1, name="branch3x3_1")(x, train)
        b3 = BasicConv2d(320, 3, 2, name="branch3x3_2")(b3, train)
        b7 = BasicConv2d(192, 1, name="branch7x7x3_1")(x, train)
        b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7, train)
        b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7, train)
        b7 = BasicConv2d(192, 3, 2, name="branch7x7x3_4")(b7, train)
        return jnp.concatenate([b3, b7, max_pool2d(x, 3, 2)], axis=-1)


class InceptionE(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        b1 = BasicConv2d(320, 1, name="branch1x1")(x, train)
        b3 = BasicConv2d(384, 1, name="branch3x3_1")(x, train)
        b3 = jnp.concatenate([BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3, train),
                              BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3, train)], axis=-1)
        d = BasicConv2d(448, 1, name="branch3x3dbl_1")(x, train)
        d = BasicConv2d(384, 3, padding=1, name="branch3x3dbl_2")(d, train)
        d = jnp.concatenate([BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(d, train),
                             BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(d, train)], axis=-1)
        bp = BasicConv2d(192, 1, name="branch_pool")(_pool(x), train)
        return jnp.concatenate([b1, b3, d, bp], axis=-1)


class InceptionAux(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = avg_pool2d(x, 5, 3)
        x = BasicConv2d(128, 1, name="conv0")(x, train)
        x = BasicConv2d(768, 5, name="conv1")(x, train)
        return Linear(self.num_classes, name="fc")(global_avg_pool(x))


class Inception3(nn.Module):
    num_classes: int = 1000
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x, train: bool = False):
        aux_on = train or self.is_initializing()        # aux params exist even for eval use
        x = BasicConv2d(32, 3, 2, name="Conv2d_1a_3x3")(x, train)
        x = BasicConv2d(32, 3, name="Conv2d_2a_3x3")(x, train)
        x = BasicConv2d(64, 3, padding=1, name="Conv2d_2b_3x3")(x, train)
        x = max_pool2d(x, 3, 2)
        x = BasicConv2d(80, 1, name="Conv2d_3b_1x1")(x, train)
        x = BasicConv2d(192, 3, name="Conv2d_4a_3x3")(x, train)
        x = max_pool2d(x, 3, 2)
        x = InceptionA(32, name="Mixed_5b")(x, train)
        x = InceptionA(64, name="Mixed_5c")(x, train)
        x = InceptionA(64, name="Mixed_5d")(x, train)
        x = InceptionB(name="Mixed_6a")(x, train)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = InceptionC(c7, name=name)(x, train)
        aux = InceptionAux(self.num_classes, name="AuxLogits")(x, train) if aux_on else None
        x = InceptionD(name="Mixed_7a")(x, train)
        x = InceptionE(name="Mixed_7b")(x, train)
        x = InceptionE(name="Mixed_7c")(x, train)
        x = Dropout(self.dropout)(global_avg_pool(x), train)
        x = Linear(self.num_classes, name="fc")(x)
        return (x, aux) if train else x


@register("inception_v3", input_size=299, family="inception")
def inception_v3(num_classes: int = 1000) -> nn.Module:
    return Inception3(num_classes)
