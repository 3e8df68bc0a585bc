"""ConvNeXt T/S/B/L (torchvision.models.convnext)."""
from typing import Tuple

import jax.numpy as jnp
import flax.linen as nn

from ghn_jax.zoo.layers import Conv2d, LayerNorm, Linear, StochasticDepth, gelu, global_avg_pool
from ghn_jax.zoo.registry import register

_EPS = 1e-6


class _Block(nn.Module):
    """torch CNBlock.block: dwconv '0', (Permute), LayerNorm '2', Linear '3', GELU, Linear '5'."""
    dim: int

    @nn.compact
    def __call__(self, x):
        x = Conv2d(self.dim, 7, padding=3, groups=self.dim, name="0")(x)
        x = LayerNorm(_EPS, name="2")(x)           # NHWC already: torch's permutes are no-ops here
        x = gelu(Linear(4 * self.dim, name="3")(x))
        return Linear(self.dim, name="5")(x)


class CNBlock(nn.Module):
    dim: int
    sd_prob: float
    layer_scale_init: float = 1e-6

    @nn.compact
    def __call__(self, x, train: bool = False):
        # torch keeps layer_scale as (C, 1, 1) for NCHW; the same tensor scales NHWC's last axis.
        scale = self.param("layer_scale", lambda k, s: jnp.full(s, self.layer_scale_init), (self.dim, 1, 1))
        y = _Block(self.dim, name="block")(x) * scale.reshape(self.dim)
        return StochasticDepth(self.sd_prob, "row")(y, train) + x


class _Stage(nn.Module):
    dim: int
    probs: Tuple[float, ...]

    @nn.compact
    def __call__(self, x, train):
        for i, p in enumerate(self.probs):
            x = CNBlock(self.dim, p, name=str(i))(x, train)
        return x


class _Stem(nn.Module):
    dim: int
    stride: int = 4

    @nn.compact
    def __call__(self, x):
        x = Conv2d(self.dim, 4, self.stride, 0, name="0")(x)
        return LayerNorm(_EPS, name="1")(x)         # LayerNorm2d == LayerNorm over NHWC channels


class _Down(nn.Module):
    dim_out: int

    @nn.compact
    def __call__(self, x):
        x = LayerNorm(_EPS, name="0")(x)
        return Conv2d(self.dim_out, 2, 2, name="1")(x)


class _Features(nn.Module):
    setting: Tuple
    sd_prob: float
    stem_stride: int = 4

    @nn.compact
    def __call__(self, x, train):
        x = _Stem(self.setting[0][0], self.stem_stride, name="0")(x)
        total = sum(n for _, _, n in self.setting)
        idx, block_id = 1, 0
        for dim, out, n in self.setting:
            probs = tuple(self.sd_prob * (block_id + i) / (total - 1.0) for i in range(n))
            x = _Stage(dim, probs, name=str(idx))(x, train)
            block_id += n
            idx += 1
            if out is not None:
                x = _Down(out, name=str(idx))(x)
                idx += 1
        return x


class _Classifier(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x):
        x = LayerNorm(_EPS, name="0")(x)
        return Linear(self.num_classes, name="2")(x)


class ConvNeXt(nn.Module):
    setting: Tuple              # (channels, out_channels or None, blocks) per stage
    sd_prob: float
    num_classes: int = 1000
    stem_stride: int = 4        # 1 on small images (ppuda adjust_net, ghn_jax.eval.small)

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _Features(self.setting, self.sd_prob, self.stem_stride, name="features")(x, train)
        return _Classifier(self.num_classes, name="classifier")(global_avg_pool(x))


_SETTINGS = {
    "tiny": (((96, 192, 3), (192, 384, 3), (384, 768, 9), (768, None, 3)), 0.1),
    "small": (((96, 192, 3), (192, 384, 3), (384, 768, 27), (768, None, 3)), 0.4),
    "base": (((128, 256, 3), (256, 512, 3), (512, 1024, 27), (1024, None, 3)), 0.5),
    "large": (((192, 384, 3), (384, 768, 3), (768, 1536, 27), (1536, None, 3)), 0.5),
}


def _register(size):
    name = f"convnext_{size}"

    @register(name, family="convnext")
    def build(num_classes: int = 1000):
        setting, sd = _SETTINGS[size]
        return ConvNeXt(setting, sd, num_classes)
    build.__name__ = name
    return build


convnext_tiny = _register("tiny")
convnext_small = _register("small")
convnext_base = _register("base")
convnext_large = _register("large")
