# python -m ghn_jax.train --config configs/ghn3_t_imagenet.py --workdir gs://BUCKET/ghn3_tm8
# (TPU pod: launch/tpu_train.sh --config configs/ghn3_t_imagenet.py --workdir gs://BUCKET/ghn3_tm8)
"""GHN-3-T (ghn3tm8) on ImageNet-1k with the reference recipe (ghn_jax/train/config.py), m8."""
from ghn_jax.train.config import base_config


def get_config():
    c = base_config("t", "imagenet2012")
    c.deepnets.meta_batch = 8
    return c
