# python -m ghn_jax.train --config configs/ghn3_t_cifar10.py --workdir /tmp/ghn3_t_cifar10
"""GHN-3-T on CIFAR-10 (prepare once: `tfds build cifar10 --file_format=array_record`, in an
environment with TensorFlow; docs/data.md): 32 px DeepNets-1M networks with CIFAR stems,
10-way classifiers, RandomCrop(32, padding 4) + flip, meta-batch 8, 64 images per step, no
label smoothing (the reference's CIFAR setting), 300 epochs with cosine decay."""
from ghn_jax.train.config import base_config


def get_config():
    c = base_config("t", "cifar10")
    c.data.batch_size = 64
    c.deepnets.meta_batch = 8
    c.deepnets.imagenet = False
    c.optim.lr = 4e-4
    c.optim.schedule = "cosine"
    c.optim.epochs = 300
    return c
