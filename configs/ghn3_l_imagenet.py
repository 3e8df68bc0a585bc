# python -m ghn_jax.train --config configs/ghn3_l_imagenet.py --workdir gs://BUCKET/ghn3_lm8
# (TPU pod: launch/tpu_train.sh --config configs/ghn3_l_imagenet.py --workdir gs://BUCKET/ghn3_lm8)
"""GHN-3-L (ghn3lm8) on ImageNet-1k with the reference recipe (ghn_jax/train/config.py), m8."""
from ghn_jax.train.config import base_config


def get_config():
    c = base_config("l", "imagenet2012")
    c.deepnets.meta_batch = 8
    c.sharding_rules = [(".*", "fsdp(axis='data')")]   # 215M params: shard params and Adam moments
    return c
