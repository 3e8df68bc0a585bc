# python -m ghn_jax.predict --arch resnet50 --ckpt ghn3xlm16 --trust-pickle --out resnet50.safetensors
"""GHN-3-XL (ghn3xlm16 on the Hugging Face hub): hid 384, 24 layers, 16 heads, 654,365,184 params."""
import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.ckpt = "ghn3xlm16"                       # released checkpoint of this size
    c.model = ml_collections.ConfigDict()
    c.model.hid = 384
    c.model.layers = 24
    c.model.heads = 16
    c.model.max_shape = (384, 384, 16, 16)   # (Co, Ci, S, S): predicted max tensor
    c.model.num_classes = 1000
    c.model.layernorm = True
    return c
