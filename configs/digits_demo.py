# python -m ghn_jax.train --config configs/digits_demo.py --workdir /tmp/ghn_digits
# python -m ghn_jax.train --config configs/digits_demo.py:reduced --workdir /tmp/ghn_digits_reduced
"""The offline demonstration (examples/digits_demo.py): a small GHN-3 trained on scikit-learn's
handwritten digits (real images shipped inside a PyPI package, 32 px) on 32 DeepNets-1M train-split networks
(capped at 16 channels and 5 cells so that they run fast on CPU; a bounded set keeps the
kernels compiled on CPU), for about 23 minutes on 2 CPU cores. Its predictions are then
evaluated on held-out val-split networks it has never seen.

`:reduced`: a smaller GHN (hid 32, 2 layers) on 12 smaller networks (8 channels, 3 cells),
500 steps, about 7 minutes. The GHN it trained is the fixture of the default test suite's
reduced demonstration (tests/data/digits_reduced_ghn.safetensors, tests/eval/test_demo.py)."""
from ghn_jax.train.config import base_config


def get_config(arg=None):
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
    if arg == "reduced":
        c.ghn.hid, c.ghn.layers, c.ghn.heads, c.ghn.max_shape = 32, 2, 4, (32, 32, 3, 3)
        c.deepnets.meta_batch = 2
        c.deepnets.pool = 12
        c.deepnets.max_C = 8
        c.deepnets.max_n_cells = 3
        c.deepnets.max_fc_dim = 32
        c.optim.lr = 3e-3
        c.steps_per_epoch = 50
        c.total_steps = 500              # the whole cosine: lr ends at 0
        c.checkpoint.every_steps = 250
    elif arg:
        raise ValueError(f"unknown config argument {arg!r}; expected 'reduced' or none")
    return c
