"""Vision Transformers B/16, B/32, L/16, L/32 (torchvision.models.vision_transformer)."""
import jax.numpy as jnp
import flax.linen as nn

from ghn_jax.errors import GhnError
from ghn_jax.zoo.layers import Conv2d, Dropout, LayerNorm, Linear, MLP, MultiheadAttention
from ghn_jax.zoo.registry import register

_EPS = 1e-6   # torchvision's ViT LayerNorms (not torch's default 1e-5)


class EncoderBlock(nn.Module):
    """Pre-norm block: x + drop(attn(ln_1(x))), then + mlp(ln_2(.)); mlp == torchvision's MLPBlock."""
    num_heads: int
    hidden_dim: int
    mlp_dim: int
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = LayerNorm(_EPS, name="ln_1")(x)
        y = MultiheadAttention(self.hidden_dim, self.num_heads, name="self_attention")(y, train)
        x = Dropout(self.dropout)(y, train) + x
        y = LayerNorm(_EPS, name="ln_2")(x)
        return x + MLP((self.mlp_dim, self.hidden_dim), dropout=self.dropout, name="mlp")(y, train)


class _Layers(nn.Module):
    """torch: encoder.layers = Sequential(OrderedDict(encoder_layer_0=..., ...))."""
    num_layers: int
    num_heads: int
    hidden_dim: int
    mlp_dim: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i in range(self.num_layers):
            x = EncoderBlock(self.num_heads, self.hidden_dim, self.mlp_dim, name=f"encoder_layer_{i}")(x, train)
        return x


class Encoder(nn.Module):
    """(n, seq, hidden) -> (n, seq, hidden). pos_embedding keeps torch's (1, seq, hidden) shape."""
    seq_length: int
    num_layers: int
    num_heads: int
    hidden_dim: int
    mlp_dim: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        pos = self.param("pos_embedding", nn.initializers.normal(0.02), (1, self.seq_length, self.hidden_dim))
        x = Dropout(0.0)(x + pos, train)
        x = _Layers(self.num_layers, self.num_heads, self.hidden_dim, self.mlp_dim, name="layers")(x, train)
        return LayerNorm(_EPS, name="ln")(x)


class _Heads(nn.Module):
    """torch: heads = Sequential(OrderedDict(head=Linear)) (no representation layer)."""
    num_classes: int

    @nn.compact
    def __call__(self, x):
        return Linear(self.num_classes, name="head")(x)


class VisionTransformer(nn.Module):
    image_size: int
    patch_size: int
    num_layers: int
    num_heads: int
    hidden_dim: int
    mlp_dim: int
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x, train: bool = False):
        n, h, w, _ = x.shape
        if h != self.image_size or w != self.image_size:
            raise GhnError(f"ViT expects {self.image_size}x{self.image_size} images (its positional embedding "
                           f"is sized for them), got {h}x{w}")
        p = self.patch_size
        x = Conv2d(self.hidden_dim, p, p, name="conv_proj")(x)           # (n, h/p, w/p, hidden)
        # torch: (n, hidden, n_h, n_w) -> (n, hidden, n_h*n_w) -> permute -> token t = i*n_w + j;
        # the row-major NHWC reshape gives the same token order with hidden as the last axis.
        x = x.reshape(n, -1, self.hidden_dim)
        cls = self.param("class_token", nn.initializers.zeros, (1, 1, self.hidden_dim))
        x = jnp.concatenate([jnp.broadcast_to(cls, (n, 1, self.hidden_dim)), x], axis=1)
        seq = (self.image_size // p) ** 2 + 1
        x = Encoder(seq, self.num_layers, self.num_heads, self.hidden_dim, self.mlp_dim, name="encoder")(x, train)
        return _Heads(self.num_classes, name="heads")(x[:, 0])


def _register(name, patch, layers, heads, hidden, mlp):
    @register(name, family="vit")
    def build(num_classes: int = 1000):
        return VisionTransformer(224, patch, layers, heads, hidden, mlp, num_classes)
    build.__name__ = name
    return build


vit_b_16 = _register("vit_b_16", 16, 12, 12, 768, 3072)
vit_b_32 = _register("vit_b_32", 32, 12, 12, 768, 3072)
vit_l_16 = _register("vit_l_16", 16, 24, 16, 1024, 4096)
vit_l_32 = _register("vit_l_32", 32, 24, 16, 1024, 4096)
