# python -m ghn_jax.train --config configs/smoke.py --workdir /tmp/ghn_smoke
"""A tiny GHN-3 trained for a few minutes on CPU on scikit-learn's handwritten digits (real
images, no download; docs/data.md), on a pool of 8 small DeepNets-1M architectures.
Checks the whole pipeline end to end: its loss goes down within the run."""
from ghn_jax.train.config import base_config


def get_config():
    c = base_config("t", "digits")
    c.seed = 0
    c.ghn.hid, c.ghn.layers, c.ghn.heads, c.ghn.max_shape = 32, 2, 4, (32, 32, 8, 8)
    c.data.batch_size = 32
    c.deepnets.meta_batch = 2
    c.deepnets.imagenet = False          # 32 px networks (CIFAR-style stems)
    c.deepnets.pool = 8                  # a bounded architecture set: few compilations on CPU
    c.deepnets.max_C = 16
    c.deepnets.max_n_cells = 5
    c.deepnets.max_fc_dim = 64
    c.optim.lr = 1e-3
    c.optim.schedule = "cosine"
    c.optim.epochs = 4
    c.total_steps = 240
    c.steps_per_epoch = 60
    c.checkpoint.every_steps = 60
    c.checkpoint.keep = 2
    c.log_every = 10
    return c
