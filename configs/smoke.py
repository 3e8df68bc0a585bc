# python -m ghn_jax.train --config configs/smoke.py --workdir /tmp/ghn_smoke
"""A tiny GHN-3 trained for a few minutes on CPU on scikit-learn's handwritten digits (real
images, no download; see docs/data.md), on a pool of 8 small DeepNets-1M architectures.
Checks the whole pipeline end to end: its loss goes down within the run."""
import ml_collections

from ghn_jax.data import get_config as data_config
from ghn_jax.train.archs import default_config as deepnets_config
from ghn_jax.train import optim


def get_config():
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.ghn = ml_collections.ConfigDict(dict(hid=32, layers=2, heads=4, max_shape=(32, 32, 8, 8), num_classes=10,
                                           layernorm=True))
    c.data = data_config("digits")
    c.data.batch_size = 32
    c.deepnets = deepnets_config()
    c.deepnets.meta_batch = 2
    c.deepnets.imagenet = False          # 32 px networks (CIFAR-style stems)
    c.deepnets.pool = 8                  # a bounded architecture set: few compilations on CPU
    c.deepnets.max_C = 16
    c.deepnets.max_n_cells = 5
    c.deepnets.max_fc_dim = 64
    c.loss = ml_collections.ConfigDict(dict(label_smoothing=0.0, lam=3e-5))
    c.optim = optim.default_config()
    c.optim.lr = 1e-3
    c.optim.schedule = "cosine"
    c.optim.epochs = 4
    c.total_steps = 240
    c.steps_per_epoch = 60
    c.mesh = [("data", -1)]
    c.sharding_rules = [(".*", "replicate")]
    c.checkpoint = ml_collections.ConfigDict(dict(every_steps=60, keep=2, async_save=True))
    c.log_every = 10
    c.compile_ahead = True
    c.tensorboard = True
    c.progress = True
    c.debug = ml_collections.ConfigDict(dict(nan_steps=()))
    c.max_nan_in_a_row = 20
    c.init_from = ""                     # a released GHN name or checkpoint path to start from
    c.trust_pickle = False               # needed when init_from is a PyTorch pickle
    c.compilation_cache_dir = ""         # persistent XLA cache (restarts compile nothing)
    return c
