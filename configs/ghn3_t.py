# python -m ghn_jax.predict --arch resnet50 --ckpt ghn3tm8 --trust-pickle --out resnet50.safetensors
"""GHN-3-T (ghn3tm8 on the Hugging Face hub): hid 64, 3 layers, 8 heads, 6,906,632 params."""
import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.ckpt = "ghn3tm8"                       # released checkpoint of this size
    c.model = ml_collections.ConfigDict()
    c.model.hid = 64
    c.model.layers = 3
    c.model.heads = 8
    c.model.max_shape = (64, 64, 16, 16)   # (Co, Ci, S, S): predicted max tensor
    c.model.num_classes = 1000
    c.model.layernorm = True
    return c
