# python -m ghn_jax.train --config configs/ghn3_xl_imagenet.py --workdir gs://BUCKET/ghn3_xlm16
# (TPU pod: launch/tpu_train.sh --config configs/ghn3_xl_imagenet.py --workdir gs://BUCKET/ghn3_xlm16)
"""GHN-3-XL (ghn3xlm16) on ImageNet-1k, the reference recipe (design/ghn3-reference.md §4):
meta-batch m16 of DeepNets-1M train architectures per step, 128 images per step
(ImageNet train minus 50 images per class, RandomResizedCrop 224 + flip + ColorJitter),
AdamW lr 4e-4 wd 1e-2, cosine with 5 warmup epochs stepped per epoch, clip 5, label
smoothing 0.1, lambda 3e-5 on the predicted parameters' norms, 75 epochs (9,619 steps each).
The reference trained on 4 GPUs for days; data.batch_size must divide by the device count."""
from ghn_jax.train.config import base_config


def get_config():
    c = base_config("xl", "imagenet2012")
    c.deepnets.meta_batch = 16
    c.sharding_rules = [(".*", "fsdp(axis='data')")]   # 654M params: shard params and Adam moments
    return c
