# python -m ghn_jax.train --config configs/ghn3_s_imagenet.py --workdir gs://BUCKET/ghn3_sm8
# (TPU pod: launch/tpu_train.sh --config configs/ghn3_s_imagenet.py --workdir gs://BUCKET/ghn3_sm8)
"""GHN-3-S (ghn3sm8) on ImageNet-1k with the reference recipe (ghn_jax/train/config.py), m8."""
from ghn_jax.train.config import base_config


def get_config():
    c = base_config("s", "imagenet2012")
    c.deepnets.meta_batch = 8
    return c
