# python -m ghn_jax.predict --arch resnet50 --ckpt ghn3sm8 --trust-pickle --out resnet50.safetensors
"""GHN-3-S (ghn3sm8 on the Hugging Face hub): hid 128, 5 layers, 16 heads, 35,810,368 params."""
import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.ckpt = "ghn3sm8"                       # released checkpoint of this size
    c.model = ml_collections.ConfigDict()
    c.model.hid = 128
    c.model.layers = 5
    c.model.heads = 16
    c.model.max_shape = (128, 128, 16, 16)   # (Co, Ci, S, S): predicted max tensor
    c.model.num_classes = 1000
    c.model.layernorm = True
    return c
