# python -m ghn_jax.train --config configs/ghn3_t_imagenet.py --workdir gs://BUCKET/ghn3_tm8
# (TPU pod: launch/tpu_train.sh --config configs/ghn3_t_imagenet.py --workdir gs://BUCKET/ghn3_tm8)
"""GHN-3-T (ghn3tm8) on ImageNet-1k, the reference recipe (design/ghn3-reference.md §4):
meta-batch m8 of DeepNets-1M train architectures per step, 128 images per step
(ImageNet train minus 50 images per class, RandomResizedCrop 224 + flip + ColorJitter),
AdamW lr 4e-4 wd 1e-2, cosine with 5 warmup epochs stepped per epoch, clip 5, label
smoothing 0.1, lambda 3e-5 on the predicted parameters' norms, 75 epochs (9,619 steps each).
The reference trained on 4 GPUs for days; data.batch_size must divide by the device count."""
from ghn_jax.train.config import base_config


def get_config():
    c = base_config("t", "imagenet2012")
    c.deepnets.meta_batch = 8
    return c
