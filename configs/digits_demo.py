# python -m ghn_jax.train --config configs/digits_demo.py --workdir /tmp/ghn_digits
"""The offline demonstration (examples/digits_demo.py): a small GHN-3 trained on scikit-learn's
handwritten digits (real images shipped inside a PyPI package, 32 px) on 32 DeepNets-1M train-split networks
(capped at 16 channels and 5 cells so that they run fast on CPU; a bounded set keeps the
kernels compiled on CPU), for about 20 minutes on 2 CPU cores. Its predictions are then
evaluated on held-out val-split networks it has never seen."""
from ghn_jax.train.config import base_config


def get_config():
    c = base_config("t", "digits")
    c.seed = 0
    c.ghn.hid, c.ghn.layers, c.ghn.heads, c.ghn.max_shape = 64, 3, 8, (64, 64, 8, 8)
    c.data.batch_size = 32
    c.deepnets.meta_batch = 4
    c.deepnets.pool = 32
    c.deepnets.imagenet = False
    c.deepnets.max_C = 16
    c.deepnets.max_n_cells = 5
    c.deepnets.max_fc_dim = 64
    c.optim.lr = 1e-3
    c.optim.schedule = "cosine"
    c.optim.epochs = 10
    c.steps_per_epoch = 100
    c.total_steps = 800                  # 8 of the cosine's 10 epochs: lr ends at 1e-4
    c.checkpoint.every_steps = 200
    c.log_every = 20
    return c
