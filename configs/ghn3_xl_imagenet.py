# python -m ghn_jax.train --config configs/ghn3_xl_imagenet.py --workdir gs://BUCKET/ghn3_xlm16
# (TPU pod: launch/tpu_train.sh --config configs/ghn3_xl_imagenet.py --workdir gs://BUCKET/ghn3_xlm16)
"""GHN-3-XL (ghn3xlm16) on ImageNet-1k with the reference recipe (ghn_jax/train/config.py), m16."""
from ghn_jax.train.config import base_config


def get_config():
    c = base_config("xl", "imagenet2012")
    c.deepnets.meta_batch = 16
    c.sharding_rules = [(".*", "fsdp(axis='data')")]   # 654M params: shard params and Adam moments
    return c
