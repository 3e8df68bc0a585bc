# python -m ghn_jax.predict --arch resnet50 --ckpt ghn3lm8 --trust-pickle --out resnet50.safetensors
"""GHN-3-L (ghn3lm8 on the Hugging Face hub): hid 256, 12 layers, 16 heads, 214,668,960 params."""
import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.ckpt = "ghn3lm8"                       # released checkpoint of this size
    c.model = ml_collections.ConfigDict()
    c.model.hid = 256
    c.model.layers = 12
    c.model.heads = 16
    c.model.max_shape = (256, 256, 16, 16)   # (Co, Ci, S, S): predicted max tensor
    c.model.num_classes = 1000
    c.model.layernorm = True
    return c
